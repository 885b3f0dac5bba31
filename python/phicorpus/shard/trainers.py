"""What a trainer needs to read a build: Megatron-LM arguments, a Hugging Face tokenizer config,
and the build's README with Megatron-LM, nanoGPT and PyTorch snippets.

Everything here is a function of the manifest alone, with paths relative to the build directory,
so two builds of the same plan have byte-identical files wherever their corpus lies.

Megatron-LM reads the shards as they are (``.bin``/``.idx`` are its indexed-dataset format):
per-split paths ``--train-data-path`` / ``--valid-data-path`` with each shard weighted by its
tokens (so the blend samples the mix as built), ``--tokenizer-type HuggingFaceTokenizer
--tokenizer-model <build dir>`` (``tokenizer.json`` + ``tokenizer_config.json`` there; eod is the
manifest's ``eos_id``, 0 for a trained tokenizer — Megatron's ``NullTokenizer`` would put it at
``vocab_size`` instead), and no ``--split`` (the validation documents are held out by the build).

Example:
    >>> manifest["megatron"]["args"][:3]  # doctest: +SKIP
    ['--train-data-path', '1048576', 'train-00000']
"""

from __future__ import annotations

import itertools
import json
import shlex
from typing import Any

__all__ = [
    "BUILD_README",
    "TOKENIZER_CONFIG",
    "build_readme",
    "eos_token_of",
    "megatron_section",
    "tokenizer_config",
]

BUILD_README = "README.md"
TOKENIZER_CONFIG = "tokenizer_config.json"


def _prefixes(manifest: dict[str, Any], split: str) -> list[tuple[int, str]]:
    return [
        (int(e["tokens"]), str(e["bin"]).removesuffix(".bin"))
        for e in manifest["splits"][split]["shards"]
        if int(e["tokens"]) > 0
    ]


def megatron_section(manifest: dict[str, Any], eos_token: str) -> dict[str, Any]:
    """The manifest's ``megatron`` entry: Megatron-LM's command-line arguments for this build
    (paths relative to the build directory) and the tokenizer facts its datasets need."""
    args: list[str] = []
    for split, flag in (("train", "--train-data-path"), ("valid", "--valid-data-path")):
        shards = _prefixes(manifest, split)
        if shards:
            args.append(flag)
            for tokens, prefix in shards:
                args += [str(tokens), prefix]
    args += ["--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", "."]
    return {
        "args": args,
        "eod_id": int(manifest["eos_id"]),
        "eod_token": eos_token,
        "vocab_size": int(manifest["tokenizer"]["vocab_size"]),
        "dtype": manifest["dtype"],
        "split": None,
        "note": (
            "paths are relative to this build directory (run from it, or prefix them); each shard is "
            "weighted by its tokens; no --split: the valid-* shards are the held-out documents; "
            "eod_id is the tokenizer's end-of-text id (NullTokenizer would assume vocab_size)"
        ),
    }


def tokenizer_config(eos_token: str) -> dict[str, Any]:
    """``tokenizer_config.json`` beside ``tokenizer.json``, so ``transformers.AutoTokenizer`` (and
    Megatron-LM's ``HuggingFaceTokenizer``) load the build directory with its end-of-text token."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": eos_token,
        "bos_token": eos_token,
        "unk_token": eos_token,
        "model_max_length": 1_000_000_000,
        "clean_up_tokenization_spaces": False,
    }


def build_readme(manifest: dict[str, Any]) -> str:
    """The build directory's README.md: contents, the mix, and how trainers read it."""
    name = manifest["build"]
    meg = manifest["megatron"]
    train, valid = manifest["splits"]["train"], manifest["splits"]["valid"]
    lines = [
        f"# phicorpus build `{name}`",
        "",
        f"Mix `{manifest['mix']}`, seed {manifest['seed']}: {train['tokens']:,} train tokens in "
        f"{len(train['shards'])} shards, {valid['tokens']:,} validation tokens (held-out documents) in "
        f"{len(valid['shards'])}. Tokens are `{manifest['dtype']}`; every document ends with "
        f"end-of-text `{meg['eod_token']}` = id {meg['eod_id']}; vocabulary {meg['vocab_size']:,}.",
        "",
        "| source | share | epochs | train tokens |",
        "|---|---:|---:|---:|",
    ]
    for source, s in sorted(manifest["sources"].items()):
        share, epochs, tokens = s.get("actual_share", 0), s.get("epochs", 0), s.get("train_tokens", 0)
        lines.append(f"| {source} | {share:.2%} | {epochs:g} | {tokens:,} |")
    lines += [
        "",
        "Files: `train-NNNNN.bin/.idx`, `valid-NNNNN.bin/.idx` (Megatron-LM indexed datasets: `.bin` is "
        "the tokens back to back, `.idx` one sequence per document), `tokenizer.json` (+ "
        "`tokenizer_config.json` for `transformers`), `manifest.json` (every figure here, shard "
        "hashes, these arguments under `megatron`). Nothing else: caches live in the corpus's `cache/`.",
        "",
        "## Megatron-LM",
        "",
        "Run from this directory (paths are relative to it); each shard is weighted by its tokens, and "
        "there is no `--split`: the `valid-*` shards are the held-out documents.",
        "",
        "```sh",
        "pretrain_gpt.py ... \\",
    ]
    args = meg["args"]
    flags = [i for i, a in enumerate(args) if a.startswith("--")] + [len(args)]
    for a, b in itertools.pairwise(flags):
        lines.append("    " + " ".join(shlex.quote(x) for x in args[a:b]) + " \\")
    lines[-1] = lines[-1].removesuffix(" \\")
    lines += [
        "```",
        "",
        f"With megatron-core's own dataset classes, the tokenizer object must say `eod = {meg['eod_id']}` "
        f"and `vocab_size = {meg['vocab_size']}` (`NullTokenizer` would assume eod = vocab size).",
        "",
        "## nanoGPT",
        "",
        "```python",
        "import json, numpy as np, torch",
        'm = json.load(open("manifest.json"))',
        'split = m["splits"]["train"]["shards"]',
        'shards = [np.memmap(s["bin"], dtype=m["dtype"], mode="r") for s in split]',
        "sizes = np.array([len(s) for s in shards], dtype=np.float64)",
        "",
        "def get_batch(batch_size, block_size):",
        "    data = shards[np.random.choice(len(shards), p=sizes / sizes.sum())]",
        "    ix = torch.randint(len(data) - block_size - 1, (batch_size,))",
        "    x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in ix])",
        "    y = torch.stack([torch.from_numpy(data[i + 1 : i + block_size + 1].astype(np.int64))",
        "                     for i in ix])",
        "    return x, y",
        "```",
        "",
        "## PyTorch / litgpt (exact resume, ranks, workers)",
        "",
        "```python",
        "from phicorpus.loader import PackedWindows, TokenDataLoader",
        "",
        'ds = PackedWindows(".", seq_len=2048)    # or split="valid"',
        "loader = TokenDataLoader(ds, batch_size=8, seed=0, num_workers=2)  # ranks: torch.distributed",
        'for batch in loader:                     # one epoch; batch["input_ids"], batch["labels"]',
        "    ...",
        "state = loader.state_dict()              # checkpoint it; load_state_dict() resumes",
        "```",
        "",
    ]
    return "\n".join(lines)


def eos_token_of(tokenizer_json: bytes, eos_id: int) -> str:
    """The content of token ``eos_id`` in a ``tokenizer.json`` (its added tokens, then its vocab)."""
    data = json.loads(tokenizer_json)
    for token in data.get("added_tokens", []):
        if token.get("id") == eos_id:
            return str(token["content"])
    for content, token_id in (data.get("model", {}).get("vocab") or {}).items():
        if token_id == eos_id:
            return str(content)
    raise ValueError(f"tokenizer.json has no token {eos_id}")

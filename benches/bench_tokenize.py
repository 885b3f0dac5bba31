"""Tokenization throughput: phicorpus vs Hugging Face ``tokenizers`` and tiktoken, same vocabulary.

Run: ``python benches/bench_tokenize.py`` (trains and caches a 50k byte-level BPE at
``benches/data/tokenizer-50k.json`` on the first run, then measures on a ~50 MB slice of the
benchmark corpus). Prints ``name  ours  peer  ratio`` lines and the ID parity with ``tokenizers``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# Single-threaded peers: `tokenizers` runs encode_batch serially when TOKENIZERS_PARALLELISM is
# false (read on each call); rayon's global pool would otherwise use every core.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("RAYON_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from common import DATA_DIR, best_time, load_corpus, mbytes, report
from phicorpus.tokenize import Tokenizer, train_tokenizer

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TOKENIZER_PATH = DATA_DIR / "tokenizer-50k.json"
LLAMA3_STYLE_PATH = DATA_DIR / "tokenizer-50k-llama3-pattern.json"
TRAIN_MB = 30.0
BENCH_MB = 50.0


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable char -> byte map (the inverse of ``bytes_to_unicode``)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def pattern_of(data: dict[str, Any]) -> str:
    """The pre-tokenizer regex of a tokenizer.json: a Split's pattern, else GPT-2's."""
    pre = data["pre_tokenizer"]
    for step in pre.get("pretokenizers", [pre]):
        if step["type"] == "Split":
            return str(step["pattern"]["Regex"])
    return GPT2_PATTERN


def tiktoken_encoding(tokenizer_path: str) -> object:
    """A tiktoken ``Encoding`` with the same pattern and BPE ranks as ``tokenizer_path``.

    Ranks are the token ids: the ``tokenizers`` trainer numbers tokens in merge order.
    """
    import tiktoken

    data = json.loads(Path(tokenizer_path).read_text(encoding="utf-8"))
    specials = {t["content"]: t["id"] for t in data["added_tokens"] if t["special"]}
    to_byte = _byte_decoder()
    ranks = {
        bytes(to_byte[c] for c in token): id
        for token, id in data["model"]["vocab"].items()
        if token not in specials
    }
    return tiktoken.Encoding(
        name="phicorpus-bench", pat_str=pattern_of(data), mergeable_ranks=ranks, special_tokens=specials
    )


def run(docs: list[str], tokenizer_path: str, label: str = "") -> list[str]:
    """Measure ours vs ``tokenizers`` vs tiktoken on ``docs``; return the report lines."""
    from tokenizers import Tokenizer as HfTokenizer

    label = f"{label} " if label else ""
    lines: list[str] = []
    size = mbytes(docs)
    ours = Tokenizer.from_file(tokenizer_path)
    hf = HfTokenizer.from_file(tokenizer_path)
    enc = tiktoken_encoding(tokenizer_path)
    print(
        f"data: {len(docs)} documents, {size:.1f} MB; tokenizer {tokenizer_path} ({ours.vocab_size} tokens)"
    )

    # First call of a fresh tokenizer: its per-thread pre-token caches start empty.
    cold = Tokenizer.from_file(tokenizer_path)
    t_cold = best_time(lambda: cold.encode_batch(docs, num_threads=1), repeat=1)
    t_ours1 = best_time(lambda: ours.encode_batch(docs, num_threads=1))
    t_ours2 = best_time(lambda: ours.encode_batch(docs, num_threads=2))
    hf_out: list[list[int]] = []

    def hf_batch() -> None:
        hf_out[:] = [e.ids for e in hf.encode_batch(docs)]

    t_hf = best_time(hf_batch, repeat=1)  # slow peer: one run
    tk_out: list[list[int]] = []

    def tk_batch() -> None:
        tk_out[:] = enc.encode_ordinary_batch(docs, num_threads=1)  # type: ignore[attr-defined]

    t_tk = best_time(tk_batch, repeat=2)

    ids, offsets = ours.encode_batch(docs, num_threads=2)
    n_tokens = len(ids)
    same_hf = sum(
        1 for i, want in enumerate(hf_out) if np.array_equal(ids[offsets[i] : offsets[i + 1]], want)
    )
    same_tk = sum(
        1 for i, want in enumerate(tk_out) if np.array_equal(ids[offsets[i] : offsets[i + 1]], want)
    )
    lines.append(f"{label}tokens: {n_tokens} ({size * 1e6 / max(n_tokens, 1):.2f} bytes/token)")
    lines.append(f"{label}parity with tokenizers: {same_hf}/{len(docs)} documents identical")
    lines.append(f"{label}parity with tiktoken (same ranks): {same_tk}/{len(docs)} documents identical")
    for line in lines:
        print(line)
    lines.append(
        report(
            f"{label}encode_batch 1 thread vs tokenizers", size / t_ours1, size / t_hf, "tokenizers 1 thread"
        )
    )
    lines.append(
        report(f"{label}encode_batch 1 thread vs tiktoken", size / t_ours1, size / t_tk, "tiktoken 1 thread")
    )
    lines.append(
        report(
            f"{label}encode_batch 1 thread cold cache vs tiktoken",
            size / t_cold,
            size / t_tk,
            "tiktoken 1 thread",
        )
    )
    lines.append(
        report(f"{label}encode_batch 2 threads vs 1 thread", size / t_ours2, size / t_ours1, "ours 1 thread")
    )
    return lines


def main() -> None:
    docs = load_corpus()
    if not TOKENIZER_PATH.exists():
        sample, total = [], 0
        for d in docs[::3]:
            sample.append(d)
            total += len(d.encode())
            if total > TRAIN_MB * 1e6:
                break
        start = time.perf_counter()
        train_tokenizer(sample, 50_000, TOKENIZER_PATH)
        print(f"trained {TOKENIZER_PATH} on {total / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s")
    bench, total = [], 0
    for d in docs:
        total += len(d.encode())
        if total > BENCH_MB * 1e6:
            break
        bench.append(d)
    run(bench, str(TOKENIZER_PATH), "gpt2")
    # The same vocabulary behind the Llama-3 / cl100k split (exercises the other scanner).
    data = json.loads(TOKENIZER_PATH.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    LLAMA3_STYLE_PATH.write_text(json.dumps(data), encoding="utf-8")
    run(bench, str(LLAMA3_STYLE_PATH), "llama3")


if __name__ == "__main__":
    main()

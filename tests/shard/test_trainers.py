"""A finished build holds only what trainers read, and says how to read it: Megatron-LM arguments
in the manifest and README (paths that exist, shard weights = tokens, eod id), a tokenizer
directory that ``transformers.AutoTokenizer`` loads with the right end-of-text id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import transformers
from tests.mix.conftest import make_corpus
from tokenizers import Tokenizer as HfTokenizer

from phicorpus.build import build_shards
from phicorpus.config import BuildConfig

CONFIG = BuildConfig(
    mix="synthetic:0.8,code:0.2",
    vocab_size=600,
    tokenizer_sample_bytes=200_000,
    shard_tokens=8_000,
    valid_fraction=0.05,
)
TRAINER_FILES = re.compile(
    r"(train|valid)-\d{5}\.(bin|idx)|tokenizer\.json|tokenizer_config\.json|manifest\.json|README\.md"
)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    corpus = make_corpus(tmp_path_factory.mktemp("trainers") / "corpus", n_bios=300, n_code=30)
    manifest = build_shards(corpus, CONFIG)
    return corpus.build_dir("main"), manifest


def test_build_dir_holds_only_what_a_trainer_reads(build: tuple[Path, dict[str, Any]]) -> None:
    build_dir, _ = build
    names = sorted(p.name for p in build_dir.rglob("*"))
    assert names and all(TRAINER_FILES.fullmatch(n) for n in names), names
    assert not (build_dir / "tokens").exists()
    assert (build_dir.parent.parent / "cache" / "tokens").is_dir()  # the token cache is the corpus's


def test_megatron_arguments(build: tuple[Path, dict[str, Any]]) -> None:
    build_dir, manifest = build
    meg = manifest["megatron"]
    args = meg["args"]
    for split, flag in (("train", "--train-data-path"), ("valid", "--valid-data-path")):
        at = args.index(flag) + 1
        end = next((i for i in range(at, len(args)) if args[i].startswith("--")), len(args))
        pairs = list(zip(args[at:end:2], args[at + 1 : end : 2], strict=True))
        shards = manifest["splits"][split]["shards"]
        assert [(int(w), p) for w, p in pairs] == [(e["tokens"], e["bin"][:-4]) for e in shards]
        assert all((build_dir / f"{p}.bin").is_file() for _, p in pairs)
        assert all((build_dir / f"{p}.idx").is_file() for _, p in pairs)
    assert args[args.index("--tokenizer-type") + 1] == "HuggingFaceTokenizer"
    assert args[args.index("--tokenizer-model") + 1] == "."
    assert "--split" not in args and meg["eod_id"] == manifest["eos_id"]
    assert meg["vocab_size"] == manifest["tokenizer"]["vocab_size"]
    readme = (build_dir / "README.md").read_text()
    shell = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert shell.replace("\\\n", " ").split()[1:] == ["...", *args]  # the README gives the same arguments
    assert f"id {manifest['eos_id']}" in readme and "get_batch" in readme


def test_transformers_loads_the_build_dir(build: tuple[Path, dict[str, Any]]) -> None:
    build_dir, manifest = build
    tok = transformers.AutoTokenizer.from_pretrained(str(build_dir))
    assert tok.eos_token_id == manifest["eos_id"] == tok.convert_tokens_to_ids(tok.eos_token)
    oracle = HfTokenizer.from_file(str(build_dir / "tokenizer.json"))
    text = "Ada Lovelace was born on 10 May 1815 in Paris.\ndef f(x):\n    return x\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == oracle.encode(text, add_special_tokens=False).ids

"""build_shards end to end on a small corpus: shards read back by an independent reader give
exactly the documents' tokens (oracle: the ``tokenizers`` library), shares within 0.5%, same seed
gives the same bytes, a kill -9 then a re-run gives the same bytes, a full disk leaves nothing
half-written."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from tokenizers import Tokenizer as HfTokenizer

import phicorpus.shard as shard_format
from phicorpus.build import build_shards
from phicorpus.catalog import Catalog
from phicorpus.cli import one_line_errors
from phicorpus.config import BuildConfig
from phicorpus.corpus import Corpus, sha256_file
from phicorpus.mix import MixError
from phicorpus.shard import write_shard
from phicorpus.tokenize.stage import TokenizerError

CONFIG = BuildConfig(
    mix="synthetic:0.8,code:0.2",
    vocab_size=600,
    tokenizer_sample_bytes=200_000,
    shard_tokens=8_000,
    valid_fraction=0.05,
)


def file_hashes(corpus: Corpus, name: str = "main") -> dict[str, str]:
    root = corpus.build_dir(name)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def assert_catalog_matches_disk(corpus: Corpus) -> None:
    """Every registered file is in place with its registered sha256; no temporary is left."""
    with Catalog.open(corpus, read_only=True) as catalog:
        records = catalog.shards()
    for record in records:
        path = corpus.absolute(record.path)
        assert path.is_file(), f"registered but missing: {record.path}"
        assert sha256_file(path) == record.sha256, f"registered sha256 differs: {record.path}"
    leftovers = [p for p in corpus.root.rglob(".*.tmp")]
    assert not leftovers, leftovers


def test_shards_hold_exactly_the_documents_tokens(
    corpus: Corpus,
    megatron_reader: Callable[[Path], list[np.ndarray]],
    documents: Callable[[Corpus], dict[str, str]],
) -> None:
    manifest = build_shards(corpus, CONFIG)
    build_dir = corpus.build_dir("main")
    hf = HfTokenizer.from_file(str(build_dir / "tokenizer.json"))
    eos = hf.token_to_id("<|endoftext|>")
    assert manifest["eos_id"] == eos and manifest["dtype"] == "uint16"
    texts = documents(corpus)
    oracle = {}
    for doc_id, text in texts.items():
        ids = tuple([*hf.encode(text, add_special_tokens=False).ids, eos])
        oracle[ids] = doc_id
    seen: dict[str, Counter[str]] = {}
    for split in ("train", "valid"):
        counts: Counter[str] = Counter()
        shards = manifest["splits"][split]["shards"]
        assert shards, split
        for entry in shards:
            prefix = build_dir / entry["bin"].removesuffix(".bin")
            sequences = megatron_reader(prefix)
            assert len(sequences) == entry["documents"]
            assert sum(s.size for s in sequences) == entry["tokens"]
            assert sha256_file(build_dir / entry["bin"]) == entry["sha256"]
            for seq in sequences:
                doc_id = oracle.get(tuple(seq.tolist()))
                assert doc_id is not None, "a shard sequence is no kept document's tokens + eos"
                counts[doc_id] += 1
        seen[split] = counts
    # Held out by document: no validation document is trained on.
    assert not set(seen["train"]) & set(seen["valid"])
    # Dropped documents never appear.
    with Catalog.open(corpus, read_only=True) as catalog:
        dropped = {r[0] for r in catalog.exec("SELECT id FROM documents WHERE drop_stage IS NOT NULL")}
        tokens = dict(catalog.exec("SELECT id, tokens FROM documents WHERE drop_stage IS NULL"))
    assert dropped and not dropped & (set(seen["train"]) | set(seen["valid"]))
    # documents.tokens is each kept document's token count (eos included).
    for ids, doc_id in oracle.items():
        assert tokens[doc_id] == len(ids)
    # Shares: within 0.5% of the target, by the oracle's counts.
    by_source: Counter[str] = Counter()
    for doc_id, n in seen["train"].items():
        by_source[doc_id.split("/")[0]] += n * tokens[doc_id]
    total = sum(by_source.values())
    assert total == manifest["splits"]["train"]["tokens"]
    for source, target_share in (("bios", 0.8), ("code", 0.2)):
        share = by_source[source] / total
        assert abs(share - target_share) <= 0.005 * target_share, (source, share)
        assert manifest["sources"][source]["train_tokens"] == by_source[source]


def test_tokens_target_repeats_sources_and_reports_epochs(corpus: Corpus) -> None:
    config = BuildConfig(**{**_fields(CONFIG), "tokens": 150_000, "mix": "bios:0.5,code:0.5"})
    manifest = build_shards(corpus, config)
    total = manifest["splits"]["train"]["tokens"]
    assert abs(total - 150_000) <= 0.005 * 150_000
    for source in ("bios", "code"):
        info = manifest["sources"][source]
        assert abs(info["train_tokens"] - 75_000) <= 0.005 * 75_000
        assert info["epochs"] == pytest.approx(info["train_tokens"] / info["available_tokens"], rel=1e-5)
    assert manifest["sources"]["bios"]["epochs"] > 1  # bios has fewer tokens than its share
    too_many = BuildConfig(**{**_fields(config), "max_epochs": 1.0})
    with pytest.raises(MixError, match="max-epochs"):
        build_shards(corpus, too_many)


def _fields(config: BuildConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def test_same_seed_same_bytes_other_seed_other_order(
    tmp_path: Path, corpus_factory: Callable[..., Corpus]
) -> None:
    a = corpus_factory(tmp_path / "a")
    b = corpus_factory(tmp_path / "b")
    build_shards(a, CONFIG)
    build_shards(b, CONFIG)
    assert file_hashes(a) == file_hashes(b)
    # Re-running a finished build changes nothing.
    before = file_hashes(a)
    build_shards(a, CONFIG)
    assert file_hashes(a) == before
    c = corpus_factory(tmp_path / "c")
    build_shards(c, BuildConfig(**{**_fields(CONFIG), "seed": 1}))
    assert file_hashes(c)["train-00000.bin"] != before["train-00000.bin"]


KILLER = """
import os, signal, sys
import phicorpus.build as b
import phicorpus.shard as shard_format
from phicorpus.config import BuildConfig
from phicorpus.corpus import Corpus
from phicorpus.shard import write_shard

calls = 0
def write_then_die(prefix, fill, dtype, eos):
    global calls
    calls += 1
    if calls < int(sys.argv[2]):
        return write_shard(prefix, fill, dtype, eos)
    def fill_and_die(writer):
        fill(writer)
        os.kill(os.getpid(), signal.SIGKILL)  # mid-write: temporaries on disk, nothing published
    return write_shard(prefix, fill_and_die, dtype, eos)

shard_format.write_shard = write_then_die
b.build_shards(Corpus.open(sys.argv[1]), BuildConfig(**CONFIG))
"""


@pytest.mark.parametrize("kill_at", [2, 5])  # 2: tokenizing the second source; 5: a train shard
def test_kill_9_then_rerun_gives_identical_files(
    tmp_path: Path, corpus_factory: Callable[..., Corpus], kill_at: int
) -> None:
    reference = corpus_factory(tmp_path / "reference")
    build_shards(reference, CONFIG)
    victim = corpus_factory(tmp_path / "victim")
    script = f"CONFIG = {_fields(CONFIG)!r}\n" + textwrap.dedent(KILLER)
    child = subprocess.run(
        [sys.executable, "-c", script, str(victim.root), str(kill_at)], capture_output=True, text=True
    )
    assert child.returncode == -9, child.stderr
    assert not (victim.build_dir("main") / "manifest.json").exists()
    assert list(victim.root.rglob(".*.tmp")), "the kill should have left a temporary behind"
    build_shards(victim, CONFIG)
    assert file_hashes(victim) == file_hashes(reference)
    assert_catalog_matches_disk(victim)


def test_full_disk_injected_leaves_nothing_half_written(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected in-process into the third shard write (after some bytes are written)."""
    calls = 0

    def write_until_full(prefix: Path, fill: Any, dtype: str, eos: int | None) -> Any:
        nonlocal calls
        calls += 1
        if calls < 3:
            return write_shard(prefix, fill, dtype, eos)

        def fill_then_fail(writer: Any) -> None:
            fill(writer)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(prefix) + ".bin")

        return write_shard(prefix, fill_then_fail, dtype, eos)

    monkeypatch.setattr(shard_format, "write_shard", write_until_full)
    with pytest.raises(click.ClickException, match=r"^disk full writing .*: nothing was registered"):
        one_line_errors(build_shards)(corpus, CONFIG)
    assert not (corpus.build_dir("main") / "manifest.json").exists()
    assert_catalog_matches_disk(corpus)
    monkeypatch.undo()
    build_shards(corpus, CONFIG)  # space again: the build finishes
    assert_catalog_matches_disk(corpus)


def _can_mount() -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    probe = Path("/tmp") / f"phicorpus-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["umount", str(probe)], check=False)
    probe.rmdir()
    return ok.returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")
def test_full_disk_real_tmpfs(corpus: Corpus) -> None:
    """A real ENOSPC: cache/ (the token caches, the bulk of a build's writes) is a 192 KiB tmpfs."""
    build_root = corpus.root / "cache"
    build_root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(build_root)], check=True)
    try:
        with pytest.raises(OSError) as info:
            build_shards(corpus, CONFIG)
        assert info.value.errno == errno.ENOSPC
        with pytest.raises(click.ClickException, match=r"^disk full"):
            one_line_errors(build_shards)(corpus, CONFIG)
        assert not (corpus.build_dir("main") / "manifest.json").exists()
        assert_catalog_matches_disk(corpus)
    finally:
        subprocess.run(["umount", str(build_root)], check=False)


def test_bad_tokenizer_and_empty_source_are_one_line_errors(corpus: Corpus, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"bad\.json: cannot read tokenizer"):
        build_shards(corpus, BuildConfig(**{**_fields(CONFIG), "tokenizer": str(bad)}))
    with pytest.raises(TokenizerError, match="cannot read tokenizer"):
        build_shards(corpus, BuildConfig(**{**_fields(CONFIG), "tokenizer": str(tmp_path / "none.json")}))
    with pytest.raises(MixError, match=r"source 'stories' has no documents .*bios"):
        build_shards(corpus, BuildConfig(**{**_fields(CONFIG), "mix": "bios:0.5,stories:0.5"}))
    with pytest.raises(MixError, match=r"unknown source 'poems' \(available: .*bios.*code.*synthetic"):
        build_shards(corpus, BuildConfig(**{**_fields(CONFIG), "mix": "poems:1"}))
    assert not corpus.build_dir("main").joinpath("manifest.json").exists()


def test_given_tokenizer_is_copied_and_used(corpus: Corpus, tmp_path: Path) -> None:
    build_shards(corpus, CONFIG)
    trained = corpus.build_dir("main") / "tokenizer.json"
    mine = tmp_path / "mine.json"
    mine.write_bytes(trained.read_bytes())
    other = BuildConfig(**{**_fields(CONFIG), "tokenizer": str(mine), "name": "given"})
    manifest = build_shards(corpus, other)
    assert (corpus.build_dir("given") / "tokenizer.json").read_bytes() == mine.read_bytes()
    assert manifest["tokenizer"]["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()
    saved = json.loads((corpus.build_dir("given") / "manifest.json").read_text())
    assert saved == manifest


def test_loader_reads_the_build(corpus: Corpus, megatron_reader: Callable[[Path], list[np.ndarray]]) -> None:
    from phicorpus.loader import TokenDataset

    manifest = build_shards(corpus, CONFIG)
    build_dir = corpus.build_dir("main")
    stream = np.concatenate(
        [
            np.concatenate(megatron_reader(build_dir / e["bin"].removesuffix(".bin")))
            for e in manifest["splits"]["train"]["shards"]
        ]
    )
    ds = TokenDataset(build_dir, 128, seed=4, rank=1, world_size=2)
    assert ds.num_tokens == stream.size == manifest["splits"]["train"]["tokens"]
    for index in ds.order(0)[:50]:
        sample = ds.sample(int(index))
        start = int(index) * 128
        assert np.array_equal(sample["input_ids"], stream[start : start + 128])
        assert np.array_equal(sample["labels"], stream[start + 1 : start + 129])
    valid = TokenDataset(build_dir, 16, split="valid")
    assert valid.num_tokens == manifest["splits"]["valid"]["tokens"]


def test_switching_back_from_a_given_tokenizer_retrains(corpus: Corpus, tmp_path: Path) -> None:
    build_shards(corpus, CONFIG)
    trained = (corpus.build_dir("main") / "tokenizer.json").read_bytes()
    other = tmp_path / "other.json"
    from phicorpus.tokenize import train_tokenizer

    train_tokenizer(["some other text entirely"] * 50, 300, other)
    build_shards(corpus, BuildConfig(**{**_fields(CONFIG), "tokenizer": str(other)}))
    assert (corpus.build_dir("main") / "tokenizer.json").read_bytes() == other.read_bytes()
    build_shards(corpus, CONFIG)
    assert (corpus.build_dir("main") / "tokenizer.json").read_bytes() == trained


def test_a_small_target_with_long_documents_is_met_exactly_by_one_cut_document(
    tmp_path: Path,
    megatron_reader: Callable[[Path], list[np.ndarray]],
    documents: Callable[[Corpus], dict[str, str]],
) -> None:
    from tests.mix.conftest import add_source, bios_texts, code_texts

    corpus = Corpus.create(tmp_path / "corpus")
    add_source(corpus, "bios", bios_texts(300))
    add_source(corpus, "code", [t for t in code_texts(40) if len(t) > 6_000][:4])  # 4 long files
    config = BuildConfig(
        **{**_fields(CONFIG), "mix": "bios:0.9,code:0.1", "tokens": 8_000, "valid_fraction": 0.0}
    )
    lines: list[str] = []
    manifest = build_shards(corpus, config, echo=lines.append)
    code = manifest["sources"]["code"]
    assert code["train_tokens"] == code["target_tokens"] == 800  # to the token, not within 0.5%
    assert code["cut_documents"] == 1 and 0 < code["cut_tokens"] <= 800
    assert any("one document cut" in line and "code" in line for line in lines)
    # The shards hold whole documents, and one code document's first tokens ending with end-of-text.
    build_dir = corpus.build_dir("main")
    hf = HfTokenizer.from_file(str(build_dir / "tokenizer.json"))
    eos = hf.token_to_id("<|endoftext|>")
    whole = {}
    for doc_id, text in documents(corpus).items():
        whole[tuple([*hf.encode(text, add_special_tokens=False).ids, eos])] = doc_id
    sources: Counter[str] = Counter()
    cut = []
    for entry in manifest["splits"]["train"]["shards"]:
        for seq in megatron_reader(build_dir / entry["bin"].removesuffix(".bin")):
            ids = tuple(seq.tolist())
            if ids in whole:
                sources[whole[ids].split("/")[0]] += len(ids)
            else:
                cut.append(ids)
    assert len(cut) == 1 and cut[0][-1] == eos and len(cut[0]) == code["cut_tokens"]
    prefix_of = [d for ids, d in whole.items() if ids[: len(cut[0]) - 1] == cut[0][:-1]]
    assert prefix_of and prefix_of[0].startswith("code/")
    assert (
        sources["code"] + len(cut[0]) == 800
        and sources["bios"] == manifest["sources"]["bios"]["train_tokens"]
    )
    assert manifest["splits"]["train"]["tokens"] == sum(sources.values()) + len(cut[0])

"""The Megatron .bin/.idx writer and reader: an independent reader written here from the
documented layout (struct + NumPy) reads back exactly what was written; sha256 matches hashlib;
a full disk (/dev/full) raises OSError with errno ENOSPC; hypothesis round trips."""

from __future__ import annotations

import errno
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HfTokenizer

from phicorpus.shard import IndexedDataset, ShardReader, ShardWriter, dtype_for_vocab, write_shard
from phicorpus.tokenize import Tokenizer, train_tokenizer

TEXTS = [
    "The cat sat on the mat.",
    "",
    "def f(x):\n    return x * 2\n",
    "Café naïve — Ωmega 中文 👍🏽",
    "a " * 500,
]


def independent_read(prefix: Path) -> tuple[str, list[list[int]]]:
    """(dtype name, sequences) from the layout in DESIGN.md, without phicorpus."""
    idx = Path(f"{prefix}.idx").read_bytes()
    magic, version, code, n, d = struct.unpack_from("<9sQBQQ", idx, 0)
    assert magic == b"MMIDIDX\x00\x00" and version == 1
    assert struct.calcsize("<9sQBQQ") == 34
    dtype = {8: "<u2", 4: "<i4"}[code]
    lengths = struct.unpack_from(f"<{n}i", idx, 34)
    pointers = struct.unpack_from(f"<{n}q", idx, 34 + 4 * n)
    docs = struct.unpack_from(f"<{d}q", idx, 34 + 12 * n)
    assert len(idx) == 34 + 12 * n + 8 * d
    assert list(docs) == list(range(n + 1))
    data = Path(f"{prefix}.bin").read_bytes()
    seqs = [np.frombuffer(data, dtype, ln, p).tolist() for ln, p in zip(lengths, pointers, strict=True)]
    assert sum(lengths) * np.dtype(dtype).itemsize == len(data)
    return {"<u2": "uint16", "<i4": "int32"}[dtype], seqs


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    return train_tokenizer([*TEXTS, *(t * 3 for t in TEXTS)] * 20, 400, path)


def test_texts_to_shard_match_tokenizers_library(tokenizer: Path, tmp_path: Path) -> None:
    tok = Tokenizer.from_file(tokenizer)
    hf = HfTokenizer.from_file(str(tokenizer))
    eos = tok.eos_id
    assert tok.core is not None and eos is not None
    info = write_shard(tmp_path / "s", lambda w: w.add_texts(TEXTS, tok.core), "uint16", eos)
    dtype, seqs = independent_read(tmp_path / "s")
    assert dtype == "uint16" == dtype_for_vocab(tok.max_id)
    assert seqs == [[*hf.encode(t, add_special_tokens=False).ids, eos] for t in TEXTS]
    assert info.documents == len(TEXTS) and info.tokens == sum(len(s) for s in seqs)
    assert info.bin_sha256 == hashlib.sha256((tmp_path / "s.bin").read_bytes()).hexdigest()
    assert info.idx_sha256 == hashlib.sha256((tmp_path / "s.idx").read_bytes()).hexdigest()
    assert info.bin_bytes == (tmp_path / "s.bin").stat().st_size
    # Our readers agree.
    ds = IndexedDataset(tmp_path / "s")
    assert [ds[i].tolist() for i in range(len(ds))] == seqs
    reader = ShardReader(str(tmp_path / "s.bin"), str(tmp_path / "s.idx"))
    assert [reader.document(i).tolist() for i in range(len(reader))] == seqs
    assert not list(tmp_path.glob(".*.tmp"))


def test_arrow_buffers_give_the_same_shard_as_texts(tokenizer: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    tok = Tokenizer.from_file(tokenizer)
    assert tok.core is not None
    core = tok.core
    write_shard(tmp_path / "t", lambda w: w.add_texts(TEXTS, core), "uint16", tok.eos_id)
    for array in (pa.array(TEXTS), pa.array(TEXTS, pa.large_string()), pa.array(["x", *TEXTS])[1:]):
        _, offsets, data = array.buffers()
        width = np.int64 if pa.types.is_large_string(array.type) else np.int32
        offs = np.frombuffer(offsets, width)[array.offset : array.offset + len(array) + 1].astype(np.int64)
        chars = np.frombuffer(data, np.uint8)
        write_shard(tmp_path / "a", lambda w, o=offs, c=chars: w.add_utf8(o, c, core), "uint16", tok.eos_id)
        for ext in (".bin", ".idx"):
            assert Path(f"{tmp_path / 'a'}{ext}").read_bytes() == Path(f"{tmp_path / 't'}{ext}").read_bytes()
    bad = np.frombuffer("é".encode(), np.uint8)[:1].copy()
    with pytest.raises(ValueError, match="text 0 is not valid UTF-8"):
        write_shard(tmp_path / "b", lambda w: w.add_utf8(np.array([0, 1]), bad, core), "uint16", None)
    with pytest.raises(ValueError, match=r"text 1: offsets 1\.\.9"):
        ok = np.frombuffer(b"a", np.uint8)
        write_shard(tmp_path / "c", lambda w: w.add_utf8(np.array([0, 1, 9]), ok, core), "uint16", None)


def test_copy_between_shards_and_int32(tmp_path: Path) -> None:
    ids = np.array([70_000, 1, 2, 3, 100_000], dtype=np.uint32)
    offsets = np.array([0, 2, 2, 5], dtype=np.int64)
    write_shard(tmp_path / "a", lambda w: w.add_ids(ids, offsets), "int32", 99)
    assert independent_read(tmp_path / "a") == ("int32", [[70_000, 1, 99], [99], [2, 3, 100_000, 99]])
    reader = ShardReader(str(tmp_path / "a.bin"), str(tmp_path / "a.idx"))
    picks = (np.array([0, 0, 0], np.int64), np.array([2, 0, 2], np.int64))
    write_shard(tmp_path / "b", lambda w: w.add_from([reader], *picks), "int32", None)
    assert independent_read(tmp_path / "b")[1] == [[2, 3, 100_000, 99], [70_000, 1, 99], [2, 3, 100_000, 99]]
    with pytest.raises(ValueError, match="does not fit in uint16"):
        write_shard(tmp_path / "c", lambda w: w.add_ids(ids, offsets), "uint16", 0)
    assert not (tmp_path / "c.bin").exists() and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="int32"):
        write_shard(tmp_path / "d", lambda w: w.add_from([reader], *picks), "uint16", None)


def test_full_disk_raises_enospc(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    writer = ShardWriter("/dev/full", str(tmp_path / "x.idx"), "uint16", 0)
    with pytest.raises(OSError) as info:
        writer.add_ids(np.arange(2_000_000, dtype=np.uint32) % 1000, np.array([0, 2_000_000], np.int64))
        writer.finish()
    assert info.value.errno == errno.ENOSPC
    assert "/dev/full" in str(info.value)


def test_bad_index_is_rejected(tmp_path: Path) -> None:
    write_shard(
        tmp_path / "a", lambda w: w.add_ids(np.arange(10, dtype=np.uint32), np.array([0, 10])), "uint16", 0
    )
    (tmp_path / "a.bin").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="outside"):
        ShardReader(str(tmp_path / "a.bin"), str(tmp_path / "a.idx"))
    with pytest.raises(ValueError, match="shorter than its index"):
        IndexedDataset(tmp_path / "a")
    (tmp_path / "a.idx").write_bytes(b"not an index at all, no")
    with pytest.raises(ValueError, match="bad header"):
        ShardReader(str(tmp_path / "a.bin"), str(tmp_path / "a.idx"))


@settings(max_examples=40, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(0, 2**31 - 1), max_size=40), max_size=30),
    eos=st.one_of(st.none(), st.integers(0, 65_535)),
    small=st.booleans(),
)
def test_round_trip_ids(
    tmp_path_factory: pytest.TempPathFactory, docs: list[list[int]], eos: int | None, small: bool
) -> None:
    dtype = "uint16" if small else "int32"
    if small:
        docs = [[i % 65_536 for i in d] for d in docs]
    ids = np.array([i for d in docs for i in d], dtype=np.uint32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    prefix = tmp_path_factory.mktemp("rt") / "s"
    info = write_shard(prefix, lambda w: w.add_ids(ids, offsets), dtype, eos)
    tail = [eos] if eos is not None else []
    assert independent_read(prefix) == (dtype, [[*d, *tail] for d in docs])
    assert info.tokens == sum(len(d) + len(tail) for d in docs)


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=200), max_size=20))
def test_round_trip_texts(
    tokenizer: Path, tmp_path_factory: pytest.TempPathFactory, texts: list[str]
) -> None:
    tok = Tokenizer.from_file(tokenizer)
    hf = HfTokenizer.from_file(str(tokenizer))
    texts = [t for t in texts if not any("\ud800" <= c <= "\udfff" for c in t)]
    prefix = tmp_path_factory.mktemp("rt") / "s"
    assert tok.core is not None
    write_shard(prefix, lambda w: w.add_texts(texts, tok.core), "uint16", tok.eos_id)
    assert independent_read(prefix)[1] == [
        [*hf.encode(t, add_special_tokens=False).ids, tok.eos_id] for t in texts
    ]

"""A small corpus with documents of two sources, written the way the stages write them
(CONTRACTS.md: ``docs/<source>/part-NNNNN.parquet`` + one catalog transaction per file), and an
independent Megatron ``.bin``/``.idx`` reader written from the documented layout."""

from __future__ import annotations

import hashlib
import random
import struct
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus, atomic_path, sha256_file

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Leslie", "Radia"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Lamport"]
CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Quito", "Perth", "Accra", "Hanoi", "Tunis"]
MAJORS = ["physics", "history", "biology", "music", "economics", "chemistry", "linguistics"]


def bios_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}"
        sentences = [
            f"{name} was born on {rng.randint(1, 28)} May {rng.randint(1900, 2000)} in {rng.choice(CITIES)}.",
            f"{name.split()[0]} studied {rng.choice(MAJORS)} at the University of {rng.choice(CITIES)}.",
            f"Later {name.split()[0]} worked in {rng.choice(CITIES)} for {rng.randint(2, 40)} years.",
        ]
        rng.shuffle(sentences)
        out.append(" ".join(sentences * rng.randint(1, 3)))
    return out


def code_texts(n: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if 200 < len(text) < 12_000:
            out.append(text)
        if len(out) == n:
            break
    return out


def add_source(
    corpus: Corpus, source: str, texts: list[str], *, per_file: int = 40, drop_every: int = 0
) -> list[str]:
    """Write ``texts`` as documents of ``source``; every ``drop_every``-th is marked dropped by
    dedup. Returns the document ids."""
    all_ids = []
    with Catalog.open(corpus) as catalog:
        catalog.ensure_source(source, "offline", "test")
        for part, start in enumerate(range(0, len(texts), per_file)):
            chunk = texts[start : start + per_file]
            ids = [f"{source}/{hashlib.sha256(t.encode()).hexdigest()[:16]}" for t in chunk]
            path = corpus.docs_dir(source) / f"part-{part:05d}.parquet"
            with atomic_path(path) as tmp:
                pq.write_table(pa.table({"id": ids, "text": chunk}), tmp)
            n = len(chunk)
            drop = [
                "dedup" if drop_every and (start + i) % drop_every == drop_every - 1 else None
                for i in range(n)
            ]
            rows = pa.table(
                {
                    "id": ids,
                    "source": [source] * n,
                    "kind": [source] * n,
                    "file": [corpus.relative(path)] * n,
                    "row": list(range(n)),
                    "chars": [len(t) for t in chunk],
                    "subject": ["biography" if source == "bios" else "programming"] * n,
                    "drop_stage": pa.array(drop, pa.string()),
                    "drop_reason": pa.array([d and "exact" for d in drop], pa.string()),
                }
            )
            with catalog.transaction():
                catalog.register_shard(
                    path, "docs", sha256=sha256_file(path), size=path.stat().st_size, rows=n, source=source
                )
                catalog.insert_documents(rows)
            all_ids.extend(ids)
    return all_ids


def make_corpus(root: Path, n_bios: int = 500, n_code: int = 60) -> Corpus:
    corpus = Corpus.create(root)
    add_source(corpus, "bios", bios_texts(n_bios), drop_every=10)
    add_source(corpus, "code", code_texts(n_code))
    return corpus


def kept_texts(corpus: Corpus) -> dict[str, str]:
    """id -> text of every kept document."""
    with Catalog.open(corpus, read_only=True) as catalog:
        rows = catalog.exec('SELECT id, file, "row" FROM documents WHERE drop_stage IS NULL')
    out = {}
    for doc_id, file, row in rows:
        out[doc_id] = pq.read_table(corpus.absolute(file)).column("text")[row].as_py()
    return out


def read_megatron(prefix: Path) -> list[np.ndarray]:
    """Sequences of ``prefix.bin``/``prefix.idx``, parsed from the documented layout only."""
    idx = Path(str(prefix) + ".idx").read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, code, n, d = struct.unpack_from("<QBQQ", idx, 9)
    assert version == 1
    dtype = {8: np.dtype("<u2"), 4: np.dtype("<i4")}[code]
    at = 34
    lengths = np.frombuffer(idx, "<i4", n, at)
    at += 4 * n
    pointers = np.frombuffer(idx, "<i8", n, at)
    at += 8 * n
    doc_index = np.frombuffer(idx, "<i8", d, at)
    at += 8 * d
    assert at == len(idx), "trailing bytes in .idx"
    assert d == n + 1 and doc_index.tolist() == list(range(n + 1)), "one sequence per document"
    data = Path(str(prefix) + ".bin").read_bytes()
    expected = 0
    out = []
    for length, pointer in zip(lengths.tolist(), pointers.tolist(), strict=True):
        assert pointer == expected, "sequences back to back"
        out.append(np.frombuffer(data, dtype, length, pointer).astype(np.int64))
        expected = pointer + length * dtype.itemsize
    assert expected == len(data), "trailing bytes in .bin"
    return out


@pytest.fixture()
def corpus(tmp_path: Path) -> Corpus:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture()
def megatron_reader() -> Callable[[Path], list[np.ndarray]]:
    return read_megatron


@pytest.fixture()
def corpus_factory() -> Callable[..., Corpus]:
    return make_corpus


@pytest.fixture()
def documents() -> Callable[[Corpus], dict[str, str]]:
    return kept_texts


@pytest.fixture()
def helpers() -> SimpleNamespace:
    """The document writers above, for tests that fill a corpus themselves."""
    return SimpleNamespace(add_source=add_source, bios_texts=bios_texts, code_texts=code_texts)

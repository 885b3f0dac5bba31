"""Decontamination: 13-gram overlaps with benchmark files, drop or flag, hits per benchmark."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phicorpus import _core
from phicorpus.catalog import Catalog
from phicorpus.config import DecontamConfig
from phicorpus.corpus import Corpus
from phicorpus.decontam import run_decontam

sys.path.insert(0, str(Path(__file__).parent / "filter"))
from test_stage import add_docs

QUESTION = "Write a function that returns the sum of the squares of the first n positive odd integers given n"


def _reference_hits(doc: str, bench: list[str], n: int) -> int:
    """Slow reference: n-grams of the normalized words, as sets of tuples."""

    def grams(t: str) -> list[tuple[str, ...]]:
        w = _core.normalize_text(t).split()
        return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)] if len(w) >= n else [tuple(w)]

    index = {g for b in bench for g in grams(b)}
    return sum(g in index for g in grams(doc))


def test_index_matches_a_reference() -> None:
    bench = [QUESTION, "a short one"]
    docs = [
        f"Intro. {QUESTION.upper()}! Then more text here.",
        "nothing in common at all here",
        "A short one",
    ]
    hits, labels = _core.NgramIndex(bench, [0, 1], 13).query(docs)
    assert hits.tolist() == [_reference_hits(d, bench, 13) for d in docs]
    assert labels.tolist() == [0, -1, 1]


@pytest.mark.parametrize("mode", ["drop", "flag"])
def test_run_decontam(tmp_path: Path, mode: str) -> None:
    humaneval = tmp_path / "humaneval.jsonl"
    humaneval.write_text(json.dumps({"prompt": QUESTION, "task_id": 1}) + "\n")
    mbpp = tmp_path / "mbpp.parquet"
    pq.write_table(pa.table({"text": ["Check whether a given string is a palindrome ignoring case and spaces "
                                      "and punctuation entirely please"]}), mbpp)  # fmt: skip
    corpus = Corpus.create(tmp_path / "c")
    ids = add_docs(corpus, "a", "textbook", "textbook", [
        f"Here is an exercise. {QUESTION}. Solve it.", "A clean document about trees and graphs.",
        "check whether a given string is a palindrome ignoring case and spaces and punctuation entirely",
    ])  # fmt: skip
    stats = run_decontam(corpus, [humaneval, mbpp], DecontamConfig(mode=mode))
    assert stats["contaminated"] == 2
    assert (
        stats["benchmarks"]["humaneval"]["documents"] == 1 and stats["benchmarks"]["mbpp"]["documents"] == 1
    )
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec("SELECT id, decontam_hits, drop_reason FROM documents ORDER BY id")
        table = cat.exec("SELECT benchmark, documents FROM decontam_hits ORDER BY 1")
    assert [r[1] > 0 for r in rows] == [True, False, True]
    expected = ["contaminated:humaneval", None, "contaminated:mbpp"] if mode == "drop" else [None] * 3
    assert [r[2] for r in rows] == expected
    assert table == [("humaneval", 1), ("mbpp", 1)]
    assert ids


def test_benchmark_without_fields_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"other": 1}\n')
    corpus = Corpus.create(tmp_path / "c")
    add_docs(corpus, "a", "textbook", "textbook", ["x"])
    with pytest.raises(ValueError, match="none of the fields"):
        run_decontam(corpus, [bad], DecontamConfig())

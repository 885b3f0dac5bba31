"""Web samples: loading JSONL/Parquet with file:line errors, sentence-boundary excerpts, relevance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phicorpus.prompts import WebIndex, WebSample, excerpt, load_web_samples


def test_excerpt_cuts_at_sentence_boundaries() -> None:
    text = " ".join(f"Sentence {i} has a few words in it." for i in range(100))
    for fraction in (0.0, 0.3, 0.99):
        cut = excerpt(text, 200, fraction)
        assert len(cut) <= 200
        assert cut.startswith("Sentence ") and cut.endswith(".")
        assert cut in text
    assert excerpt("Short text. Whole.", 200) == "Short text. Whole."
    long_sentence = "word " * 100
    cut = excerpt(long_sentence, 120)
    assert cut.endswith(" ...") and len(cut) <= 124


def test_relevance_prefers_shared_rare_words() -> None:
    samples = [WebSample(f"s{i}", f"Generic text number {i} about weather and food.") for i in range(30)]
    samples.append(WebSample("eigen", "Eigenvalues of a symmetric matrix are real numbers."))
    index = WebIndex(samples)
    rng = np.random.default_rng(0)
    assert {index.pick("Eigenvalues of symmetric matrices", rng) for _ in range(10)} == {30}
    picks = {index.pick("Nothing overlaps xyzzy", rng) for _ in range(50)}
    assert len(picks) > 5  # falls back to any sample


def test_load_jsonl_and_parquet(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(
        json.dumps({"id": "x1", "text": "Hello there."}) + "\n\n" + json.dumps({"text": "Hi."}) + "\n"
    )
    parquet = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": ["One.", "", "Two."], "url": ["u", "v", "w"]}), parquet)
    samples = load_web_samples([jsonl, parquet])
    assert [s.text for s in samples] == ["Hello there.", "Hi.", "One.", "Two."]
    assert samples[0].id == "x1" and samples[1].id.startswith("a-") and samples[2].id.startswith("b-")


def test_load_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"content": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected an object with a string 'text'"):
        load_web_samples([bad])
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not JSON"):
        load_web_samples([bad])
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"content": ["x"]}), parquet)
    with pytest.raises(ValueError, match=r"c\.parquet:0: no 'text' column"):
        load_web_samples([parquet])
    with pytest.raises(ValueError, match="web file: no such file or directory"):
        load_web_samples([tmp_path / "missing.jsonl"])

"""grade and the catalog: judge requests are rows of ``requests`` with their cost, failures are in
the summary line, ``--sources`` selects what is sampled, documents are cut to the judge's context,
and a judge whose chat template drops system messages still gets the rubric (system_prompt = user)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generate"))

from conftest import fast_config, write_prompts  # type: ignore[import-not-found]
from fake_server import Action, Call, FakeServer  # type: ignore[import-not-found]

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.verify.grade import grade


def _corpus(tmp_path: Path) -> Corpus:
    corpus = Corpus.create(tmp_path / "corpus")
    config = fast_config()
    for fmt in ("textbook", "stories"):
        prompts = write_prompts(tmp_path / f"{fmt}.parquet", 4, fmt)
        with FakeServer() as server:
            run_generation(
                corpus, prompts, endpoints=[server.url], model="m",
                params=GenerationParams.from_config(config), max_cost=0, config=config, echo=lambda s: None,
            )  # fmt: skip
    return corpus


def test_judge_requests_are_catalogued_and_failures_reported(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    config = fast_config(system_prompt="user")
    models = [{"id": "m", "object": "model", "max_model_len": 600}]

    def judge(call: Call) -> Action:
        if any(m["role"] == "system" for m in call.body["messages"]):
            return Action(text="no rubric seen")
        if call.index == 0:
            return Action("status", 400)
        return Action(text="Educational value: 4")

    lines: list[str] = []
    with FakeServer(plan=judge, models=models) as server:
        stats = grade(
            corpus, sample=10, endpoints=[server.url], model="m", config=config, sources=["textbook"],
            echo=lines.append,
        )  # fmt: skip
        users = [m["content"] for c in server.calls for m in c.body["messages"] if m["role"] == "user"]
    assert stats["sampled"] == 4  # only textbook documents
    assert stats["failed"] == 1 and stats["scored"] == 3, stats
    assert "1 requests failed: 4xx 1" in lines[-1], lines
    assert stats["max_chars"] <= (600 - 440) * 3 and all(len(u) <= stats["max_chars"] + 2000 for u in users)
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec(
            "SELECT status, count(*), sum(cost) FROM requests WHERE purpose = 'grade' GROUP BY ALL"
        )
    by = {r[0]: (r[1], r[2]) for r in rows}
    assert by["done"][0] == 3 and by["done"][1] > 0 and by["failed"][0] == 1


def test_unknown_source_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    with pytest.raises(ValueError, match="--sources nope: no kept documents"):
        grade(corpus, sample=2, endpoints=["http://127.0.0.1:9/v1"], model="m", config=fast_config(),
              sources=["nope"], echo=lambda s: None)  # fmt: skip

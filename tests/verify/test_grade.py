"""grade: the judge's answers are parsed into the catalog; a re-run pays for nothing twice."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generate"))

from conftest import fast_config, write_prompts  # type: ignore[import-not-found]
from fake_server import Action, Call, FakeServer  # type: ignore[import-not-found]

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.verify.grade import grade, parse_scores


def test_parse_scores() -> None:
    assert parse_scores("Grammar: 8/10\nCreativity: 6\n**Consistency:** 9", "tinystories") == {
        "grammar": 8.0,
        "creativity": 6.0,
        "consistency": 9.0,
    }
    assert parse_scores("Educational value: 4", "edu") == {"educational_value": 4.0}
    assert parse_scores("Educational value: 7", "edu") is None  # out of range
    assert parse_scores("Grammar: 8\nCreativity: 6", "tinystories") is None  # one missing
    assert parse_scores("I think it is good.", "edu") is None


def test_grade_scores_go_to_the_catalog(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.parquet", 8)
    corpus = Corpus.create(tmp_path / "corpus")
    config = fast_config()
    with FakeServer() as server:
        run_generation(
            corpus,
            prompts,
            endpoints=[server.url],
            model="m",
            params=GenerationParams.from_config(config),
            max_cost=0,
            config=config,
            echo=lambda s: None,
        )

    def judge(call: Call) -> Action:
        return Action(text="It is nice." if call.index == 0 else "Educational value: 3")

    with FakeServer(plan=judge) as judge_server:
        stats = grade(
            corpus, sample=5, endpoints=[judge_server.url], model="m", config=config, echo=lambda s: None
        )
        assert stats["sampled"] == 5 and stats["sent"] == 5
        assert stats["scored"] + stats["unparsed"] == 5 and stats["unparsed"] == 1
        again = grade(
            corpus, sample=5, endpoints=[judge_server.url], model="m", config=config, echo=lambda s: None
        )
        assert again["sent"] == 0 and len(judge_server.calls) == 5
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one(
            "SELECT count(*), min(value), max(value) FROM scores WHERE metric = 'educational_value'"
        ) == (4, 3.0, 3.0)

"""verify-exercises end to end: generated exercises, sandboxed tests, drops, pass@k; stories' words."""

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
from phicorpus.verify.exercises import pass_at_k, verify_exercises
from phicorpus.verify.sandbox import Sandbox, SandboxLimits, SandboxUnavailable

GOOD = (
    "### Problem\nAdd.\n\n### Solution\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "### Tests\n```python\nassert add(1, 2) == 3\n```\n"
)
BAD = GOOD.replace("return a + b", "return a - b")
CHEAT = GOOD.replace("return a + b", "return 0\nprint('passed')\nimport os\nos._exit(0)")


_STORY = (
    "It was warm and quiet, and the garden smelled of rain. Later a small bird sang by the gate, "
    "the children came home from school, and everyone ate bread with honey before going to bed."
)


def _sandbox_works() -> bool:
    try:
        Sandbox.probe(SandboxLimits(timeout=2))
        return True
    except SandboxUnavailable:
        return False


def _generate(tmp_path: Path, fmt: str = "exercises", words: list[str] | None = None) -> Corpus:
    texts = [GOOD, BAD, CHEAT]

    def plan(call: Call) -> Action:
        if fmt == "stories":
            # varied sentences: a story that loops one sentence is dropped as repetitive
            n = call.index
            if n % 2:
                return Action(
                    text=f"Once upon a time, on day {n}, a dog looked up and saw the moon. " + _STORY
                )
            return Action(
                text=f"Once upon a time, on day {n}, a cat slept all day long in the sun. " + _STORY
            )
        return Action(text=texts[call.index % 3])

    prompts = write_prompts(tmp_path / "p.parquet", 6, fmt=fmt, words=words)
    corpus = Corpus.create(tmp_path / "corpus")
    config = fast_config()
    with FakeServer(plan=plan) as server:
        run_generation(
            corpus,
            prompts,
            endpoints=[server.url],
            model="m",
            params=GenerationParams.from_config(config, samples=3),
            max_cost=0,
            config=config,
            echo=lambda s: None,
        )
    return corpus


@pytest.mark.skipif(not _sandbox_works(), reason="bubblewrap cannot create namespaces here")
def test_verify_keeps_passing_samples_and_records_pass_at_k(tmp_path: Path) -> None:
    corpus = _generate(tmp_path)
    stats = verify_exercises(corpus, config=fast_config(sandbox_timeout=3.0), echo=lambda s: None)
    assert stats["exercises"] == 18 and stats["passed"] == 6 and stats["failed"] == 12
    with Catalog.open(corpus, read_only=True) as cat:
        kept = cat.exec("SELECT id FROM documents WHERE source = 'exercises' AND drop_stage IS NULL")
        assert len(kept) == 6
        assert cat.exec_one("SELECT count(*) FROM documents WHERE drop_stage = 'verify'") == (12,)
        rows = cat.exec("SELECT n, c, pass_at_1, pass_at_k FROM pass_at_k")
    assert len(rows) == 6
    for n, c, p1, pk in rows:
        assert n == 3 and p1 == pytest.approx(c / 3) and pk == pass_at_k(n, c, n)
    again = verify_exercises(corpus, config=fast_config(), echo=lambda s: None)
    assert again["exercises"] == 0  # verified once


def test_without_a_sandbox_nothing_runs_and_samples_stay_unverified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _generate(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    stats = verify_exercises(corpus, config=fast_config(), echo=lambda s: None)
    assert stats["unverified"] == 18 and stats["passed"] == 0 and "not installed" in stats["sandbox"]
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one("SELECT count(*) FROM verifications WHERE status = 'unverified'") == (18,)
        assert cat.exec_one("SELECT count(*) FROM documents WHERE drop_stage IS NOT NULL") == (0,)


def test_stories_need_their_words(tmp_path: Path) -> None:
    corpus = _generate(tmp_path, fmt="stories", words=["dog", "moon"])
    stats = verify_exercises(corpus, config=fast_config(), echo=lambda s: None)
    assert stats["stories"] == 18 and stats["stories_missing_words"] == 9
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one("SELECT count(*) FROM documents WHERE drop_reason = 'missing-words'") == (9,)


def test_pass_at_k_estimator() -> None:
    assert pass_at_k(3, 0, 1) == 0.0 and pass_at_k(3, 3, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 2) == pytest.approx(0.5)

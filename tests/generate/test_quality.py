"""Quality gates for LLM text: restating the prompt, degenerate loops, wrong language; openers."""

from __future__ import annotations

from pathlib import Path

from conftest import fast_config, write_prompts
from fake_server import Action, Call, FakeServer

from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.postprocess import opener, process_output
from phicorpus.stats import corpus_stats, format_stats

PROMPT = (
    "Write a section of a textbook for high school students about how plants turn light into "
    "chemical energy. Explain the light reactions, the Calvin cycle and why leaves are green."
)
ANSWER = (
    "Plants capture sunlight in their chloroplasts. The pigment chlorophyll absorbs red and blue light "
    "and reflects green, which is why leaves look green to us. In the light reactions, water is split, "
    "oxygen is released and the energy is stored in ATP and NADPH. The Calvin cycle then uses that "
    "stored energy to fix carbon dioxide from the air into sugars that the plant can use to grow."
)


def _check(text: str, **kw: object) -> str | None:
    return process_output(text, "stop", "textbook", min_chars=20, prompt=PROMPT, **kw).drop_reason  # type: ignore[arg-type]


def test_an_answer_that_restates_the_prompt_is_dropped() -> None:
    assert _check(ANSWER) is None
    assert _check("Sure! Here it is:\n\n" + PROMPT) == "restates-prompt"
    assert _check(PROMPT + " " + PROMPT[:60]) == "restates-prompt"


def test_a_degenerate_loop_is_dropped() -> None:
    loop = ANSWER[:120] + " " + "and the plant grows and the plant grows " * 20
    assert _check(loop) == "repetitive"


def test_a_wrong_language_answer_is_dropped() -> None:
    french = (
        "Les plantes captent la lumière du soleil dans leurs chloroplastes. La chlorophylle absorbe "
        "la lumière rouge et bleue et réfléchit le vert, ce qui explique pourquoi les feuilles nous "
        "paraissent vertes. Pendant la phase lumineuse, l'eau est scindée, l'oxygène est libéré et "
        "l'énergie est stockée dans l'ATP et le NADPH. Le cycle de Calvin utilise ensuite cette énergie "
        "pour fixer le dioxyde de carbone de l'air en sucres."
    )
    assert _check(french) == "wrong-language"


def test_openers_are_counted_per_format_in_stats(tmp_path: Path) -> None:
    assert opener("Once upon a time, a fox") == "once upon a time"
    assert opener("## In the realm of numbers") == "in the realm of"
    assert opener(ANSWER) is None

    def plan(call: Call) -> Action:
        first = "Once upon a time, there was a leaf. " if call.index % 2 else ""
        return Action(text=first + ANSWER + f" Note {call.key[:8]}.")

    with FakeServer(plan=plan) as server:
        corpus = Corpus.create(tmp_path / "corpus")
        prompts = write_prompts(tmp_path / "prompts.parquet", 6)
        config = fast_config()
        run_generation(
            corpus, prompts, endpoints=[server.url], model="m", params=GenerationParams.from_config(config),
            max_cost=0.0, config=config, echo=lambda _: None,
        )  # fmt: skip
    stats = corpus_stats(corpus)
    assert stats["openers"] == [{"format": "textbook", "opener": "once upon a time", "documents": 3}]
    assert "boilerplate openers" in format_stats(stats)

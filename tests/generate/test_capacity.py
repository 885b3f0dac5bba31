"""Capacity-aware sending against the loopback server: slots discovered or measured, an unreachable
endpoint reported within seconds, truncated answers continued (and resumed without paying twice)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import fast_config, write_prompts
from fake_server import Action, Call, FakeServer
from tests.llama_server import free_port

from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.engine import CONTINUE
from phicorpus.generate.journal import iter_journal


def _run(tmp: Path, urls: list[str], n: int, retry_failed: bool = False, **cfg: object):
    corpus = Corpus.create(tmp / "corpus")
    prompts = tmp / "prompts.parquet"
    if not prompts.exists():
        write_prompts(prompts, n)
    config = fast_config(**cfg)
    lines: list[str] = []
    stats = run_generation(
        corpus, prompts, endpoints=urls, model="m", params=GenerationParams.from_config(config),
        max_cost=0.0, config=config, echo=lines.append, retry_failed=retry_failed,
    )  # fmt: skip
    return corpus, stats, lines


def test_slots_from_llama_cpp_props_set_the_concurrency(tmp_path: Path) -> None:
    props = {"total_slots": 3, "default_generation_settings": {"n_ctx": 4096}}
    with FakeServer(slots=3, latency=0.02, props=props) as server:
        _, stats, lines = _run(tmp_path, [server.url], 24, concurrency=0, adaptive=False)
    assert stats["done"] == 24
    assert any("concurrency 4 to start" in line and "3 slot(s)" in line for line in lines), lines
    assert server.max_running == 3


def test_unknown_capacity_is_measured(tmp_path: Path) -> None:
    # A server that runs 6 at once and says nothing: the limit climbs from 4 to about 6, not beyond
    # what pays (the old client grew on every success, to its maximum of 64).
    with FakeServer(slots=6, latency=0.01, token_seconds=0.008, completion_tokens=40) as server:
        _, stats, _ = _run(tmp_path, [server.url], 200, concurrency=0, max_concurrency=64)
    assert stats["done"] == 200
    assert server.max_running == 6
    assert 6 <= stats["concurrency"]["final"] <= 20, stats["concurrency"]


def test_context_from_the_server_bounds_max_tokens(tmp_path: Path) -> None:
    models = [{"id": "m", "object": "model", "max_model_len": 120}]
    with FakeServer(models=models) as server:
        _, stats, _ = _run(tmp_path, [server.url], 3, max_tokens=1000)
    assert stats["done"] == 3
    assert all(0 < c.body["max_tokens"] < 120 for c in server.calls)


def test_unreachable_endpoint_stops_within_seconds_and_nothing_is_billed(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.monotonic()
    corpus, stats, _ = _run(tmp_path, [url], 5, unreachable_wait=2.0)
    assert time.monotonic() - start < 10
    assert stats["stop_reason"].startswith("endpoint unreachable: " + url), stats
    assert stats["sent"] == 0 and stats["possibly_billed_usd"] == 0
    records = list(iter_journal(corpus.requests_dir / "generate.jsonl"))
    assert not any(r.get("billed") for r in records)


def test_truncated_answer_is_continued_and_a_rerun_does_not_pay_for_the_first_part(tmp_path: Path) -> None:
    def first_run(call: Call) -> Action:
        if len(call.body["messages"]) == 2:  # the first part: cut at max_tokens
            return Action(text="The first half of a long answer, cut", finish_reason="length")
        return Action("status", 400)  # the continuation fails for good this time

    with FakeServer(plan=first_run) as server:
        _, stats, _ = _run(tmp_path, [server.url], 3, max_continuations=2)
    assert stats["failed"] == 3 and len(server.calls) == 6

    def second_run(call: Call) -> Action:
        return Action(text=" and its second half, which ends here." + " More words." * 20)

    with FakeServer(plan=second_run) as server:
        corpus, stats, _ = _run(tmp_path, [server.url], 3, max_continuations=2, retry_failed=True)
    assert stats["done"] == 3
    assert len(server.calls) == 3  # only the continuations: the first parts were paid for already
    for call in server.calls:
        roles = [m["role"] for m in call.body["messages"]]
        assert roles == ["system", "user", "assistant", "user"]
        assert call.body["messages"][2]["content"] == "The first half of a long answer, cut"
        assert call.body["messages"][3]["content"] == CONTINUE
    results = [r for r in iter_journal(corpus.requests_dir / "generate.jsonl") if r["t"] == "result"]
    assert all(r["parts"] == 2 for r in results)
    assert all(r["text"].startswith("The first half of a long answer, cut and its") for r in results)


def test_loopback_model_without_price_is_free_and_capped(tmp_path: Path) -> None:
    with FakeServer() as server:
        corpus = Corpus.create(tmp_path / "corpus")
        prompts = write_prompts(tmp_path / "prompts.parquet", 4)
        config = fast_config(prices={})
        lines: list[str] = []
        stats = run_generation(
            corpus, prompts, endpoints=[server.url], model="local-model",
            params=GenerationParams.from_config(config), max_cost=1.0, config=config, echo=lines.append,
        )  # fmt: skip
    assert stats["done"] == 4 and stats["spent_usd"] == 0.0
    assert any("priced at $0" in line for line in lines), lines
    plan = next(line for line in lines if line.startswith("plan:"))
    for part in ("prompt tokens", "output tokens expected", "time unknown until measured"):
        assert part in plan, plan
    assert not any("nan" in line.lower() for line in lines), lines


def test_remote_model_without_price_fails_before_sending(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    prompts = write_prompts(tmp_path / "prompts.parquet", 2)
    config = fast_config(prices={})
    try:
        run_generation(
            corpus, prompts, endpoints=["http://llm.invalid/v1"], model="remote-model",
            params=GenerationParams.from_config(config), max_cost=1.0, config=config, echo=lambda _: None,
        )  # fmt: skip
    except ValueError as exc:
        assert "has no price" in str(exc)
    else:
        raise AssertionError("an unpriced remote model with --max-cost must fail")
    assert not (corpus.requests_dir / "generate.jsonl").exists()


def test_off_a_terminal_progress_lines_are_printed(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from phicorpus.generate.progress import Progress

    monkeypatch.setattr(Progress, "every", 0.3)
    with FakeServer(latency=0.05) as server:
        _run(tmp_path, [server.url], 40, concurrency=2, adaptive=False)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("progress: ")]
    assert len(lines) >= 2, lines
    last = lines[-1]
    for part in ("/40 ", "req/s", "tok/s", "$", "ETA"):
        assert part in last, last

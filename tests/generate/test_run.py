"""run_generation against the loopback server: real HTTP, the real SDK, faults injected."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
from conftest import fast_config, write_prompts
from fake_server import Action, Call, FakeServer

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, estimate_cost, run_generation
from phicorpus.generate.journal import iter_journal


def _run(
    tmp: Path, server_urls: list[str], n: int = 10, samples: int = 1, max_cost: float = 0.0, **cfg: object
):
    corpus = Corpus.create(tmp / "corpus")
    prompts = tmp / "prompts.parquet"
    if not prompts.exists():
        write_prompts(prompts, n)
    config = fast_config(**cfg)
    stats = run_generation(
        corpus,
        prompts,
        endpoints=server_urls,
        model="m",
        params=GenerationParams.from_config(config, samples=samples),
        max_cost=max_cost,
        config=config,
        echo=lambda s: None,
    )
    return corpus, stats


def _docs(corpus: Corpus) -> list[tuple[str, str | None]]:
    with Catalog.open(corpus, read_only=True) as cat:
        return [(r[0], r[1]) for r in cat.exec("SELECT id, drop_reason FROM documents ORDER BY id")]


def test_generates_every_prompt_once_and_rerun_sends_nothing(tmp_path: Path, server: FakeServer) -> None:
    corpus, stats = _run(tmp_path, [server.url], n=12, samples=2)
    assert stats["done"] == 24 and stats["failed"] == 0
    assert len(server.calls) == 24
    docs = _docs(corpus)
    assert len(docs) == 24 and all(d[1] is None for d in docs)
    # the Parquet shards hold the text, boilerplate opener stripped, at the rows the catalog says
    with Catalog.open(corpus, read_only=True) as cat:
        file, row, doc_id = cat.exec_one('SELECT file, "row", id FROM documents ORDER BY id LIMIT 1')  # type: ignore[misc]
        table = pq.read_table(corpus.absolute(file))
        assert table.column("id")[row].as_py() == doc_id
        assert table.column("text")[row].as_py().startswith("Document ")
        assert cat.exec_one("SELECT count(*) FROM requests WHERE status = 'done'") == (24,)
    _, again = _run(tmp_path, [server.url], n=12, samples=2)
    assert again["sent"] == 0 and again["already_answered"] == 24
    assert len(server.calls) == 24
    assert len(_docs(corpus)) == 24


def test_system_user_columns_and_seed_per_sample(tmp_path: Path, server: FakeServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", 3, messages_form=False)
    _, stats = _run(tmp_path, [server.url], n=3, samples=2, seed=7)
    assert stats["done"] == 6
    seeds = sorted(c.body["seed"] for c in server.calls)
    assert seeds == [7, 7, 7, 8, 8, 8]
    assert server.calls[0].body["messages"][0] == {"role": "system", "content": "You write."}


def test_retry_after_is_obeyed(tmp_path: Path) -> None:
    def plan(call: Call) -> Action:
        if call.n == 1:
            return Action("status", 429, headers={"retry-after": "1"})
        return Action()

    with FakeServer(plan=plan) as server:
        _, stats = _run(tmp_path, [server.url], n=3)
    assert stats["done"] == 3
    for key in {c.key for c in server.calls}:
        first, second = [c for c in server.calls if c.key == key]
        assert second.start - first.end >= 1.0, "retried before Retry-After"


def test_always_failing_server_sees_exactly_the_attempt_cap(tmp_path: Path) -> None:
    with FakeServer(plan=lambda c: Action("status", 500)) as server:
        corpus, stats = _run(tmp_path, [server.url], n=5, max_attempts=3)
        assert stats["failed"] == 5 and stats["done"] == 0
        assert len(server.calls) == 15
        assert all(n == 3 for n in server.counts.values())
        with Catalog.open(corpus, read_only=True) as cat:
            assert cat.exec_one("SELECT count(*), max(attempts) FROM requests WHERE status = 'failed'") == (
                5,
                3,
            )


def test_permanent_4xx_is_not_retried_and_not_resent(tmp_path: Path) -> None:
    body = {"error": {"message": "bad model", "type": "invalid_request_error", "code": "model_not_found"}}
    with FakeServer(plan=lambda c: Action("status", 404, body=body)) as server:
        corpus, stats = _run(tmp_path, [server.url], n=4)
        assert stats["failed"] == 4 and len(server.calls) == 4
        with Catalog.open(corpus, read_only=True) as cat:
            (error,) = cat.exec_one("SELECT any_value(error) FROM requests")  # type: ignore[misc]
        assert "model_not_found" in error and "bad model" in error
        _, again = _run(tmp_path, [server.url], n=4)
        assert again["sent"] == 0 and len(server.calls) == 4


def test_quota_error_stops_the_run_with_no_further_calls(tmp_path: Path) -> None:
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }

    def plan(call: Call) -> Action:
        return Action("status", 429, body=quota) if call.index >= 4 else Action()

    with FakeServer(plan=plan) as server:
        corpus, stats = _run(tmp_path, [server.url], n=20, concurrency=1, max_concurrency=1)
    assert stats["stop_reason"] == "quota exhausted"
    assert len(server.calls) == 5  # four answered, the fifth said "quota", nothing after
    assert stats["done"] == 4
    assert len(_docs(corpus)) == 4


def test_quota_with_concurrency_sends_nothing_after_the_quota_answer(tmp_path: Path) -> None:
    quota = {"error": {"code": "insufficient_quota", "message": "quota"}}

    def plan(call: Call) -> Action:
        return Action("status", 429, body=quota) if call.index >= 10 else Action()

    with FakeServer(plan=plan, latency=0.02) as server:
        _, stats = _run(tmp_path, [server.url], n=200, concurrency=8, max_concurrency=8)
        first_quota_end = min(c.end for c in server.calls if c.outcome == "429")
        late = [c for c in server.calls if c.start > first_quota_end + 0.005]
    assert stats["stop_reason"] == "quota exhausted"
    assert len(server.calls) <= 10 + 8
    assert not late


def test_cost_cap_is_never_exceeded(tmp_path: Path) -> None:
    for concurrency in (1, 16):
        with FakeServer(latency=0.01, completion_tokens=90) as server:
            sub = tmp_path / f"c{concurrency}"
            sub.mkdir()
            cap = 0.012  # output 90 tokens * $10/M = $0.0009 per request, plus prompt tokens
            _, stats = _run(
                sub, [server.url], n=100, max_cost=cap, concurrency=concurrency, max_concurrency=concurrency
            )
            billed = sum((c.prompt_tokens * 1.0 + c.completion_tokens * 10.0) / 1e6 for c in server.calls)
        assert stats["stop_reason"] == "cost cap"
        assert billed <= cap, (billed, cap)
        assert stats["spent_usd"] <= cap
        assert 5 <= stats["done"] < 100
        assert abs(stats["spent_usd"] - billed) < 1e-9
        # a re-run with the same cap sends nothing more: earlier spending counts
        before = len(server.calls)
        with FakeServer(latency=0.0, completion_tokens=90) as again_server:
            _, again = _run(sub, [again_server.url], n=100, max_cost=cap)
            assert again["spent_usd"] <= cap
            billed_again = sum(
                (c.prompt_tokens + c.completion_tokens * 10.0) / 1e6 for c in again_server.calls
            )
        assert billed + billed_again <= cap
        assert before == len(server.calls)


def test_timeouts_and_malformed_bodies_are_retried_and_priced_as_possibly_billed(tmp_path: Path) -> None:
    def plan(call: Call) -> Action:
        if call.n == 1:
            return Action("hang", seconds=3) if int(call.key, 16) % 2 else Action("malformed")
        if call.n == 2 and int(call.key, 16) % 3 == 0:
            return Action("drop")
        return Action()

    with FakeServer(plan=plan) as server:
        corpus, stats = _run(tmp_path, [server.url], n=8, request_timeout=0.4)
    assert stats["done"] == 8 and stats["failed"] == 0
    # every first attempt failed (hang or garbled body); a dropped connection may read as either
    # a connection error or a timeout depending on the HTTP transport
    assert stats["errors"].get("timeout", 0) + stats["errors"].get("malformed", 0) >= 8
    drops = sum(1 for c in server.calls if c.outcome == "drop")
    assert sum(stats["errors"].values()) == 8 + drops
    assert stats["possibly_billed_usd"] > 0
    journal = list(iter_journal(corpus.requests_dir / "generate.jsonl"))
    assert sum(1 for r in journal if r["t"] == "result") == 8
    assert all(r["billed"] for r in journal if r["t"] == "fail" and r["kind"] in ("timeout", "malformed"))


def test_several_endpoints_share_the_load_and_a_failing_one_rests(tmp_path: Path) -> None:
    with FakeServer(latency=0.02) as a, FakeServer(latency=0.02) as b:
        _, stats = _run(tmp_path, [a.url, b.url], n=40, concurrency=8, max_concurrency=8)
        assert stats["done"] == 40
        assert len(a.calls) >= 10 and len(b.calls) >= 10
    sub = tmp_path / "second"
    sub.mkdir()
    with FakeServer(latency=0.01) as good, FakeServer(plan=lambda c: Action("status", 502)) as bad:
        _, stats = _run(
            sub,
            [bad.url, good.url],
            n=40,
            concurrency=4,
            max_concurrency=4,
            endpoint_failures=3,
            endpoint_rest=30.0,
            max_attempts=6,
        )
        assert stats["done"] == 40
        assert len(bad.calls) <= 3 + 4  # it rests after 3 failures in a row (plus those already in flight)


def test_rate_limit_headers_are_adopted(tmp_path: Path) -> None:
    with FakeServer(
        headers={"x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "100"}
    ) as s:
        start = time.monotonic()
        _, stats = _run(tmp_path, [s.url], n=30, concurrency=8)
        elapsed = time.monotonic() - start
    assert stats["done"] == 30
    starts = sorted(c.start for c in s.calls)
    # 20 requests/s once the limit is known: the last 20 calls span at least ~0.9 s
    assert starts[-1] - starts[-21] >= 0.9, elapsed


def test_adaptive_concurrency_backs_off_on_503(tmp_path: Path) -> None:
    def plan(call: Call) -> Action:
        return Action("status", 503) if call.index < 20 else Action()

    with FakeServer(plan=plan, latency=0.01) as s:
        corpus, stats = _run(tmp_path, [s.url], n=30, concurrency=16, max_concurrency=16, max_attempts=10)
    assert stats["done"] == 30
    with Catalog.open(corpus, read_only=True) as cat:
        (blob,) = cat.exec_one("SELECT stats FROM stage_runs ORDER BY id DESC LIMIT 1")  # type: ignore[misc]
    assert json.loads(blob)["errors"]["5xx"] >= 1


def test_truncated_and_short_outputs_are_kept_with_reasons(tmp_path: Path) -> None:
    def plan(call: Call) -> Action:
        i = call.index % 3
        if i == 0:
            return Action(finish_reason="length")
        if i == 1:
            return Action(text="Sure! Here it is:\n\nshort")
        return Action()

    with FakeServer(plan=plan) as s:
        corpus, stats = _run(tmp_path, [s.url], n=9, concurrency=1, max_concurrency=1, max_continuations=0)
    reasons = sorted(r for _, r in _docs(corpus) if r)
    assert reasons == ["too-short"] * 3 + ["truncated"] * 3
    assert stats["dropped"] == {"too-short": 3, "truncated": 3}
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one("SELECT sum(count) FROM drop_counts WHERE stage = 'generate'") == (6,)


def test_estimate_cost_counts_samples_and_prices() -> None:
    rows = [{"id": "a", "format": "textbook", "user": "x" * 400, "expected_tokens": 1000}]
    config = fast_config(max_tokens=2000)
    usd, seconds = estimate_cost(rows, "m", GenerationParams(max_tokens=2000, samples=3), config)
    # 3 x (1000 out x $10/M + ~105 in x $1/M)
    assert abs(usd - 3 * (1000 * 10 + 105) / 1e6) < 3 * 10 / 1e6
    assert seconds > 0
    nan, _ = estimate_cost(rows, "unpriced-model", GenerationParams(), config)
    assert nan != nan

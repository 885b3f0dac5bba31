"""Retry classification, backoff, buckets, adaptive concurrency, cost meter, post-processing."""

from __future__ import annotations

import asyncio
import random

from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.generate.cost import CostMeter, model_price, prompt_tokens_upper, request_cost
from phicorpus.generate.limits import AdaptiveConcurrency, RateLimiter, TokenBucket, parse_duration
from phicorpus.generate.postprocess import parse_exercise, process_output, strip_boilerplate
from phicorpus.generate.retry import RetryPolicy, classify_status, parse_retry_after


def test_classification() -> None:
    assert classify_status(429, {"error": {"code": "insufficient_quota"}}, {}).quota
    f = classify_status(429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after": "3"})
    assert f.transient and f.throttled and f.retry_after == 3.0 and not f.billed
    assert classify_status(500, None, {}).billed
    for status in (408, 409):
        assert classify_status(status, None, {}).transient
    for status in (400, 401, 403, 404, 422):
        failure = classify_status(status, {"error": {"message": "nope"}}, {})
        assert not failure.transient and "nope" in failure.reason


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert (
        9
        <= (parse_retry_after({"retry-after": "Thu, 01 Jan 2037 00:00:10 GMT"}, now=2114380800.0) or 0)
        <= 10
    )
    assert parse_retry_after({}) is None


def test_backoff_is_jittered_and_capped_and_floored_by_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=8.0)
    rng = random.Random(0)
    delays = [policy.delay(10, None, rng) for _ in range(200)]
    assert max(delays) <= 8.0 and min(delays) >= 0 and len(set(delays)) > 100
    assert all(policy.delay(1, 5.0, rng) >= 5.0 for _ in range(50))


def test_token_bucket_and_durations() -> None:
    bucket = TokenBucket(10.0, 2.0)
    bucket.take(2.0)
    assert 0.05 < bucket.wait_time(1.0) <= 0.1
    assert (
        parse_duration("6m0s") == 360.0 and parse_duration("20ms") == 0.02 and parse_duration("1.5s") == 1.5
    )
    limiter = RateLimiter()
    limiter.observe(
        {
            "x-ratelimit-limit-tokens": "600000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2s",
        }
    )
    assert limiter.tokens.rate == 10000.0 and limiter.paused_until > 0


def _settle(conc: AdaptiveConcurrency, slots: int, windows: int = 40) -> list[int]:
    """Feed ``conc`` the throughput of a server running ``slots`` requests at once (100 tok/s each;
    as many in flight as slots leave them idle 15% of the time between answers)."""
    seen = []
    for _ in range(windows):
        busy = min(conc.limit, slots) * (0.85 if conc.limit <= slots else 1.0)
        conc.observe_window(100.0 * busy)
        seen.append(conc.limit)
    return seen


def test_adaptive_concurrency_follows_throughput() -> None:
    # one slot (a CPU llama.cpp server): settles at 2-5 in flight, never climbs on success alone
    for start in (1, 4, 64):
        seen = _settle(AdaptiveConcurrency(start, 256), slots=1)
        assert 2 <= seen[-1] <= 5 and max(seen[10:]) <= 6, (start, seen)
    # 256 slots (vLLM): climbs to them within ten windows
    seen = _settle(AdaptiveConcurrency(4, 256), slots=256)
    assert seen[9] >= 200, seen
    # 24 slots: ends between the slots and a few more
    seen = _settle(AdaptiveConcurrency(4, 256), slots=24)
    assert 24 <= seen[-1] <= 33, seen
    # fixed
    assert _settle(AdaptiveConcurrency(7, 256, adaptive=False), slots=1)[-1] == 7


def test_adaptive_concurrency_cuts_on_dense_throttling_only() -> None:
    async def main() -> None:
        conc = AdaptiveConcurrency(16, 64)
        for _ in range(16):
            await conc.acquire()
        waiter = asyncio.create_task(conc.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()
        rng = random.Random(0)
        for _ in range(400):  # 5% of attempts throttled (sparse 429s): retried, not obeyed
            if rng.random() < 0.05:
                conc.failure(throttled=True)
            else:
                conc.success()
        assert conc.limit == 16 and conc.cuts == 0
        n = 0
        while not conc.cuts:  # most attempts throttled (a rate limit): cut soon
            conc.failure(throttled=True)
            n += 1
        assert n <= 20 and conc.limit == 9
        for _ in range(9):  # then the count starts afresh: no second cut on the same burst
            conc.failure(throttled=True)
        assert conc.cuts == 1
        conc.release()
        await asyncio.sleep(0)
        assert not waiter.done()  # still over the new limit

    asyncio.run(main())


def test_cost_meter_and_prices() -> None:
    price = ModelPrice(2.0, 8.0, batch=0.5)
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    assert request_cost(price, usage) == (1000 * 2 + 500 * 8) / 1e6
    assert request_cost(price, usage, batch=True) == request_cost(price, usage) / 2
    meter = CostMeter(price, cap=1.0)
    assert meter.reserve(0.6) and not meter.reserve(0.6)
    meter.settle(0.6, None)  # unknown outcome: counted as spent at worst case
    assert meter.possibly == 0.6 and not meter.reserve(0.5) and meter.reserve(0.4)
    config = GenerateConfig()
    assert model_price("gpt-4o-2024-08-06", config) == model_price("gpt-4o", config)
    assert model_price("nope", config) is None
    assert prompt_tokens_upper([{"role": "user", "content": "héllo"}]) >= len("héllo".encode())


def test_postprocess() -> None:
    assert strip_boilerplate("Certainly! Here's a story:\n\nOnce upon a time.") == "Once upon a time."
    assert strip_boilerplate("Once upon a time.") == "Once upon a time."
    text = (
        "### Problem\nSum two numbers.\n\n### Solution\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
        "### Tests\n```python\nassert add(2, 2) == 4\n```\n"
    )
    ex = parse_exercise(text)
    assert ex and ex.solution_code.startswith("def add") and ex.tests_code.startswith("assert")
    assert parse_exercise("### Problem\nx\n### Solution\nno code") is None
    # A python-tests answer must parse; a text exercise (a worked maths problem) need not.
    # (varied: a text repeated five times is a degenerate loop, dropped as such)
    worked = " ".join(f"Problem {i}. What is {i} + {i + 3}? Solution: count on from {i}." for i in range(5))
    assert process_output(worked, "stop", "exercises", min_chars=10).drop_reason == "unparsed-exercise"
    kept = process_output(worked, "stop", "exercises", min_chars=10, answer_format="text")
    assert kept.drop_reason is None and kept.exercise is None
    parsed = process_output(text, "stop", "exercises", min_chars=10, answer_format="python-tests")
    assert parsed.exercise is not None and parsed.exercise.entry_point == "add"
    assert process_output("x" * 300, "length", "textbook", min_chars=10).drop_reason == "truncated"
    assert process_output("  ", "stop", "textbook", min_chars=10).drop_reason == "empty"
    assert process_output("tiny", "stop", "textbook", min_chars=10).drop_reason == "too-short"
    story = process_output(
        "The dog ran to the park. It saw a ball. The ball was red. A boy threw it far. They played.",
        "stop",
        "stories",
        min_chars=10,
        words=["dog", "moon"],
    )
    assert story.drop_reason is None and story.missing_words == ("moon",)

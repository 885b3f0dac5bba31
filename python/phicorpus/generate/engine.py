"""The sending loop: concurrency, rate limits, cost cap, endpoints, retries, journal.

For each request not yet answered, one coroutine makes attempts until it has a result, a
permanent failure, or has used the per-key attempt cap. Before every attempt:

1. the run has not been stopped (quota exhausted, cost cap reached, Ctrl-C);
2. the cost meter reserves the attempt's worst case (waiting for in-flight ones to settle if that
   would cross ``--max-cost``; stopping if nothing is in flight and it still would);
3. the request and token buckets allow it, and an endpoint is awake;
4. a ``send`` record is fsynced to the journal.

The result is fsynced to the journal before the request counts as done and before it is handed
to ``on_result``; so a ``kill -9`` at any point loses nothing received, and a re-run (which skips
every key with a result) never pays for one twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.generate.client import AttemptFailed, Completion, LLMClient
from phicorpus.generate.cost import CostMeter, prompt_tokens_upper, request_cost, worst_case_cost
from phicorpus.generate.endpoints import Endpoint, EndpointPool
from phicorpus.generate.journal import RequestJournal
from phicorpus.generate.limits import AdaptiveConcurrency, RateLimiter
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import Request
from phicorpus.generate.retry import RetryPolicy

__all__ = ["Engine", "EngineStats"]

ResultHook = Callable[[Request, dict[str, Any]], Awaitable[None]]


@dataclass
class EngineStats:
    sent: int = 0  # attempts put on the wire
    done: int = 0
    failed: int = 0  # keys that failed for good in this run
    errors: Counter[str] = field(default_factory=Counter)
    stop_reason: str | None = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    failures: list[tuple[Request, dict[str, Any]]] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        *,
        journal: RequestJournal,
        urls: Sequence[str],
        api_key: str,
        model: str,
        config: GenerateConfig,
        price: ModelPrice | None,
        max_cost: float,
        progress: Progress,
        on_result: ResultHook,
        purpose: str = "generate",
    ) -> None:
        self.journal = journal
        self.model = model
        self.config = config
        self.price = price
        self.pool = EndpointPool(list(urls), failures=config.endpoint_failures, rest=config.endpoint_rest)
        self.api_key = api_key
        self.clients: dict[str, LLMClient] = {}
        self.meter = CostMeter(price, max_cost)
        # Money the journal says earlier runs spent or may have spent counts against the cap too.
        self.meter.spent += sum(journal.state.results.values())
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.concurrency = AdaptiveConcurrency(
            config.concurrency, config.max_concurrency, adaptive=config.adaptive
        )
        self.policy = RetryPolicy(config.max_attempts, config.backoff_base, config.backoff_max)
        self.progress = progress
        self.on_result = on_result
        self.purpose = purpose
        self.stats = EngineStats()
        self._stop: str | None = None
        self._settled = asyncio.Event()

    def possibly_billed_before(self, requests: Sequence[Request]) -> None:
        """Attempts of earlier runs with no known outcome (killed in flight, timed out) may be billed."""
        if self.price is None:
            return
        state = self.journal.state
        for request in requests:
            n = state.unresolved.get(request.key, 0) + state.billed_unknown.get(request.key, 0)
            if n:
                self.meter.possibly += n * self._worst(request)

    def _worst(self, request: Request) -> float:
        if self.price is None:
            return 0.0
        return worst_case_cost(
            self.price, prompt_tokens_upper(request.messages), int(request.api["max_tokens"])
        )

    def stop(self, reason: str) -> None:
        if self._stop is None:
            self._stop = reason
            self.stats.stop_reason = reason

    async def run(self, requests: Sequence[Request]) -> EngineStats:
        for url in self.pool.endpoints:
            self.clients[url.url] = LLMClient(
                url.url,
                api_key=self.api_key,
                timeout=self.config.request_timeout,
                max_connections=self.config.max_concurrency,
            )
        tasks: set[asyncio.Task[None]] = set()
        try:
            for request in requests:
                await self.concurrency.acquire()
                if self._stop:
                    self.concurrency.release()
                    break
                task = asyncio.create_task(self._process(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for client in self.clients.values():
                await client.close()
        return self.stats

    async def _reserve(self, worst: float) -> bool:
        while not self.meter.reserve(worst):
            if self.meter.in_flight <= 1e-15:
                return False
            self._settled.clear()
            await self._settled.wait()
        return True

    def _settle(self, worst: float, actual: float | None) -> None:
        self.meter.settle(worst, actual)
        self._settled.set()

    async def _process(self, request: Request) -> None:
        try:
            await self._attempts(request)
        finally:
            self.concurrency.release()

    async def _attempts(self, request: Request) -> None:
        worst = self._worst(request)
        tokens = prompt_tokens_upper(request.messages) // 4 + int(request.api["max_tokens"])
        attempt = 0
        while True:
            attempt += 1
            if self._stop:
                return
            if not await self._reserve(worst):
                self.stop("cost cap")
                return
            sent = False
            try:
                await self.limiter.acquire(tokens)
                wait = self.pool.wait_time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self._stop:
                    self._settle(worst, 0.0)
                    return
                endpoint = self.pool.pick()
                endpoint.in_flight += 1  # counted from the choice on, so concurrent picks spread
                try:
                    await self.journal.append(
                        {
                            "t": "send",
                            "key": request.key,
                            "attempt": attempt,
                            "endpoint": endpoint.url,
                            "ts": round(time.time(), 3),
                        }
                    )
                    if self._stop:  # quota or cap hit while the send record was being written
                        await self.journal.append(
                            {
                                "t": "fail",
                                "key": request.key,
                                "kind": "not-sent",
                                "reason": "run stopped before sending",
                                "billed": False,
                            }
                        )
                        self._settle(worst, 0.0)
                        return
                    sent = True
                    self.stats.sent += 1
                    endpoint.sent += 1
                    completion = await self.clients[endpoint.url].complete(
                        request.key, self.model, request.messages, request.api
                    )
                finally:
                    endpoint.in_flight -= 1
            except AttemptFailed as exc:
                failure = exc.failure
                self._settle(worst, None if failure.billed else 0.0)
                self.limiter.observe(exc.headers)
                record = {
                    "t": "fail",
                    "key": request.key,
                    "attempt": attempt,
                    "kind": failure.kind,
                    "reason": failure.reason[:500],
                    "billed": failure.billed,
                    "endpoint": endpoint.url,
                    "permanent": not failure.transient,
                }
                self.stats.errors[failure.kind] += 1
                self.progress.error(failure.kind)
                if failure.quota:
                    self.stop("quota exhausted")
                    await self.journal.append(record)
                    return
                if failure.throttled:
                    self.concurrency.throttled()
                if failure.transient:
                    self.pool.failed(endpoint)
                if not failure.transient or attempt >= self.policy.max_attempts:
                    record["final"] = True
                    await self.journal.append(record)
                    self.stats.failed += 1
                    self.stats.failures.append((request, record))
                    self.progress.update(failed=1)
                    return
                await self.journal.append(record)
                delay = self.policy.delay(attempt, failure.retry_after)
                # Give the slot back while waiting so other requests keep the pipe full.
                self.concurrency.release()
                try:
                    await asyncio.sleep(delay)
                finally:
                    await self.concurrency.acquire()
                continue
            except BaseException:
                if not sent:
                    self._settle(worst, 0.0)
                else:
                    self._settle(worst, None)
                raise
            await self._succeeded(request, endpoint, attempt, worst, completion)
            return

    async def _succeeded(
        self, request: Request, endpoint: Endpoint, attempt: int, worst: float, completion: Completion
    ) -> None:
        cost = request_cost(self.price, completion.usage) if self.price else 0.0
        self._settle(worst, cost)
        self.limiter.observe(completion.headers)
        record: dict[str, Any] = {
            "t": "result",
            "key": request.key,
            "prompt_id": request.prompt_id,
            "sample": request.sample,
            "attempt": attempt,
            "endpoint": endpoint.url,
            "model": completion.model or self.model,
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "usage": _usage(completion.usage),
            "cost": cost,
        }
        await self.journal.append(record)
        self.pool.succeeded(endpoint)
        self.concurrency.success()
        out = int(completion.usage.get("completion_tokens") or 0)
        self.stats.done += 1
        self.stats.output_tokens += out
        self.stats.prompt_tokens += int(completion.usage.get("prompt_tokens") or 0)
        self.progress.update(done=1, tokens=out, dollars=self.meter.spent)
        await self.on_result(request, record)


def _usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        k: usage.get(k)
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        if usage.get(k) is not None
    }
    details = usage.get("prompt_tokens_details")
    if isinstance(details, Mapping) and details.get("cached_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": details["cached_tokens"]}
    return out

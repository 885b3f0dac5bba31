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

Before the first request each endpoint is probed (:mod:`phicorpus.generate.probe`): the slots
it reports set the starting concurrency, its context bounds ``max_tokens``, and an endpoint that
refuses connections (or whose name does not resolve) is *unreachable*: it is retried for
``unreachable_wait`` seconds, then the run stops with that reason, nothing journaled as billed.

An attempt times out on lack of progress: when neither it nor any other request on its endpoint
has been answered for ``request_timeout + max_tokens * timeout_per_token`` seconds (a request in
the server's queue behind others that are being answered is waiting, not failing). Only
connection errors and 5xx count against an endpoint (it rests briefly after
``endpoint_failures`` in a row); timeouts and 429s do not.

An answer cut at ``max_tokens`` (``finish_reason == "length"``) is continued up to
``max_continuations`` times: the partial answer is journaled (``t: partial``) and sent back as an
assistant turn followed by :data:`CONTINUE`; the key's result joins the parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.generate.client import AttemptFailed, Completion, LLMClient
from phicorpus.generate.cost import (
    CostMeter,
    prompt_tokens_guess,
    prompt_tokens_upper,
    request_cost,
    worst_case_cost,
)
from phicorpus.generate.endpoints import Endpoint, EndpointPool
from phicorpus.generate.journal import JournalState, RequestJournal
from phicorpus.generate.limits import AdaptiveConcurrency, RateLimiter
from phicorpus.generate.probe import ServerInfo, probe_server
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import Request
from phicorpus.generate.retry import Failure, RetryPolicy

__all__ = [
    "CONTINUE",
    "Engine",
    "EngineStats",
    "fold_system",
    "initial_concurrency",
    "possibly_billed",
    "spent_before",
]

CONTINUE = "Continue exactly where you stopped. Do not repeat anything you already wrote."
UNKNOWN_START = 4  # starting concurrency when the server does not say its slots
VLLM_START = 64

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
    continuations: int = 0
    servers: list[ServerInfo] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    concurrency_start: int = 0
    concurrency_final: int = 0
    context: int | None = None


def spent_before(state: JournalState) -> float:
    """USD the journal says earlier runs spent: results, and parts of answers being continued."""
    return sum(state.results.values()) + sum(
        float(p.get("cost") or 0.0) for ps in state.partials.values() for p in ps
    )


def possibly_billed(state: JournalState, requests: Sequence[Request], price: ModelPrice | None) -> float:
    """Worst case USD of the attempts of ``requests`` with no known outcome (killed in flight, timed
    out): they may have been billed, so they count against the cap."""
    if price is None:
        return 0.0
    total = 0.0
    for request in requests:
        n = state.unresolved.get(request.key, 0) + state.billed_unknown.get(request.key, 0)
        if n:
            upper = prompt_tokens_upper(request.messages)
            total += n * worst_case_cost(price, upper, int(request.api["max_tokens"]))
    return total


def fold_system(messages: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], ...]:
    """The messages with system text folded into the first user turn (``system_prompt = "user"``)."""
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system" and m.get("content"))
    out = [dict(m) for m in messages if m.get("role") != "system"]
    if system:
        for message in out:
            if message.get("role") == "user":
                message["content"] = f"{system}\n\n{message['content']}"
                break
        else:
            out.insert(0, {"role": "user", "content": system})
    return tuple(out)


def initial_concurrency(config: GenerateConfig, servers: Sequence[ServerInfo]) -> int:
    """``config.concurrency`` if set, else the servers' slots (+ one queued each), else a small start."""
    if config.concurrency > 0:
        return config.concurrency
    total = 0
    for info in servers:
        if info.slots:
            total += info.slots + max(1, info.slots // 8)
        elif info.kind == "vllm":
            total += VLLM_START
        else:
            total += UNKNOWN_START
    return max(1, min(config.max_concurrency, total or UNKNOWN_START))


def join_parts(first: str, second: str) -> str:
    """Two parts of one answer (the second continues the first where ``max_tokens`` cut it)."""
    if not first:
        return second
    if not second or first[-1:].isspace() or second[:1].isspace() or second[:1] in ",.;:!?)]}'\"":
        return first + second
    return first + " " + second


def restarts(so_far: str, continuation: str, prefix: int = 40) -> bool:
    """Whether ``continuation`` starts the answer over (its opening is the answer's opening)."""
    a = " ".join(so_far.split())[:prefix].lower()
    b = " ".join(continuation.split())[:prefix].lower()
    return len(a) >= min(prefix, 16) and a == b


@dataclass
class _Answer:
    completion: Completion
    endpoint: Endpoint
    attempt: int
    cost: float


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
        echo: Callable[[str], None] | None = None,
        probe: bool = True,
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
        self.meter.spent += spent_before(journal.state)
        self.limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.concurrency = AdaptiveConcurrency(
            max(1, config.concurrency) or UNKNOWN_START, config.max_concurrency, adaptive=config.adaptive
        )
        self.policy = RetryPolicy(config.max_attempts, config.backoff_base, config.backoff_max)
        self.progress = progress
        self.on_result = on_result
        self.purpose = purpose
        self.echo = echo or (lambda _line: None)
        self.probe = probe
        self.context: int | None = None
        self.stats = EngineStats()
        self._stop: str | None = None
        self._settled = asyncio.Event()

    def possibly_billed_before(self, requests: Sequence[Request]) -> None:
        """Attempts of earlier runs with no known outcome (killed in flight, timed out) may be billed."""
        self.meter.possibly += possibly_billed(self.journal.state, requests, self.price)

    def _worst(self, messages: Sequence[Mapping[str, Any]], max_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return worst_case_cost(self.price, prompt_tokens_upper(messages), max_tokens)

    def stop(self, reason: str) -> None:
        if self._stop is None:
            self._stop = reason
            self.stats.stop_reason = reason

    def notice(self, line: str) -> None:
        self.stats.notices.append(line)
        self.echo(line)

    # -- before sending -------------------------------------------------------------------------

    async def discover(self) -> list[ServerInfo]:
        """Probe every endpoint; wait up to ``unreachable_wait`` s for unreachable ones, drop them.

        Stops the run ("endpoint unreachable: ...") when none can be reached.
        """
        urls = [e.url for e in self.pool.endpoints]
        infos = list(await asyncio.gather(*(probe_server(u, api_key=self.api_key) for u in urls)))
        deadline = time.monotonic() + self.config.unreachable_wait
        while any(not i.reachable for i in infos) and time.monotonic() < deadline:
            down = [k for k, i in enumerate(infos) if not i.reachable]
            if len(down) == len(infos) and time.monotonic() + 1.0 >= deadline:
                break
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            again = await asyncio.gather(*(probe_server(urls[k], api_key=self.api_key) for k in down))
            for k, info in zip(down, again, strict=True):
                infos[k] = info
        down_infos = [i for i in infos if not i.reachable]
        if down_infos and len(down_infos) == len(infos):
            first = down_infos[0]
            self.stop(f"endpoint unreachable: {first.url} ({first.error})")
            return infos
        for info in down_infos:
            self.notice(f"endpoint unreachable, not used: {info.url} ({info.error})")
            self.pool.endpoints = [e for e in self.pool.endpoints if e.url != info.url]
        up = [i for i in infos if i.reachable]
        contexts = [i.context for i in up if i.context]
        self.context = min(contexts) if contexts else None
        start = initial_concurrency(self.config, up)
        self.concurrency.limit = max(self.concurrency.minimum, min(self.concurrency.maximum, start))
        slots = [f"{i.url}: {i.kind or 'server'} {i.slots} slot(s)" for i in up if i.slots]
        self.stats.concurrency_start = self.concurrency.limit
        self.stats.context = self.context
        self.notice(
            f"concurrency {self.concurrency.limit} to start"
            + (f" ({'; '.join(slots)})" if slots else " (the server does not say its slots: measured)")
            + (f"; model context {self.context} tokens" if self.context else "")
        )
        return infos

    def max_tokens_for(self, messages: Sequence[Mapping[str, Any]], max_tokens: int) -> int:
        """``max_tokens`` bounded by what the model's context leaves after the prompt (0: no room)."""
        if not self.context:
            return max_tokens
        prompt = int(prompt_tokens_guess(messages) * 1.3) + 32
        return max(0, min(max_tokens, self.context - prompt))

    async def run(self, requests: Sequence[Request]) -> EngineStats:
        for url in self.pool.endpoints:
            self.clients[url.url] = LLMClient(
                url.url,
                api_key=self.api_key,
                timeout=HARD_TIMEOUT,
                max_connections=self.config.max_concurrency,
            )
        tasks: set[asyncio.Task[None]] = set()
        try:
            if self.probe:
                self.stats.servers = await self.discover()
            else:
                self.concurrency.limit = initial_concurrency(self.config, [])
            if self._stop:
                return self.stats
            self.concurrency.restart_window()
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
            self.stats.concurrency_final = self.concurrency.limit
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

    # -- one request ----------------------------------------------------------------------------

    async def _process(self, request: Request) -> None:
        try:
            await self._parts(request)
        finally:
            self.concurrency.release()

    async def _parts(self, request: Request) -> None:
        """Ask for the answer, and for its continuation while it is cut at ``max_tokens``."""
        base = fold_system(request.messages) if self.config.system_prompt == "user" else request.messages
        parts = [dict(p) for p in self.journal.state.partials.get(request.key, [])]
        attempt = [0]
        while True:
            messages: Sequence[Mapping[str, str]] = base
            if parts:
                messages = (
                    *base,
                    {"role": "assistant", "content": _joined(parts)},
                    {"role": "user", "content": CONTINUE},
                )
            api = dict(request.api)
            room = self.max_tokens_for(messages, int(api["max_tokens"]))
            if room < min(16, int(api["max_tokens"])):
                if parts:  # no room left to continue: what there is, is the answer (kept as truncated)
                    await self._finish(request, parts, None)
                    return
                await self._give_up(
                    request,
                    attempt[0],
                    Failure("context", f"the prompt leaves no room in the model's {self.context}-token "
                            "context", transient=False),
                    None,
                )  # fmt: skip
                return
            api["max_tokens"] = room
            answer = await self._attempts(request, messages, api, attempt, part=len(parts))
            if answer is None:
                return
            completion = answer.completion
            record = {
                "text": completion.text,
                "finish_reason": completion.finish_reason,
                "usage": _usage(completion.usage),
                "cost": answer.cost,
                "endpoint": answer.endpoint.url,
                "attempt": answer.attempt,
                "model": completion.model or self.model,
            }
            if parts and restarts(_joined(parts), completion.text):
                # The model began its answer again instead of continuing it (small models do):
                # paid for, not used; the answer stays cut at max_tokens.
                record["text"], record["finish_reason"] = "", "length"
                record["restarted"] = True
                await self._finish(request, parts, record)
                return
            if (
                completion.finish_reason == "length"
                and len(parts) < self.config.max_continuations
                and completion.text.strip()
            ):
                await self.journal.append({"t": "partial", "key": request.key, "part": len(parts), **record})
                parts.append(record)
                self.stats.continuations += 1
                continue
            await self._finish(request, parts, record)
            return

    async def _finish(
        self, request: Request, parts: list[dict[str, Any]], last: dict[str, Any] | None
    ) -> None:
        every = [*parts, last] if last is not None else list(parts)
        usage: dict[str, Any] = {}
        for part in every:
            for k, v in (part.get("usage") or {}).items():
                if isinstance(v, int | float):
                    usage[k] = usage.get(k, 0) + v
        final = every[-1]
        record: dict[str, Any] = {
            "t": "result",
            "key": request.key,
            "prompt_id": request.prompt_id,
            "sample": request.sample,
            "attempt": final.get("attempt"),
            "endpoint": final.get("endpoint"),
            "model": final.get("model") or self.model,
            "text": _joined(every),
            "finish_reason": final.get("finish_reason") if last is not None else "length",
            "usage": usage,
            "cost": sum(float(p.get("cost") or 0.0) for p in every),
        }
        if len(every) > 1:
            record["parts"] = len(every)
        await self.journal.append(record)
        self.stats.done += 1
        self.progress.update(done=1, dollars=self.meter.spent)
        await self.on_result(request, record)

    async def _give_up(
        self, request: Request, attempt: int, failure: Failure, endpoint: Endpoint | None
    ) -> None:
        record = {
            "t": "fail",
            "key": request.key,
            "attempt": attempt,
            "kind": failure.kind,
            "reason": failure.reason[:500],
            "billed": failure.billed,
            "endpoint": endpoint.url if endpoint else None,
            "permanent": not failure.transient,
            "final": True,
        }
        await self.journal.append(record)
        self.stats.errors[failure.kind] += 1
        self.stats.failed += 1
        self.stats.failures.append((request, record))
        self.progress.update(failed=1)

    async def _attempts(
        self,
        request: Request,
        messages: Sequence[Mapping[str, str]],
        api: dict[str, Any],
        attempt_box: list[int],
        *,
        part: int,
    ) -> _Answer | None:
        """Attempts until one answer (returned) or a final failure (journaled; None)."""
        max_tokens = int(api["max_tokens"])
        worst = self._worst(messages, max_tokens)
        tokens = prompt_tokens_upper(messages) // 4 + max_tokens
        counted = 0  # attempts that reached the server (refused connections are not counted)
        while True:
            attempt_box[0] += 1
            attempt = attempt_box[0]
            if self._stop:
                return None
            if not await self._reserve(worst):
                self.stop("cost cap")
                return None
            sent = False
            endpoint: Endpoint | None = None
            try:
                await self.limiter.acquire(tokens)
                wait = self.pool.wait_time()
                if wait > 0:
                    await asyncio.sleep(wait + random.random() * min(1.0, wait))  # wake spread out
                if self._stop:
                    self._settle(worst, 0.0)
                    return None
                endpoint = self.pool.pick()
                endpoint.in_flight += 1  # counted from the choice on, so concurrent picks spread
                try:
                    send: dict[str, Any] = {
                        "t": "send",
                        "key": request.key,
                        "attempt": attempt,
                        "endpoint": endpoint.url,
                        "ts": round(time.time(), 3),
                    }
                    if part:
                        send["part"] = part
                    await self.journal.append(send)
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
                        return None
                    sent = True
                    self.stats.sent += 1
                    endpoint.sent += 1
                    completion = await self._timed(
                        endpoint,
                        self.clients[endpoint.url].complete(request.key, self.model, messages, api),
                        max_tokens,
                    )
                finally:
                    endpoint.in_flight -= 1
            except AttemptFailed as exc:
                failure = exc.failure
                assert endpoint is not None
                self._settle(worst, None if failure.billed else 0.0)
                self.limiter.observe(exc.headers)
                if exc.headers is not None:
                    endpoint.last_progress = time.monotonic()  # it answered: the server is alive
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
                    return None
                self.concurrency.failure(throttled=failure.throttled)
                unsent = failure.kind in ("unreachable", "connection") and not failure.billed
                if not unsent:
                    counted += 1
                if failure.kind == "unreachable" or (failure.kind == "connection" and not failure.billed):
                    self._unreachable(endpoint, failure)
                elif failure.kind in ("connection", "5xx"):
                    self.pool.failed(endpoint)
                if not failure.transient or counted >= self.policy.max_attempts:
                    record["final"] = True
                    await self.journal.append(record)
                    self.stats.failed += 1
                    self.stats.failures.append((request, record))
                    self.progress.update(failed=1)
                    return None
                await self.journal.append(record)
                delay = self.policy.delay(max(1, counted), failure.retry_after)
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
            cost = request_cost(self.price, completion.usage) if self.price else 0.0
            self._settle(worst, cost)
            self.limiter.observe(completion.headers)
            endpoint.last_progress = time.monotonic()
            endpoint.refused_since = 0.0
            self.pool.succeeded(endpoint)
            out = int(completion.usage.get("completion_tokens") or 0)
            self.concurrency.success(out)
            self.stats.output_tokens += out
            self.stats.prompt_tokens += int(completion.usage.get("prompt_tokens") or 0)
            self.progress.update(tokens=out, dollars=self.meter.spent)
            return _Answer(completion, endpoint, attempt, cost)

    def _unreachable(self, endpoint: Endpoint, failure: Failure) -> None:
        """A refused connection: the run stops once every endpoint has refused for ``unreachable_wait`` s."""
        now = time.monotonic()
        if not endpoint.refused_since:
            endpoint.refused_since = now
            self.echo(f"endpoint unreachable: {endpoint.url} ({failure.reason}); retrying for "
                      f"{self.config.unreachable_wait:.0f}s")  # fmt: skip
        self.pool.failed(endpoint)
        wait = self.config.unreachable_wait
        if all(e.refused_since and now - e.refused_since >= wait for e in self.pool.endpoints):
            self.stop(f"endpoint unreachable: {endpoint.url} ({failure.reason})")

    async def _timed(self, endpoint: Endpoint, call: Awaitable[Completion], max_tokens: int) -> Completion:
        """``call``, timed out on lack of progress of its endpoint (see the module docstring)."""
        budget = self.config.request_timeout + max_tokens * self.config.timeout_per_token
        start = time.monotonic()
        # However much the others progress, an attempt waits at most one budget per request ahead.
        hard = start + budget * max(1, endpoint.in_flight)
        task = asyncio.ensure_future(call)
        try:
            while True:
                now = time.monotonic()
                deadline = min(max(start, endpoint.last_progress) + budget, hard)
                if now >= deadline:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    reason = f"no answer from {endpoint.url} for {now - start:.0f}s"
                    raise AttemptFailed(Failure("timeout", reason, billed=True))
                done, _ = await asyncio.wait({task}, timeout=deadline - now)
                if done:
                    return task.result()
        except asyncio.CancelledError:
            task.cancel()
            raise


HARD_TIMEOUT = 24 * 3600.0  # the SDK's own read timeout: the engine's progress watchdog comes first


def _joined(parts: Sequence[Mapping[str, Any]]) -> str:
    text = ""
    for part in parts:
        text = join_parts(text, str(part.get("text") or ""))
    return text


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

"""Rate limits: request and token buckets, and capacity-aware adaptive concurrency.

Buckets are set from flags (``requests_per_minute``, ``tokens_per_minute``) or, when those are 0,
from the server's ``x-ratelimit-limit-requests`` / ``x-ratelimit-limit-tokens`` headers; a
``x-ratelimit-remaining-*`` of 0 pauses sending until the matching ``x-ratelimit-reset-*``.
Concurrency follows measured throughput (:class:`AdaptiveConcurrency`): it grows while completed
tokens/s grow and is cut when many attempts of a window are throttled (429/503).

Example:
    >>> bucket = TokenBucket(rate_per_s=10.0, capacity=10.0)
    >>> bucket.wait_time(5.0) == 0.0
    True
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import Any

__all__ = ["AdaptiveConcurrency", "RateLimiter", "TokenBucket", "parse_duration"]


class TokenBucket:
    """A token bucket; ``rate_per_s <= 0`` means unlimited."""

    def __init__(self, rate_per_s: float, capacity: float | None = None) -> None:
        self.rate = rate_per_s
        self.capacity = capacity if capacity is not None else max(rate_per_s, 1.0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now)."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        amount = min(amount, self.capacity)  # a request larger than the bucket waits for a full one
        if self.level >= amount:
            return 0.0
        return (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        if self.rate > 0:
            self._refill()
            self.level -= min(amount, self.capacity)

    def set_rate(self, rate_per_s: float, capacity: float) -> None:
        self._refill()
        self.rate = rate_per_s
        self.capacity = capacity
        self.level = min(self.level, capacity)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds of an OpenAI reset duration such as ``6m0s``, ``1.5s`` or ``20ms``."""
    parts = _DURATION.findall(text or "")
    if not parts:
        try:
            return float(text)
        except (TypeError, ValueError):
            return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets, from flags or response headers."""

    def __init__(self, requests_per_minute: float = 0.0, tokens_per_minute: float = 0.0) -> None:
        self.fixed_requests = requests_per_minute > 0
        self.fixed_tokens = tokens_per_minute > 0
        self.requests = TokenBucket(requests_per_minute / 60.0, max(1.0, requests_per_minute / 60.0))
        self.tokens = TokenBucket(tokens_per_minute / 60.0, max(1.0, tokens_per_minute / 60.0))
        self.paused_until = 0.0
        self.waited = 0.0

    async def acquire(self, tokens: float) -> None:
        """Wait until one request of ``tokens`` tokens may be sent, then take it."""
        while True:
            now = time.monotonic()
            wait = max(self.paused_until - now, self.requests.wait_time(1.0), self.tokens.wait_time(tokens))
            if wait <= 0:
                self.requests.take(1.0)
                self.tokens.take(tokens)
                return
            self.waited += wait
            await asyncio.sleep(wait)

    def observe(self, headers: Any) -> None:
        """Adopt the server's advertised limits (unless flags fixed them) and pauses."""
        if headers is None:
            return
        get = headers.get
        limit_r, limit_t = get("x-ratelimit-limit-requests"), get("x-ratelimit-limit-tokens")
        if limit_r and not self.fixed_requests:
            per_min = _float(limit_r)
            if per_min and abs(per_min / 60.0 - self.requests.rate) > 1e-9:
                # Burst of at most a tenth of a minute: spread requests, do not dump a minute's worth.
                self.requests.set_rate(per_min / 60.0, max(1.0, per_min / 600.0))
        if limit_t and not self.fixed_tokens:
            per_min = _float(limit_t)
            if per_min and abs(per_min / 60.0 - self.tokens.rate) > 1e-9:
                self.tokens.set_rate(per_min / 60.0, max(1.0, per_min / 10.0))
        for kind in ("requests", "tokens"):
            remaining = _float(get(f"x-ratelimit-remaining-{kind}"))
            if remaining is not None and remaining <= 0:
                reset = parse_duration(get(f"x-ratelimit-reset-{kind}") or "")
                if reset:
                    self.paused_until = max(self.paused_until, time.monotonic() + reset)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class AdaptiveConcurrency:
    """A semaphore whose limit follows the server's capacity.

    The limit starts at ``initial`` (the server's slot count where it says so, see
    :mod:`phicorpus.generate.probe`) and is then tuned by measurement, a gradient search on
    completed output tokens per second:

    - a *window* closes after ``max(8, limit)`` completions and at least :attr:`min_window`
      seconds; a window where the limit was not the bottleneck (no request waited for a slot)
      teaches nothing and is discarded;
    - while a raise of the limit raised throughput by more than :attr:`gain` the limit keeps
      growing (doubling until the first plateau, then by a quarter);
    - when it did not (latency grew, throughput did not) the limit goes back to the last value
      that paid and, the first time, halves while throughput holds (a start above the server's
      capacity); it then settles at the smallest limit that kept the throughput, plus one queued
      request (a request waiting in the server's queue costs only latency and keeps the server
      busy between answers), and holds for :attr:`hold` windows before probing upwards again;
    - when more than :attr:`throttle_share` of the last ``max(40, 4 * limit)`` attempts were
      throttled (429/503) the limit is cut by :attr:`cut`, then the count starts afresh: sparse,
      random 429s are retried, not obeyed.

    So a one-slot CPU server settles at 2-4 requests in flight and a 256-slot vLLM climbs to its
    slots in a handful of windows. ``adaptive=False`` pins the limit at ``initial``.
    """

    min_window = 1.0
    gain = 0.1
    hold = 8
    throttle_share = 0.25
    cut = 0.6

    def __init__(self, initial: int, maximum: int, *, adaptive: bool = True, minimum: int = 1) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = max(self.minimum, min(initial, self.maximum))
        self.adaptive = adaptive
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.cuts = 0
        self.raises = 0
        self.backoffs = 0
        self.history: list[tuple[int, float]] = []  # (limit, tokens/s) of each window that counted
        self._slow_start = True
        self._prev: tuple[int, float] | None = None  # the limit before the last raise, its tokens/s
        self._hold = 0
        self._dir = 1
        self._warmup = False
        self._searched_down = False
        self._allowance = False
        self._recent: deque[bool] = deque(maxlen=max(40, 4 * self.limit))  # attempts: throttled?
        self._new_window(time.monotonic())

    def _new_window(self, now: float) -> None:
        self._w_start = now
        self._w_done = 0
        self._w_tokens = 0
        self._w_waited = bool(self._waiters)

    def restart_window(self) -> None:
        """Start measuring now (when sending starts: probing and set-up are not throughput)."""
        self._new_window(time.monotonic())
        self._warmup = True

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        self._w_waited = True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # got the slot while being cancelled: give it back
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            future = self._waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)

    def _set(self, limit: int) -> None:
        self.limit = max(self.minimum, min(self.maximum, limit))
        self._wake()

    def success(self, tokens: int = 1) -> None:
        """One completed request of ``tokens`` output tokens."""
        self._recent.append(False)
        self._w_done += 1
        self._w_tokens += max(1, tokens)
        if not self.adaptive:
            return
        now = time.monotonic()
        elapsed = now - self._w_start
        if self._w_done < max(8, self.limit) or elapsed < self.min_window:
            return
        saturated = self._w_waited or bool(self._waiters)
        rate = self._w_tokens / elapsed
        self._new_window(now)
        if self._warmup:  # the first window holds the connections' set-up and the first answers
            self._warmup = False
            return
        if saturated:
            self.observe_window(rate)

    def observe_window(self, rate: float) -> None:
        """One window's completed output tokens/s at the current limit (the limit was the bottleneck)."""
        self.history.append((self.limit, rate))
        if not self.adaptive:
            return
        if self._hold > 0:
            self._hold -= 1
            if self._hold == 0 and self.limit < self.maximum:  # probe upwards again
                self._prev = (self.limit, rate)
                self._dir = 1
                self._set(self.limit + max(1, self.limit // 4))
            return
        if self._prev is None:
            if self.limit >= self.maximum:
                return
            self._prev = (self.limit, rate)
            self._up()
            return
        before, best = self._prev
        if self._dir > 0:
            if rate > best * (1.0 + self.gain):
                self._prev = (self.limit, rate)
                if self.limit < self.maximum:
                    self._up()  # the raise paid: keep climbing
                else:
                    self._settle_at(self.limit)
                return
            # No gain from the raise: latency grew without throughput. Back, then see whether less
            # would do as well (a start above the server's capacity).
            self.backoffs += 1
            self._slow_start = False
            if self._searched_down or before <= self.minimum:
                self._settle_at(before)
                return
            self._searched_down = True
            self._dir = -1
            self._prev = (before, max(best, rate))
            self._set(max(self.minimum, before // 2))
            return
        if rate >= best * (1.0 - self.gain) and self.limit > self.minimum:
            self._prev = (self.limit, best)  # as fast with fewer in flight: lower still
            self._set(max(self.minimum, self.limit // 2))
            return
        self._settle_at(before if rate < best * (1.0 - self.gain) else self.limit)

    def _up(self) -> None:
        self._dir = 1
        self._set(self.limit * 2 if self._slow_start else self.limit + max(1, self.limit // 4))
        self.raises += 1

    def _settle_at(self, limit: int) -> None:
        """Hold at ``limit`` (plus one queued request, the first time) for :attr:`hold` windows."""
        if not self._allowance:
            self._allowance = True
            limit += 1
        self._set(limit)
        self._prev = None
        self._hold = self.hold

    def failure(self, *, throttled: bool) -> None:
        """One failed attempt; a throttled one (429/503) counts towards a cut."""
        self._recent.append(throttled)
        if not throttled or not self.adaptive:
            return
        if len(self._recent) >= 10 and sum(self._recent) / len(self._recent) > self.throttle_share:
            self.throttled()

    def throttled(self) -> None:
        """The server says it is over capacity: cut the limit, hold before growing again."""
        if not self.adaptive:
            return
        self._recent = deque(maxlen=max(40, 4 * self.limit))  # the next cut needs fresh evidence
        self.cuts += 1
        self._slow_start = False
        self._prev = None
        self._hold = self.hold
        self._set(max(self.minimum, int(self.limit * self.cut)))

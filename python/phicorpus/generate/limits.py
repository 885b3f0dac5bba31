"""Rate limits: request and token buckets, and adaptive concurrency (AIMD).

Buckets are set from flags (``requests_per_minute``, ``tokens_per_minute``) or, when those are 0,
from the server's ``x-ratelimit-limit-requests`` / ``x-ratelimit-limit-tokens`` headers; a
``x-ratelimit-remaining-*`` of 0 pauses sending until the matching ``x-ratelimit-reset-*``.
Concurrency grows by one per window of successes and halves on a 429/503 (at most once per
window), between 1 and the configured maximum.

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
    """A semaphore whose limit adapts: +1 after ``limit`` successes, halved on throttling."""

    def __init__(self, initial: int, maximum: int, *, adaptive: bool = True, minimum: int = 1) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = max(self.minimum, min(initial, self.maximum))
        self.adaptive = adaptive
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._successes = 0
        self._last_cut = 0.0
        self.cuts = 0

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
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

    def success(self) -> None:
        if not self.adaptive:
            return
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.maximum:
            self._successes = 0
            self.limit += 1
            self._wake()

    def throttled(self) -> None:
        """A 429/503: halve the limit, at most once per second (one burst is one signal)."""
        if not self.adaptive:
            return
        now = time.monotonic()
        if now - self._last_cut < 1.0:
            return
        self._last_cut = now
        self._successes = 0
        self.limit = max(self.minimum, self.limit // 2)
        self.cuts += 1

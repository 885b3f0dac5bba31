"""Several endpoints share the load by in-flight count; one that keeps failing rests a while.

Only connection errors and 5xx count as failures of an endpoint (a timeout or a 429 says the
server is busy, not broken); the rest is brief and doubles, up to 8x, while the failures go on.

Example:
    >>> pool = EndpointPool(["http://a/v1", "http://b/v1"], failures=3, rest=30.0)
    >>> pool.pick().url
    'http://a/v1'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Endpoint", "EndpointPool"]


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    consecutive_failures: int = 0
    resting_until: float = 0.0
    rests: int = 0
    sent: int = 0
    ok: int = 0
    last_progress: float = 0.0  # monotonic time of its last answer (any HTTP response)
    refused_since: float = 0.0  # first refused connection since its last answer (0: none)


class EndpointPool:
    """Least-in-flight choice among endpoints that are not resting."""

    def __init__(self, urls: list[str], *, failures: int = 5, rest: float = 30.0) -> None:
        if not urls:
            raise ValueError("no LLM endpoint: give --llm URL or set OPENAI_BASE_URL")
        self.endpoints = [Endpoint(url) for url in urls]
        self.failures = max(1, failures)
        self.rest = rest

    def pick(self) -> Endpoint:
        """The awake endpoint with the fewest requests in flight (if all rest: the first to wake)."""
        now = time.monotonic()
        awake = [e for e in self.endpoints if e.resting_until <= now]
        if awake:
            return min(awake, key=lambda e: e.in_flight)
        return min(self.endpoints, key=lambda e: e.resting_until)

    def wait_time(self) -> float:
        """Seconds until some endpoint is awake."""
        now = time.monotonic()
        return max(0.0, min(e.resting_until for e in self.endpoints) - now)

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures = 0
        endpoint.rests = 0
        endpoint.ok += 1

    def failed(self, endpoint: Endpoint) -> None:
        """A transient failure; after ``failures`` in a row the endpoint rests (longer each time)."""
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= self.failures:
            endpoint.rests += 1
            endpoint.resting_until = time.monotonic() + self.rest * min(8, 2 ** (endpoint.rests - 1))
            endpoint.consecutive_failures = 0

"""The one retry layer: which failures are retried, how long to wait, when to stop.

The SDK's own retries are off (``max_retries=0``); every attempt passes through here so that each
one is journaled, counted against the per-key attempt cap and priced as possibly billed when its
outcome is unknown (a timeout, a dropped connection after the request was sent, a garbled body).

Classification (:func:`classify`):

- 408, 409, 429, 5xx, timeouts, connection errors, malformed bodies: transient, retried with
  exponential backoff and full jitter, ``Retry-After`` (or ``retry-after-ms``) honoured;
- a 429/403 whose error code is ``insufficient_quota`` (or billing is off): ``quota`` — the whole
  run stops cleanly, nothing more is sent;
- any other 4xx: permanent, with the server's reason; never retried.

Example:
    >>> policy = RetryPolicy(max_attempts=5, base=1.0, cap=60.0)
    >>> 0.0 <= policy.delay(attempt=3, retry_after=None) <= 4.0
    True
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Failure", "RetryPolicy", "classify_status", "parse_retry_after"]

QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified.

    ``kind`` is the error class shown in the progress bar (``429``, ``5xx``, ``timeout``, ...);
    ``billed`` says whether the attempt may have cost money (the server may have generated).
    """

    kind: str
    reason: str
    transient: bool = True
    quota: bool = False
    billed: bool = False
    retry_after: float | None = None
    status: int | None = None
    throttled: bool = False  # 429/503: a signal to lower concurrency


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed.

        Full jitter (uniform in [0, base * 2**(attempt-1)], capped); a server's Retry-After is a
        floor, never shortened by jitter.
        """
        r: float = (rng or random).random()
        backoff = min(self.cap, self.base * (2.0 ** max(0, attempt - 1))) * r
        if retry_after is not None:
            # The server's wait, plus a little spread so a burst of 429s does not return at once.
            return retry_after + r * min(1.0, 0.1 * retry_after)
        return backoff


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_code(body: Any) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            code = err.get("code") or err.get("type")
            message = err.get("message")
            return (str(code) if code else None, str(message) if message else None)
    return None, None


def classify_status(status: int, body: Any, headers: Any) -> Failure:
    """Classify an HTTP error response."""
    code, message = _error_code(body)
    reason = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    retry_after = parse_retry_after(headers)
    if code in QUOTA_CODES or (message and "exceeded your current quota" in message):
        return Failure("quota", reason, transient=False, quota=True, status=status)
    if status in (408, 409, 429) or status >= 500:
        kind = str(status) if status < 500 else "5xx"
        # A 5xx or 408 may come after the model ran; the provider may have billed it.
        billed = status >= 500 or status == 408
        return Failure(
            kind,
            reason,
            transient=True,
            billed=billed,
            retry_after=retry_after,
            status=status,
            throttled=status in (429, 503),
        )
    return Failure("4xx", reason, transient=False, status=status)

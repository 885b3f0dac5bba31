"""Progress of a generation run on stderr: done/total, requests/s, output tokens/s, dollars, ETA.

On a terminal one line is redrawn a few times a second; off a terminal (a batch job, ``nohup``,
CI) a plain line is printed every :attr:`Progress.every` seconds (30), so a log shows the run
moving. The ETA and rates are measured (answers so far over time so far): before the first
answer there is none.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``42s``, ``12 min``, ``3.4 h``."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``enabled``: True (redrawn line), False (silent), None (redrawn on a TTY, else periodic lines)."""

    every = 30.0

    def __init__(self, total: int, *, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = ("tty" if tty else "lines") if enabled is None else ("tty" if enabled else "off")
        self.enabled = self.mode != "off"
        self.total = total
        self.done = 0
        self.failed = 0
        self.output_tokens = 0
        self.dollars = 0.0
        self.errors: Counter[str] = Counter()
        self.start = time.monotonic()
        self._last = 0.0 if self.mode == "tty" else time.monotonic()
        self.interval = 0.25 if self.mode == "tty" else self.every
        self.priced = True
        self._first: float | None = None  # when the first answer (or final failure) came

    def update(self, *, done: int = 0, failed: int = 0, tokens: int = 0, dollars: float = 0.0) -> None:
        if (done or failed) and self._first is None:
            self._first = time.monotonic()
        self.done += done
        self.failed += failed
        self.output_tokens += tokens
        self.dollars = dollars or self.dollars
        self.draw()

    def error(self, kind: str) -> None:
        self.errors[kind] += 1
        self.draw()

    def eta(self) -> float | None:
        """Seconds left at the rate measured so far; None before the first answer.

        From the second answer on, the rate is measured from the first one: the wait for the
        first answer (the pipeline filling, a cold server) is not the pace of the rest.
        """
        finished = self.done + self.failed
        if not finished:
            return None
        now = time.monotonic()
        left = max(0, self.total - finished)
        if finished >= 2 and self._first is not None and now > self._first:
            return (now - self._first) / (finished - 1) * left
        return (now - self.start) / finished * left

    def line(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.start)
        errors = " ".join(f"{k}:{v}" for k, v in sorted(self.errors.items()))
        eta = self.eta()
        head = f"{self.done}/{self.total}"
        if self.mode == "tty":
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            head = f"[{'#' * filled}{'.' * (width - filled)}] {head}"
        return (
            f"{head} {self.done / elapsed:.2f} req/s {self.output_tokens / elapsed:.0f} tok/s "
            + (f"${self.dollars:.4f}" if self.priced else "no price")
            + (f" ETA {format_duration(eta)}" if eta is not None else " ETA unknown until the first answers")
            + (f" failed {self.failed}" if self.failed else "")
            + (f" errors {errors}" if errors else "")
        )

    def draw(self, force: bool = False) -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.mode == "tty":
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write("progress: " + self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.mode == "tty":
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

"""A live progress line on stderr: done/total, requests/s, output tokens/s, dollars, errors by kind.

Drawn at most a few times a second, only when stderr is a TTY (or when asked), so it costs nothing
on a batch machine.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, *, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.failed = 0
        self.output_tokens = 0
        self.dollars = 0.0
        self.errors: Counter[str] = Counter()
        self.start = time.monotonic()
        self._last = 0.0
        self.interval = 0.25

    def update(self, *, done: int = 0, failed: int = 0, tokens: int = 0, dollars: float = 0.0) -> None:
        self.done += done
        self.failed += failed
        self.output_tokens += tokens
        self.dollars = dollars or self.dollars
        self.draw()

    def error(self, kind: str) -> None:
        self.errors[kind] += 1
        self.draw()

    def line(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.start)
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        errors = " ".join(f"{k}:{v}" for k, v in sorted(self.errors.items()))
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{self.done / elapsed:.1f} req/s {self.output_tokens / elapsed:.0f} tok/s "
            f"${self.dollars:.4f}"
            + (f" failed {self.failed}" if self.failed else "")
            + (f" errors {errors}" if errors else "")
        )

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

"""The request journal: the source of truth for "was this request sent, and what came back".

An append-only JSONL file per purpose under ``requests/`` (``generate.jsonl``, ``grade.jsonl``).
Each line is one record:

``{"t": "send", "key": K, "attempt": n, "endpoint": url}``
    written and fsynced *before* attempt ``n`` of request ``K`` goes on the wire;
``{"t": "result", "key": K, ...}``
    the response (text, finish reason, usage, cost), fsynced before the request counts as done;
``{"t": "fail", "key": K, "kind": ..., "reason": ..., "permanent": bool, "billed": bool}``
    an attempt or a request that failed, and whether it may have been billed;
``{"t": "partial", "key": K, "part": n, "text": ..., "usage": ..., "cost": ...}``
    part ``n`` of an answer cut at ``max_tokens``; the next part is asked for with it as an
    assistant turn, and the key's ``result`` holds the whole text, usage and cost.

Records are appended by many coroutines at once and committed in groups: one write and one
fsync per batch of records (group commit), run in a worker thread so the event loop keeps
sending. A ``kill -9`` can tear at most the last line; opening the journal drops a torn tail
before appending, so the file stays a sequence of whole records.

Generation on a cluster (:mod:`phicorpus.generate.cluster`) gives each Ray actor a segment of its
own, ``generate-<k>.jsonl``; a journal opened with ``others`` (:func:`segments`) replays them too,
so a key with a result in any of them counts as answered. Only its own file is locked and written.

Example:
    >>> journal = RequestJournal.open(corpus.requests_dir / "generate.jsonl")  # doctest: +SKIP
    >>> journal.results.get(key)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JournalError", "JournalState", "RequestJournal", "segments"]


class JournalError(Exception):
    """The journal is locked by another run or unreadable."""


@dataclass
class JournalState:
    """What a journal says about each key (rebuilt by reading it from the start)."""

    # key -> USD of its result. Only that: the text and the rest stay on disk
    # (RequestJournal.full_results), so memory does not grow with what was received.
    results: dict[str, float] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # last failure per key
    unresolved: dict[str, int] = field(default_factory=dict)  # sends with no outcome (killed mid-flight)
    billed_unknown: dict[str, int] = field(default_factory=dict)  # attempts possibly billed
    # key -> the parts received so far of an answer cut at max_tokens and being continued (cleared
    # by the key's result): a re-run continues from them instead of paying for them again.
    partials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        kind = record.get("t")
        key = record.get("key")
        if not isinstance(key, str):
            return
        if kind == "send":
            self.unresolved[key] = self.unresolved.get(key, 0) + 1
        elif kind == "result":
            if key not in self.results:
                self.results[key] = float(record.get("cost") or 0.0)
            self.failures.pop(key, None)
            self.partials.pop(key, None)
            self._resolve(key)
        elif kind == "partial":
            if key not in self.results:
                self.partials.setdefault(key, []).append(record)
            self._resolve(key)
        elif kind == "fail":
            if key not in self.results:
                self.failures[key] = record
            self._resolve(key)
            if record.get("billed"):
                self.billed_unknown[key] = self.billed_unknown.get(key, 0) + 1

    def _resolve(self, key: str) -> None:
        n = self.unresolved.get(key, 0)
        if n <= 1:
            self.unresolved.pop(key, None)
        else:
            self.unresolved[key] = n - 1


def scan_records(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Whole records of ``path``, each with the byte offset just past it; stops at a torn tail."""
    if not path.exists():
        return
    pos = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # torn last line: no newline, never counted
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return  # only a torn tail can be malformed; what follows is unreliable too
                pos += len(line)
                yield record, pos
            else:
                pos += len(line)


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Whole records of ``path`` and the byte length they span (a torn tail is left out)."""
    records: list[dict[str, Any]] = []
    good = 0
    for record, end in scan_records(path):
        records.append(record)
        good = end
    return records, good


def segments(path: Path) -> list[Path]:
    """The cluster segments next to the journal ``path`` (``generate-<k>.jsonl`` for ``generate.jsonl``),
    in segment order."""
    cut = len(path.stem) + 1
    found = [p for p in path.parent.glob(f"{path.stem}-*{path.suffix}") if p.stem[cut:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[cut:]))


class RequestJournal:
    """An open journal: its state, and appends with group commit. One writer at a time (flock).

    ``others``: journals of the same purpose written by other processes (cluster segments, the
    single journal of a local run), replayed into :attr:`state` before this one and read by
    :meth:`full_results`, never written. A torn tail in one of them (its writer is running or was
    killed) is left out, not truncated.
    """

    def __init__(
        self, path: Path, fd: int, lock_fd: int, state: JournalState, others: tuple[Path, ...] = ()
    ) -> None:
        self.path = path
        self.others = others
        self._fd = fd
        self._lock_fd = lock_fd
        self.state = state
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.records_written = 0
        self.syncs = 0

    @classmethod
    def open(cls, path: str | Path, others: Sequence[Path] = ()) -> RequestJournal:
        """Open (creating) the journal at ``path``: lock it, replay ``others`` then it, drop its torn tail.

        Raises:
            JournalError: another process holds the journal.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(lock_fd)
            raise JournalError(f"{path}: another run is using this journal") from exc
        state = JournalState()
        others = tuple(Path(p) for p in others if Path(p) != path)
        for other in others:
            for record, _ in scan_records(other):
                state.apply(record)
        good = 0
        for record, end in scan_records(path):
            state.apply(record)
            good = end
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        if os.fstat(fd).st_size != good:
            os.ftruncate(fd, good)  # a torn last line from a kill -9
            os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_END)
        return cls(path, fd, lock_fd, state, others)

    def reload(self, others: Sequence[Path] | None = None) -> None:
        """Replay every file again: ``others`` may have grown since the journal was opened, and
        new ones (given here) may have appeared."""
        if others is not None:
            self.others = tuple(Path(p) for p in others if Path(p) != self.path)
        state = JournalState()
        for path in (*self.others, self.path):
            for record, _ in scan_records(path):
                state.apply(record)
        self.state = state

    @property
    def results(self) -> dict[str, float]:
        """USD of each key's result (the records themselves: :meth:`full_results`)."""
        return self.state.results

    def full_results(self, keys: set[str] | frozenset[str]) -> dict[str, dict[str, Any]]:
        """The whole result records (text included) of ``keys``, read back from the file."""
        out: dict[str, dict[str, Any]] = {}
        if not keys:
            return out
        for path in (*self.others, self.path):
            for record, _ in scan_records(path):
                key = record.get("key")
                if record.get("t") == "result" and isinstance(key, str) and key in keys and key not in out:
                    out[key] = record
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            os.close(self._lock_fd)
            self._fd = -1

    def __enter__(self) -> RequestJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def append_now(self, records: list[dict[str, Any]]) -> None:
        """Append and fsync ``records`` synchronously (outside an event loop)."""
        self._write(b"".join(_encode(r) for r in records))
        for record in records:
            self.state.apply(record)

    async def append(self, record: dict[str, Any]) -> None:
        """Append ``record``; returns once it is on disk (fsynced together with its group)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((_encode(record), future))
        self.state.apply(record)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(blob for blob, _ in batch))
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, blob: bytes) -> None:
        view = memoryview(blob)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.records_written += blob.count(b"\n")
        self.syncs += 1


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def iter_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole record of the journal at ``path`` (for tests and reports)."""
    yield from read_records(path)[0]

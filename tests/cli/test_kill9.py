"""``kill -9`` at any point of ingest, filter or dedup, then the same command again: it resumes,
no document id appears twice, no torn or temporary file is left, ``verify`` passes, and the result
equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from phicorpus.catalog import open_catalog


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "phicorpus.cli", *args]


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=300)


def _killed(args: list[str], after: float) -> None:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _state(corpus: Path) -> tuple[list[tuple[object, ...]], int, int]:
    with open_catalog(corpus, read_only=True) as cat:
        rows = cat.exec("SELECT id, drop_stage, drop_reason, dup_cluster FROM documents ORDER BY id")
        dupes = cat.exec_one("SELECT count(*) - count(DISTINCT id) FROM documents")
        drops = cat.exec_one("SELECT coalesce(sum(count), 0) FROM drop_counts")
    assert dupes is not None and drops is not None
    return rows, int(dupes[0]), int(drops[0])


def test_kill9_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    # The whole standard library (the default input), in shards of 20 files: ~100 shards.
    config = "[ingest]\nshard_files = 20\n"
    stages = [["ingest", "code", "--out", "{c}"], ["filter", "{c}"], ["dedup", "{c}"]]
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "phicorpus.toml").write_text(config)
    durations = []
    for stage in stages:
        start = time.monotonic()
        _run(_cli(*(a.format(c=tmp_path / "ref") for a in stage)))
        durations.append(time.monotonic() - start)
    reference = _state(tmp_path / "ref")
    assert len(reference[0]) > 1000 and reference[1] == 0

    corpus = tmp_path / "killed"
    corpus.mkdir()
    (corpus / "phicorpus.toml").write_text(config)
    for stage, duration in zip(stages, durations, strict=True):
        args = _cli(*(a.format(c=corpus) for a in stage))
        # Kill it at several points spread over an uninterrupted run's time, each run resuming
        # the work of the one before.
        for frac in (0.35, 0.5, 0.65, 0.8, 0.95):
            _killed(args, duration * frac)
        _run(args)  # the same command again finishes the work
        leftovers = [p for p in corpus.rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == [], leftovers
    state = _state(corpus)
    assert state[1] == 0, "a document id appears twice"
    assert state == reference
    with open_catalog(corpus, read_only=True) as cat:
        interrupted = cat.exec("SELECT DISTINCT stage FROM stage_runs WHERE status = 'interrupted'")
    # Kills land inside the stages (some, for the short ones, during start-up or after the end);
    # ingest, the longest, is always cut.
    assert ("ingest",) in interrupted, interrupted
    verify = subprocess.run(_cli("verify", str(corpus)), capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stderr

"""``verify-exercises``: ReST^EM's binary reward for generated documents.

Exercises: each kept document's solution runs with its tests in the sandbox
(:mod:`phicorpus.verify.sandbox`); failing ones are dropped (``drop_stage = 'verify'``), passing
ones kept, and pass@1 / pass@k (k = samples of the prompt) recorded per prompt. Stories: the
required words of the prompt must all appear. If no sandbox can start, nothing is executed and the
exercises stay ``unverified`` (and kept): the report says why.

Example:
    >>> stats = verify_exercises(Corpus.open("corpus/"), config=GenerateConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig
from phicorpus.corpus import Corpus
from phicorpus.verify.sandbox import RunVerdict, Sandbox, SandboxLimits, SandboxUnavailable

__all__ = ["pass_at_k", "verify_exercises"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _pending(catalog: Catalog, source: str) -> list[tuple[str, str, int, str | None]]:
    rows = catalog.exec(
        'SELECT d.id, d.file, d."row", d.prompt_id FROM documents d '
        "LEFT JOIN verifications v ON v.doc_id = d.id "
        "WHERE d.source = ? AND d.drop_stage IS NULL AND (v.doc_id IS NULL OR v.status = 'unverified') "
        'ORDER BY d.file, d."row"',
        [source],
    )
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]


def _columns(
    corpus: Corpus, docs: list[tuple[str, str, int, str | None]], names: list[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    by_file: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for doc_id, file, row, _ in docs:
        by_file[file].append((doc_id, row))
    for file, items in by_file.items():
        table = pq.read_table(corpus.absolute(file), columns=names)
        for doc_id, row in items:
            out[doc_id] = {n: table.column(n)[row].as_py() for n in names}
    return out


def verify_exercises(
    corpus: Corpus,
    *,
    config: GenerateConfig,
    echo: Callable[[str], None] = print,
    sandbox: Sandbox | None = None,
) -> dict[str, Any]:
    """Verify exercises (sandboxed tests) and stories (required words); returns statistics."""
    limits = SandboxLimits(
        timeout=config.sandbox_timeout,
        memory_mb=config.sandbox_memory_mb,
        processes=config.sandbox_processes,
        file_mb=config.sandbox_file_mb,
    )
    stats: dict[str, Any] = {
        "exercises": 0,
        "passed": 0,
        "failed": 0,
        "unverified": 0,
        "stories": 0,
        "stories_missing_words": 0,
        "sandbox": None,
        "reasons": {},
    }
    with Catalog.open(corpus) as catalog:
        run_id = catalog.start_stage("verify", {"limits": dataclasses.asdict(limits)})
        exercises = _pending(catalog, "exercises")
        unavailable: str | None = None
        if exercises and sandbox is None:
            try:
                sandbox = Sandbox.probe(limits)
            except SandboxUnavailable as exc:
                unavailable = str(exc)
        stats["sandbox"] = "bubblewrap" if sandbox else unavailable
        if exercises:
            cols = _columns(corpus, exercises, ["solution", "tests"])
            # Only programming exercises (answer_format python-tests) carry code to run; worked
            # maths or prose exercises are text and have nothing to execute.
            exercises = [d for d in exercises if cols[d[0]]["solution"] or cols[d[0]]["tests"]]
            verdicts: dict[str, RunVerdict] = {}
            if sandbox is not None:
                box = sandbox

                def check(doc_id: str) -> tuple[str, RunVerdict]:
                    c = cols[doc_id]
                    if not c["solution"] or not c["tests"]:
                        return doc_id, RunVerdict(False, "unparsed", 0.0, "")
                    return doc_id, box.run(c["solution"], c["tests"])

                with ThreadPoolExecutor(max(1, config.verify_workers)) as pool:
                    verdicts = dict(pool.map(check, [d[0] for d in exercises]))
            else:
                echo(
                    f"verify-exercises: {unavailable}; nothing executed, "
                    f"{len(exercises)} exercises stay unverified"
                )
            rows = []
            for doc_id, _, _, prompt_id in exercises:
                verdict = verdicts.get(doc_id)
                status = "unverified" if verdict is None else "passed" if verdict.passed else "failed"
                reason = (unavailable or "no sandbox") if verdict is None else verdict.reason
                seconds = None if verdict is None else verdict.seconds
                rows.append((doc_id, prompt_id, "exercise-tests", status, reason, seconds))
                stats[status] += 1
                if status == "failed":
                    stats["reasons"][reason] = stats["reasons"].get(reason, 0) + 1
            stats["exercises"] = len(exercises)
            _record(catalog, rows, "exercises", drop_prefix="tests-")
        stories = _pending(catalog, "stories")
        if stories:
            cols = _columns(corpus, stories, ["missing_words", "words"])
            rows = []
            for doc_id, _, _, prompt_id in stories:
                missing = cols[doc_id]["missing_words"] or []
                status = "failed" if missing else "passed"
                rows.append(
                    (
                        doc_id,
                        prompt_id,
                        "story-words",
                        status,
                        ("missing-words: " + ",".join(missing)) if missing else "passed",
                        None,
                    )
                )
                stats["stories_missing_words"] += bool(missing)
            stats["stories"] = len(stories)
            _record(catalog, rows, "stories", drop_prefix="")
        with catalog.transaction():
            catalog.exec("DELETE FROM pass_at_k")
            per_prompt = catalog.exec(
                "SELECT prompt_id, count(*), count(*) FILTER (WHERE status = 'passed') FROM verifications "
                "WHERE check_kind = 'exercise-tests' AND status <> 'unverified' GROUP BY prompt_id"
            )
            for prompt_id, n, c in per_prompt:
                catalog.exec(
                    "INSERT INTO pass_at_k (prompt_id, n, c, pass_at_1, pass_at_k) VALUES (?, ?, ?, ?, ?)",
                    [prompt_id, n, c, pass_at_k(n, c, 1), pass_at_k(n, c, n)],
                )
        catalog.finish_stage(run_id, stats)
    echo(
        f"verify-exercises: {stats['passed']} passed, {stats['failed']} failed, "
        f"{stats['unverified']} unverified "
        f"of {stats['exercises']} exercises; {stats['stories_missing_words']} of {stats['stories']} stories "
        "miss a required word"
    )
    return stats


def _record(catalog: Catalog, rows: list[tuple[Any, ...]], source: str, *, drop_prefix: str) -> None:
    drops: dict[str, int] = {}
    with catalog.transaction():
        for doc_id, prompt_id, kind, status, reason, seconds in rows:
            catalog.exec(
                "INSERT OR REPLACE INTO verifications "
                "(doc_id, prompt_id, check_kind, status, reason, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [doc_id, prompt_id, kind, status, reason, seconds],
            )
            if status == "failed":
                drop_reason = f"{drop_prefix}{reason}".split(":")[0]
                catalog.exec(
                    "UPDATE documents SET drop_stage = 'verify', drop_reason = ? "
                    "WHERE id = ? AND drop_stage IS NULL",
                    [drop_reason, doc_id],
                )
                drops[drop_reason] = drops.get(drop_reason, 0) + 1
        catalog.add_drop_counts("verify", source, drops)

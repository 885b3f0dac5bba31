"""The one stage interface, completion markers, and the local executor.

A stage (datatrove's shape) is split into work units, each over its own input shards:

1. :meth:`Stage.units` (driver) lists the units: a deterministic ``key``, the input files the
   unit reads, and the parameters that decide its outputs. ``rank`` is a unit's position in that
   list and ``world_size`` its length.
2. :meth:`Stage.run_unit` (worker, anywhere) reads only its unit's inputs, writes its outputs
   under deterministic names (atomically, :func:`phicorpus.corpus.atomic_path`) and returns what
   it wrote. It never opens the catalog, so any number of units can run at once, on any node
   that sees the corpus directory.
3. The executor writes the unit's completion marker last
   (``cache/markers/<stage>/<key>.json``: the parameters' hash and each output's size and
   sha256). A unit whose marker is present, names the same parameters and whose outputs are
   still there with the sizes the marker records is not run again; a unit that died left no
   marker, so it is re-run from scratch and whatever it had half-written is overwritten.
4. :meth:`Stage.commit` (driver, the one catalog writer) records every unit's outputs in the
   catalog. It is idempotent: a re-run after a crash between the last marker and the commit
   commits the same outputs again.

Executors (:class:`LocalExecutor` here; ``RayExecutor`` elsewhere) only decide where
:meth:`Stage.run_unit` runs; they share :func:`run_stage`'s contract, so a stage never imports an
executor and the outputs are byte-identical whichever ran them.

Example:
    >>> executor = LocalExecutor(workers=2)
    >>> stats = run_stage(TokenizeStage(...), corpus, executor)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from phicorpus.catalog import Catalog, params_hash
from phicorpus.corpus import Corpus, cheap_file_problem, publish_bytes, remove_stale_temporaries, sha256_file

__all__ = [
    "MARKERS_DIR",
    "Executor",
    "LocalExecutor",
    "Stage",
    "StageRun",
    "UnitResult",
    "WorkUnit",
    "clear_markers",
    "digest_lines",
    "marker_path",
    "read_marker",
    "run_stage",
    "unit_done",
    "write_marker",
]

#: Where completion markers live, relative to the corpus root.
MARKERS_DIR = "cache/markers"


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """One unit of a stage: what it reads and the parameters that decide what it writes.

    Picklable (plain strings and JSON-able values), so it can be shipped to a worker process or
    a Ray task.
    """

    #: Deterministic name of the unit within its stage (a path-safe string, may contain ``/``).
    key: str
    #: Input files, relative to the corpus root.
    inputs: tuple[str, ...] = ()
    #: JSON-able parameters; together with ``inputs`` they decide the unit's outputs.
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def params_hash(self) -> str:
        return params_hash({"inputs": list(self.inputs), "params": dict(self.params)})


@dataclass(frozen=True, slots=True)
class UnitResult:
    """What a unit wrote: output files (relative to the corpus root) and small JSON-able stats."""

    key: str
    outputs: tuple[str, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    #: sha256 of outputs the worker already knows (computed while writing), so the marker does
    #: not read them again.
    hashes: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage: units on the driver, work on a worker, commit on the driver."""

    #: Stage name; also the marker directory (``cache/markers/<name>/``), so path-safe.
    name: str

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        """The units of this run, in a deterministic order (driver side)."""
        ...

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        """Do one unit's work: read its inputs, write its outputs; never the catalog."""
        ...

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, Any]:
        """Record the outputs of every unit (driver side, idempotent); returns the stage stats."""
        ...


class Executor(Protocol):
    """Runs the units of a stage somewhere; :func:`run_stage` does the rest.

    ``distributed``: units may run on other machines, so a stage whose one-process form holds
    the whole corpus in memory (dedup) takes its sharded form instead.
    """

    @property
    def distributed(self) -> bool: ...

    def map_units(self, stage: Stage, corpus: Corpus, units: Sequence[WorkUnit]) -> Iterable[UnitResult]:
        """Run ``stage.run_unit`` for each unit and write its marker; yield results as they end."""
        ...


# -- markers --------------------------------------------------------------------------------------


def marker_path(corpus: Corpus, stage: str, key: str) -> Path:
    """``cache/markers/<stage>/<key>.json`` (``:`` in stage names become ``-``)."""
    return corpus.root / MARKERS_DIR / stage.replace(":", "-") / f"{key}.json"


def write_marker(corpus: Corpus, stage: str, unit: WorkUnit, result: UnitResult) -> None:
    """Write a unit's completion marker, after its outputs are in place (so: last)."""
    files = {}
    for rel in result.outputs:
        path = corpus.absolute(rel)
        st = path.stat()
        files[rel] = {
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": result.hashes.get(rel) or sha256_file(path),
        }
    body = {
        "stage": stage,
        "key": unit.key,
        "params_hash": unit.params_hash,
        "outputs": files,
        "stats": dict(result.stats),
    }
    publish_bytes(marker_path(corpus, stage, unit.key), (json.dumps(body, sort_keys=True) + "\n").encode())


def read_marker(corpus: Corpus, stage: str, key: str) -> dict[str, Any] | None:
    """The marker of a unit, or ``None`` when there is none or it cannot be read."""
    path = marker_path(corpus, stage, key)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def unit_done(corpus: Corpus, stage: str, unit: WorkUnit) -> UnitResult | None:
    """The recorded result of a finished unit: its marker names the same parameters and every
    output is still there with the size it had and, when it was rewritten since (another plan
    of the same build wrote the same path: same size, other tokens), the same sha256. ``None``
    means the unit must run."""
    marker = read_marker(corpus, stage, unit.key)
    if marker is None or marker.get("params_hash") != unit.params_hash:
        return None
    outputs = marker.get("outputs") or {}
    for rel, info in outputs.items():
        try:
            size = int(info["bytes"])
        except (KeyError, TypeError, ValueError):
            return None
        path = corpus.absolute(rel)
        # Size plus the header/footer magic: a truncated or torn output is redone (hashes: verify).
        if cheap_file_problem(path, size) is not None:
            return None
        # Rewritten since (another plan wrote the same name, same size): the hash decides.
        try:
            rewritten = "mtime_ns" in info and os.stat(path).st_mtime_ns != int(info["mtime_ns"])
        except (OSError, TypeError, ValueError):
            return None
        if rewritten and sha256_file(path) != info.get("sha256"):
            return None
    hashes = {rel: str(info.get("sha256", "")) for rel, info in outputs.items()}
    return UnitResult(unit.key, tuple(outputs), dict(marker.get("stats") or {}), hashes)


def clear_markers(corpus: Corpus, stage: str) -> None:
    """Forget every unit of ``stage`` (its outputs are left for the stage to overwrite)."""
    directory = corpus.root / MARKERS_DIR / stage.replace(":", "-")
    if directory.is_dir():
        for path in sorted(directory.rglob("*.json"), reverse=True):
            path.unlink(missing_ok=True)


def _run_and_mark(stage: Stage, corpus: Corpus, unit: WorkUnit) -> UnitResult:
    result = stage.run_unit(corpus, unit)
    write_marker(corpus, stage.name, unit, result)
    return result


# -- executors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalExecutor:
    """Runs units on this machine, ``workers`` at a time in threads (the hot work is in Rust,
    which releases the GIL). ``workers=1`` runs them one after another in this thread."""

    workers: int = 2
    distributed: ClassVar[bool] = False

    def map_units(self, stage: Stage, corpus: Corpus, units: Sequence[WorkUnit]) -> Iterable[UnitResult]:
        if self.workers <= 1 or len(units) <= 1:
            for unit in units:
                yield _run_and_mark(stage, corpus, unit)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix=f"phicorpus-{stage.name}") as pool:
            # In order, so results (and any error) come back deterministically.
            yield from pool.map(lambda u: _run_and_mark(stage, corpus, u), units)


@dataclass(frozen=True, slots=True)
class StageRun:
    """What :func:`run_stage` did: the commit's stats and every unit's result, in unit order."""

    stats: dict[str, Any]
    results: list[UnitResult]


def run_stage(
    stage: Stage,
    corpus: Corpus,
    executor: Executor | None = None,
    *,
    echo: Callable[[str], None] | None = None,
) -> StageRun:
    """Run the units of ``stage`` that are not done, then commit all of them.

    Returns:
        The results of every unit and the stage's commit stats, with ``units`` (all),
        ``units_run`` (now) and ``units_resumed`` (found done by their markers).
    """
    # No unit of this stage runs yet: a marker a killed run half-wrote is garbage.
    remove_stale_temporaries(corpus.root / MARKERS_DIR / stage.name.replace(":", "-"))
    units = stage.units(corpus)
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError(f"stage {stage.name}: unit keys are not unique")
    done: dict[str, UnitResult] = {}
    todo: list[WorkUnit] = []
    for unit in units:
        found = unit_done(corpus, stage.name, unit)
        if found is None:
            todo.append(unit)
        else:
            done[unit.key] = found
    if todo and echo is not None and len(units) > 1:
        echo(f"{stage.name}: {len(todo)} of {len(units)} units to run")
    for result in (executor or LocalExecutor()).map_units(stage, corpus, todo):
        done[result.key] = result
    results = [done[k] for k in keys]
    with Catalog.open(corpus) as catalog:
        stats = stage.commit(corpus, catalog, results)
    stats = dict(stats)
    stats.update(units=len(units), units_run=len(todo), units_resumed=len(units) - len(todo))
    return StageRun(stats, results)


def digest_lines(items: Iterable[str]) -> str:
    """sha256 over ``items`` one per line: a cheap fingerprint of an id list for unit params."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode())
        digest.update(b"\n")
    return digest.hexdigest()

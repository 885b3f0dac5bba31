"""Where the work units of a stage run: this machine (``local``) or a Ray cluster (``ray``).

The executor is the only part of phicorpus that knows where a unit runs. Both keep the contract
of :func:`phicorpus.stage.run_stage`: a unit's ``run_unit`` reads only its inputs and writes its
outputs under deterministic names, then its completion marker is written (last); the driver
commits. So a build gives byte-identical outputs on either.

:class:`RayExecutor` runs each unit as one Ray task (``num_cpus`` each) with ``max_retries``: a
task whose worker process died (SIGKILL, OOM, a lost node) is run again from scratch on any
node, and whatever its first attempt half-wrote is overwritten (outputs are published
atomically, the marker decides what is done). An exception raised by a unit is not retried; it
reaches the driver as itself, so the CLI prints its one line. Every node must import the same
phicorpus and see the corpus directory at the same path (a shared file system).

Ray is optional (``pip install 'phicorpus[ray]'``); without it, asking for the ray executor is
one :class:`ExecutorError`.

Example:
    >>> executor = make_executor(ExecutorConfig(kind="ray", ray_address="auto"))  # doctest: +SKIP
    >>> run_stage(stage, corpus, executor)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from phicorpus.config import ExecutorConfig
from phicorpus.corpus import Corpus
from phicorpus.stage import Executor, LocalExecutor, Stage, UnitResult, WorkUnit, write_marker

__all__ = ["EXECUTORS", "ExecutorError", "RayExecutor", "make_executor", "ray_unit"]

#: The executor kinds of ``--executor`` / ``[executor] kind``.
EXECUTORS = ("local", "ray")

RAY_MISSING = "--executor ray needs Ray, which is not installed: pip install 'phicorpus[ray]'"


class ExecutorError(Exception):
    """The executor cannot run (Ray missing, no cluster at the address, a unit's worker kept dying)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(RAY_MISSING) from None
    return ray


#: The stage a Ray worker process last unpacked, by object id: a stage can carry per-unit
#: tables (document ids), so each worker unpacks it once, not once per unit.
_STAGES: dict[str, Stage] = {}


def ray_unit(boxed: list[Any], corpus: Corpus, unit: WorkUnit) -> UnitResult:
    """One unit on a Ray worker: its work, then its marker (last).

    ``boxed`` holds the stage's object ref (in a list, so Ray passes the ref, not the object).
    """
    import ray

    ref = boxed[0]
    stage = _STAGES.get(ref.hex())
    if stage is None:
        stage = ray.get(ref)
        _STAGES.clear()
        _STAGES[ref.hex()] = stage
    result = stage.run_unit(corpus, unit)
    write_marker(corpus, stage.name, unit, result)
    return result


@dataclass(slots=True)
class RayExecutor:
    """Runs each unit as a Ray task with retries.

    Attributes:
        address: ``ray.init``'s address: ``None`` starts a Ray instance on this machine (or joins
            ``$RAY_ADDRESS``), ``"auto"`` joins the cluster this machine is part of,
            ``"HOST:PORT"`` a cluster's GCS, ``"ray://HOST:PORT"`` through Ray Client.
        max_retries: Re-runs of a unit whose worker process died.
        num_cpus: CPUs each unit reserves.
    """

    address: str | None = None
    max_retries: int = 3
    num_cpus: float = 1.0
    _started: bool = False
    distributed: ClassVar[bool] = True

    def start(self) -> None:
        """Join (or start) the Ray cluster now, so a wrong address fails before any work."""
        self._init()

    def _probe(self) -> None:
        """A cluster address (``HOST:PORT``, ``ray://HOST:PORT``) must accept a connection within
        5 s; else one :class:`ExecutorError` (Ray itself would retry for minutes)."""
        address = self.address or ""
        if not address or address == "auto" or address.count(":") < 1:
            return
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise ExecutorError(f"Ray address {address!r}: expected HOST:PORT or ray://HOST:PORT")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ExecutorError(f"Ray at {address}: no cluster answers ({reason})") from None

    def _init(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            self._probe()
            try:
                ray.init(
                    address=self.address or None,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    include_dashboard=False,
                    configure_logging=True,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or os.environ.get("RAY_ADDRESS") or "a local instance"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ExecutorError(f"Ray at {where}: {first}") from None
            self._started = True
        return ray

    def map_units(self, stage: Stage, corpus: Corpus, units: Sequence[WorkUnit]) -> Iterable[UnitResult]:
        """Submit every unit at once; yield their results in unit order."""
        if not units:
            return
        ray = self._init()
        task = ray.remote(ray_unit).options(
            max_retries=self.max_retries,
            retry_exceptions=False,
            num_cpus=self.num_cpus,
            name=f"phicorpus:{stage.name}",
        )
        stage_ref = ray.put(stage)
        refs = [task.remote([stage_ref], corpus, unit) for unit in units]
        for unit, ref in zip(units, refs, strict=True):
            try:
                result: UnitResult = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                for pending in refs:
                    ray.cancel(pending)
                cause = exc.cause
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
                for pending in refs:
                    ray.cancel(pending)
                tries = self.max_retries + 1
                raise ExecutorError(
                    f"stage {stage.name}, unit {unit.key}: its Ray worker died {tries} times "
                    f"({type(exc).__name__}); re-run to resume from the units done"
                ) from None
            yield result

    def close(self) -> None:
        """Disconnect from Ray (and stop the instance this executor started on this machine)."""
        if self._started:
            _import_ray().shutdown()
            self._started = False


def make_executor(config: ExecutorConfig, *, workers: int | None = None) -> Executor:
    """The executor ``config`` names.

    Raises:
        ExecutorError: an unknown kind, or ``ray`` without Ray installed.
    """
    if config.kind == "local":
        return LocalExecutor(workers=workers or config.workers)
    if config.kind == "ray":
        _import_ray()
        return RayExecutor(address=config.ray_address or None, max_retries=config.max_retries)
    raise ExecutorError(f"unknown executor {config.kind!r}: one of {', '.join(EXECUTORS)}")

"""Generation on a Ray cluster: the prompts partitioned over actors, one cost cap for all of them.

:func:`run_generation_cluster` is :func:`phicorpus.generate.run.run_generation` with the sending
spread over ``workers`` Ray actors (ARCHITECTURE.md, "Generation on a cluster"):

- **partitions**: request ``key`` goes to actor ``crc32(key) mod N``; endpoint ``i`` to actor
  ``i mod N`` (every actor gets every endpoint when there are fewer endpoints than actors). Each
  actor is an async :class:`~phicorpus.generate.engine.Engine` over its share.
- **journal segments**: actor ``k`` appends to ``requests/generate-<k>.jsonl`` (its own lock) and
  replays every other segment and the single ``generate.jsonl`` on start, so a key with a result
  anywhere is not sent again and a ``send`` without an outcome counts as possibly billed. Actors
  never touch the catalog: the driver (the one catalog writer) turns the segments' results into
  documents through :func:`~phicorpus.generate.run.recover` once the actors are done, and records
  the stage.
- **cost cap**: one :class:`CostLedger` actor owns ``--max-cost``. An actor's meter may commit
  (spent + possibly billed + reserved in flight) only up to its *lease*; when a reservation does
  not fit, the actor hands its unused lease back and asks for at least that reservation (a slice
  of ``cap / (4N)`` when there is that much). The ledger grants only from ``cap - (money of earlier
  runs + every lease)``, so the actors' reservations never sum above the cap, and what one actor
  does not use (handed back when it is refused, or when it finishes) goes to the others. An
  actor that is refused with nothing in flight waits for the others; once every running actor is
  refused so, nothing can free budget any more and they all stop with the reason ``cost cap``.

An actor that dies (SIGKILL, a lost node) is restarted by Ray (``max_restarts``) and its ``run`` is
called again: it replays the segments and sends only what has no result. Its previous lease is
counted as spent in full (simpler than rebuilding it from its segment, and safe: at most the
unused part of one lease is lost to the cap). A driver killed takes its actors with it (Ray ends
the actors of an owner that died; an interrupted driver kills them itself); a re-run recovers every
segment's results first and sends only the rest, its actors waiting (:data:`LOCK_WAIT`) for the
segment locks the old ones may still hold.

Ray is imported lazily: without it this module imports, and the run fails with
:data:`phicorpus.executors.RAY_MISSING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.corpus import Corpus, remove_stale_temporaries
from phicorpus.generate.cost import CostMeter
from phicorpus.generate.engine import Engine, possibly_billed, spent_before
from phicorpus.generate.journal import JournalError, RequestJournal, segments
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import GenerationParams, Request, build_requests, load_prompts
from phicorpus.generate.run import JOURNAL, pending_requests, recover, run_price, start_run

__all__ = [
    "CostLedger",
    "LeasedMeter",
    "endpoint_share",
    "generate_on",
    "partition",
    "run_generation_cluster",
    "segment_path",
]

#: How often (s) a refused actor with nothing in flight asks the ledger again.
POLL = 0.05
#: How long (s) an actor waits for its segment's lock: the actor of a killed driver holds it until
#: Ray has noticed that its owner died and ended it.
LOCK_WAIT = 60.0


def partition(key: str, workers: int) -> int:
    """The actor (``0 .. workers-1``) that sends request ``key``: stable across runs and machines."""
    return zlib.crc32(key.encode()) % workers


def endpoint_share(endpoints: Sequence[str], k: int, workers: int) -> list[str]:
    """Actor ``k``'s endpoints: ``i mod workers == k``, or all of them when there are fewer than actors."""
    if len(endpoints) < workers:
        return list(endpoints)
    return [url for i, url in enumerate(endpoints) if i % workers == k]


def segment_path(corpus: Corpus, k: int) -> Path:
    """Actor ``k``'s journal segment."""
    return corpus.requests_dir / f"{Path(JOURNAL).stem}-{k}{Path(JOURNAL).suffix}"


class CostLedger:
    """The cluster's cost cap: grants leases so that ``base + sum(leases) <= cap`` always.

    ``base`` is money already out of the cap's reach: what earlier runs spent or may have been
    billed, what finished actors used, and the whole lease of an actor that died. A plain class,
    made a Ray actor by the driver (and usable without Ray in tests of its arithmetic).
    """

    def __init__(self, cap: float, base: float, workers: int) -> None:
        self.cap = cap
        self.base = base
        self.slice = cap / (4 * workers)
        self.leases = [0.0] * workers
        self.active = set(range(workers))
        self.starving: dict[int, float] = {}  # refused actors with nothing in flight -> what they need
        self.lost = 0.0  # leases of actors that died (counted as possibly billed)
        self.starts = [0] * workers
        self.peak = base  # the most base + leases ever was (<= cap, or base when that is over)

    def free(self) -> float:
        return self.cap - self.base - sum(self.leases)

    def register(self, k: int) -> None:
        """Actor ``k`` (re)starts: a lease left by a previous incarnation (it died) counts as spent."""
        self.starts[k] += 1
        if self.leases[k] > 0:
            self.lost += self.leases[k]
            self.base += self.leases[k]
            self.leases[k] = 0.0
        self.active.add(k)
        self.starving.pop(k, None)

    def ask(self, k: int, handback: float, need: float, idle: bool) -> tuple[float, bool]:
        """Actor ``k`` returns ``handback`` of its lease and asks for ``need`` more.

        Returns ``(granted, stop)``: ``granted`` is ``need`` or more (a slice) when the cap allows,
        else 0; ``stop`` is True when every running actor is refused with nothing in flight, so
        no budget can come free.
        """
        self.leases[k] = max(0.0, self.leases[k] - handback)
        free = self.free()
        if free + 1e-12 >= need:
            granted = min(free, max(need, self.slice))
            self.leases[k] += granted
            self.starving.pop(k, None)
            self.peak = max(self.peak, self.base + sum(self.leases))
            return granted, False
        if not idle:
            self.starving.pop(k, None)
            return 0.0, False
        self.starving[k] = need
        stuck = self.active <= set(self.starving) and free + 1e-12 < min(self.starving.values())
        return 0.0, stuck

    def finish(self, k: int, used: float) -> None:
        """Actor ``k`` is done: ``used`` (its spent + possibly billed) stays spent, the rest is free."""
        self.base += used
        self.leases[k] = 0.0
        self.active.discard(k)
        self.starving.pop(k, None)

    def state(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "base": self.base,
            "leases": list(self.leases),
            "lost": self.lost,
            "starts": list(self.starts),
            "peak": self.peak,
        }


class LeasedMeter(CostMeter):
    """A :class:`CostMeter` whose cap is the actor's lease (0 at first: every reservation asks)."""

    def reserve(self, worst: float) -> bool:
        if self.committed + worst > self.cap + 1e-12:
            self.refused += 1
            return False
        self.in_flight += worst
        return True


class _LeasedEngine(Engine):
    """An :class:`Engine` that reserves against a lease from the :class:`CostLedger`."""

    ledger: Any
    index: int
    _asking: asyncio.Lock | None = None

    async def _reserve(self, worst: float) -> bool:
        meter = self.meter
        if self._asking is None:
            self._asking = asyncio.Lock()
        while not meter.reserve(worst):
            # One question at a time: the others then reserve from what it brought, so an actor
            # holds about what it has in flight, not a slice per waiting request.
            async with self._asking:
                if meter.reserve(worst):
                    return True
                handback = max(0.0, meter.cap - meter.committed)
                idle = meter.in_flight <= 1e-15
                meter.cap -= handback  # before the await: what the ledger will hold for this actor
                granted, stop = await self.ledger.ask.remote(self.index, handback, worst, idle)
                meter.cap += granted
            if granted > 0:
                continue
            if stop:
                return False
            if idle:
                await asyncio.sleep(POLL)  # another actor may hand budget back
            else:
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), timeout=0.5)
        return True


@dataclass(frozen=True, slots=True)
class _Job:
    """What actor ``index`` needs to send its partition (pickled to it once, kept for its retries)."""

    index: int
    workers: int
    corpus: Corpus
    requests: tuple[Request, ...]
    endpoints: tuple[str, ...]
    model: str
    api_key: str
    config: GenerateConfig
    price: ModelPrice | None
    capped: bool
    retry_failed: bool


class GenerationActor:
    """One partition's async client (made a Ray actor by the driver): appends to its segment only."""

    def pid(self) -> int:
        return os.getpid()

    async def run(self, job: _Job, ledger: Any) -> dict[str, Any]:
        """Send the partition's requests that have no result in any journal; this actor's stats.

        Whatever happens, the ledger hears that this actor is done (with what it used), so that a
        failure here does not keep the others waiting for budget it holds.
        """
        if ledger is not None:
            await ledger.register.remote(job.index)
        meter: CostMeter | None = None
        try:
            path = segment_path(job.corpus, job.index)
            main = job.corpus.requests_dir / JOURNAL
            others = [main, *(p for p in segments(main) if p != path)]
            notices: list[str] = []
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    journal = RequestJournal.open(path, others)
                    break
                except JournalError:
                    if time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(0.2)
            with journal:
                todo = pending_requests(journal, job.requests, retry_failed=job.retry_failed)

                async def on_result(request: Request, record: dict[str, Any]) -> None:
                    return None  # the record is in the segment; the driver makes documents of it

                cls = _LeasedEngine if ledger is not None else Engine
                engine = cls(
                    journal=journal,
                    urls=job.endpoints,
                    api_key=job.api_key,
                    model=job.model,
                    config=job.config,
                    price=job.price,
                    max_cost=0.0,
                    progress=Progress(len(todo), enabled=False),
                    on_result=on_result,
                    echo=notices.append,
                )
                # Money of earlier runs is in the ledger's base: this meter counts this run only.
                meter = engine.meter = LeasedMeter(job.price) if ledger is not None else CostMeter(job.price)
                if isinstance(engine, _LeasedEngine):
                    engine.ledger = ledger
                    engine.index = job.index
                if todo:
                    await engine.run(todo)
        finally:
            if ledger is not None:
                used = meter.spent + meter.possibly + meter.in_flight if meter is not None else 0.0
                await ledger.finish.remote(job.index, used)
        stats = engine.stats
        return {
            "index": job.index,
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "todo": len(todo),
            "sent": stats.sent,
            "done": stats.done,
            "failed": stats.failed,
            "errors": dict(stats.errors),
            "stop_reason": stats.stop_reason,
            "prompt_tokens": stats.prompt_tokens,
            "output_tokens": stats.output_tokens,
            "spent_usd": engine.meter.spent,
            "possibly_billed_usd": engine.meter.possibly,
            "failures": stats.failures,
            "continuations": stats.continuations,
            "concurrency_start": stats.concurrency_start,
            "concurrency_final": stats.concurrency_final,
            "context": stats.context,
            "notices": notices,
        }


def _import_ray() -> Any:
    from phicorpus.executors import _import_ray as import_ray

    return import_ray()


def _stop_reason(reasons: Sequence[str | None]) -> str | None:
    """The run's stop reason: the cap first (it is the run's), else the first actor's that has one."""
    given = [r for r in reasons if r]
    if "cost cap" in given:
        return "cost cap"
    return given[0] if given else None


def run_generation_cluster(
    corpus: Corpus,
    prompts: Path,
    *,
    endpoints: Sequence[str],
    model: str,
    params: GenerationParams,
    max_cost: float,
    config: GenerateConfig,
    workers: int,
    address: str | None = None,
    api_key: str = "",
    retry_failed: bool = False,
    max_restarts: int = 3,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """:func:`~phicorpus.generate.run.run_generation` over ``workers`` Ray actors (module docstring).

    ``address``: ``ray.init``'s (None: join ``$RAY_ADDRESS`` or start Ray here); a Ray already
    initialized in this process is used as it is. Returns the statistics of ``run_generation``
    plus ``workers``, ``actors`` (each actor's) and ``ledger`` (the cap's accounting).

    Raises:
        ExecutorError: Ray is not installed, no cluster answers, or an actor kept dying.
        ValueError: bad prompts, no endpoint, or a cost cap with a model that has no price.
    """
    from phicorpus.executors import ExecutorError, RayExecutor

    ray = _import_ray()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    price = run_price(model, config, endpoints, max_cost, echo)
    rows = load_prompts(prompts)
    requests = build_requests(rows, model, params, where=str(prompts))
    remove_stale_temporaries(corpus.root / "docs")
    started = time.monotonic()
    main = corpus.requests_dir / JOURNAL
    # The driver holds the single journal's lock (no local run meanwhile) and reads every segment.
    with RequestJournal.open(main, segments(main)) as journal:
        start = start_run(
            corpus, journal, prompts, rows, requests, model=model, params=params, config=config,
            price=price, max_cost=max_cost, retry_failed=retry_failed, echo=echo,
            where=f" over {workers} Ray actors",
        )  # fmt: skip
        run_id, writer, recovered = start.run_id, start.writer, start.recovered
        todo, plan = start.todo, start.plan
        spent0 = spent_before(journal.state)
        possibly0 = possibly_billed(journal.state, todo, price)
        parts: list[list[Request]] = [[] for _ in range(workers)]
        for request in todo:
            parts[partition(request.key, workers)].append(request)
        executor = RayExecutor(address=address)
        results: list[dict[str, Any]] = []
        ledger_state: dict[str, Any] = {}
        actors: list[Any] = []
        status = "failed"
        try:
            if todo:
                executor.start()
                ledger = None
                if max_cost > 0:
                    ledger = (
                        ray.remote(CostLedger)
                        .options(num_cpus=0, max_restarts=0)
                        .remote(max_cost, spent0 + possibly0, workers)
                    )
                actor_cls = ray.remote(GenerationActor).options(
                    num_cpus=0,
                    max_restarts=max_restarts,
                    max_task_retries=max_restarts,
                    scheduling_strategy="SPREAD",
                )
                actors = [actor_cls.remote() for _ in range(workers)]
                jobs = [
                    _Job(
                        k, workers, corpus, tuple(parts[k]), tuple(endpoint_share(endpoints, k, workers)),
                        model, api_key, config, price, max_cost > 0, retry_failed,
                    )
                    for k in range(workers)
                ]  # fmt: skip
                pending = [actor.run.remote(job, ledger) for actor, job in zip(actors, jobs, strict=True)]
                try:
                    while pending:  # the first failure at once, not after the actors before it
                        ready, pending = ray.wait(pending, num_returns=1)
                        results.extend(ray.get(ready))
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                except ray.exceptions.RayActorError as exc:
                    raise ExecutorError(
                        f"generate: a Ray actor died {max_restarts + 1} times ({type(exc).__name__}); "
                        "what was received is journaled, re-run to resume"
                    ) from None
                results.sort(key=lambda r: int(r["index"]))
                if ledger is not None:
                    ledger_state = dict(ray.get(ledger.state.remote()))
            reason = _stop_reason([r["stop_reason"] for r in results])
            failed = sum(r["failed"] for r in results)
            status = "done" if not reason and not failed else "incomplete"
        finally:
            if status == "failed":  # interrupted or failed: no actor goes on sending without a driver
                for actor in actors:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
            executor.close()
            journal.reload(segments(main))  # the segments' results, written by the actors
            written = recover(writer, journal, requests)
            failures = [f for r in results for f in r["failures"]]
            writer.record_failures(failures)
            errors: Counter[str] = Counter()
            for r in results:
                errors.update(r["errors"])
            spent = spent0 + sum(r["spent_usd"] for r in results)
            possibly = possibly0 + sum(r["possibly_billed_usd"] for r in results)
            possibly += float(ledger_state.get("lost", 0.0))
            done = sum(r["done"] for r in results)
            output_tokens = sum(r["output_tokens"] for r in results)
            result: dict[str, Any] = {
                "requests": len(requests),
                "already_answered": len(requests) - len(todo),
                "recovered": recovered,
                "sent": sum(r["sent"] for r in results),
                "done": done,
                "failed": sum(r["failed"] for r in results),
                "errors": dict(errors),
                "stop_reason": _stop_reason([r["stop_reason"] for r in results]),
                "documents": writer.docs,
                "dropped": writer.dropped,
                "shards": writer.shards,
                "prompt_tokens": sum(r["prompt_tokens"] for r in results),
                "output_tokens": output_tokens,
                "spent_usd": round(spent, 6),
                "possibly_billed_usd": round(possibly, 6),
                "max_cost": max_cost,
                "seconds": round(time.monotonic() - started, 3),
                "continuations": sum(r["continuations"] for r in results),
                "context": next((r["context"] for r in results if r["context"]), None),
                "estimate": {
                    "prompt_tokens": plan.prompt_tokens,
                    "output_tokens": plan.output_tokens,
                    "usd": plan.usd,
                },
                "tokens_per_second": round(output_tokens / max(1e-9, time.monotonic() - started), 2),
                "workers": workers,
                "written_after": written,
                "actors": [{k: v for k, v in r.items() if k not in ("failures", "notices")} for r in results],
                "ledger": ledger_state,
            }
            with Catalog.open(corpus) as catalog:
                catalog.finish_stage(run_id, result, status=status)
        for r in results:
            for line in r["notices"]:
                echo(f"actor {r['index']}: {line}")
        echo(
            f"generate ({workers} Ray actors): {done} done, {result['failed']} failed, "
            f"{result['sent']} attempts, "
            f"{writer.docs} documents ({sum(writer.dropped.values())} dropped), "
            + (
                f"${spent:.4f} spent (+${possibly:.4f} possibly billed)"
                if price is not None
                else "cost unknown (no price)"
            )
            + f", {result['seconds']:.1f}s"
            + (f"; stopped: {result['stop_reason']}" if result["stop_reason"] else "")
            + (f"; errors {dict(errors)}" if errors else "")
        )
        return result


def generate_on(
    executor: Any,
    corpus: Corpus,
    prompts: Path,
    *,
    endpoints: Sequence[str],
    model: str,
    params: GenerationParams,
    max_cost: float,
    config: GenerateConfig,
    workers: int,
    api_key: str = "",
    retry_failed: bool = False,
    progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate ``prompts`` where ``executor`` runs its units: from ``workers`` Ray actors on the
    Ray executor (:func:`run_generation_cluster`, at its address and retries), else in this
    process (:func:`~phicorpus.generate.run.run_generation`). The one switch the build's LLM
    sources and the rephrase stage share."""
    from phicorpus.executors import RayExecutor
    from phicorpus.generate.run import run_generation

    if isinstance(executor, RayExecutor):
        return run_generation_cluster(
            corpus, prompts, endpoints=endpoints, model=model, params=params, max_cost=max_cost,
            config=config, workers=workers, address=executor.address, api_key=api_key,
            retry_failed=retry_failed, max_restarts=executor.max_retries, echo=echo,
        )  # fmt: skip
    return run_generation(
        corpus, prompts, endpoints=endpoints, model=model, params=params, max_cost=max_cost,
        config=config, api_key=api_key, progress=progress, retry_failed=retry_failed, echo=echo,
    )  # fmt: skip

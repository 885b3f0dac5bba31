"""``run_generation`` and ``estimate_cost``: the generation stage's entry points (CONTRACTS.md).

Example:
    >>> stats = run_generation(corpus, Path("prompts/p.parquet"), endpoints=["http://127.0.0.1:8000/v1"],
    ...                        model="gpt-4o-mini", params=GenerationParams(samples=4), max_cost=20.0,
    ...                        config=GenerateConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.corpus import Corpus, remove_stale_temporaries
from phicorpus.generate.cost import model_price, prompt_tokens_guess, prompt_tokens_upper, worst_case_cost
from phicorpus.generate.engine import Engine
from phicorpus.generate.journal import RequestJournal, segments
from phicorpus.generate.probe import is_local_url
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import GenerationParams, Request, ShardWriter, build_requests, load_prompts

__all__ = ["Estimate", "GenerationParams", "estimate", "estimate_cost", "local_price", "run_generation"]

JOURNAL = "generate.jsonl"


@dataclass(frozen=True, slots=True)
class Estimate:
    """What is known before sending: tokens, and dollars where the model has a price.

    Time is not in it: it depends on the server, and is measured once answers come (the
    progress line's tokens/s and ETA).
    """

    requests: int
    prompt_tokens: int  # about one per 4 bytes of prompt
    output_tokens: int  # the prompts' expected_tokens (else [generate] expected_tokens), capped
    max_output_tokens: int  # every answer at max_tokens
    usd: float | None  # None: no price
    worst_usd: float | None

    def describe(self) -> str:
        money = (
            f"${self.usd:.4f} estimated (worst case ${self.worst_usd:.4f})"
            if self.usd is not None and self.worst_usd is not None
            else "no price for this model"
        )
        return (
            f"~{self.prompt_tokens:,} prompt tokens, ~{self.output_tokens:,} output tokens expected "
            f"(at most {self.max_output_tokens:,}); {money}; time unknown until measured"
        )


def estimate(
    requests: Sequence[Request], price: ModelPrice | None, config: GenerateConfig, *, batch: bool = False
) -> Estimate:
    """The :class:`Estimate` of sending ``requests`` (each a single sample) at ``price``."""
    prompt = output = most = 0
    usd = worst = 0.0
    for request in requests:
        max_tokens = int(request.api["max_tokens"])
        expected = min(int(request.meta.get("expected_tokens") or config.expected_tokens), max_tokens)
        guess = prompt_tokens_guess(request.messages)
        prompt += guess
        output += expected
        most += max_tokens
        if price is not None:
            usd += (guess * price.input + expected * price.output) / 1e6
            worst += worst_case_cost(price, prompt_tokens_upper(request.messages), max_tokens)
    if price is not None and batch:
        usd *= price.batch
        worst *= price.batch
    return Estimate(
        len(requests), prompt, output, most, usd if price is not None else None,
        worst if price is not None else None,
    )  # fmt: skip


def local_price(endpoints: Sequence[str]) -> bool:
    """True when every endpoint is on loopback or a private address (a model the operator runs)."""
    return bool(endpoints) and all(is_local_url(url) for url in endpoints)


def estimate_cost(
    prompts: pa.Table | Sequence[Mapping[str, Any]],
    model: str,
    params: GenerationParams,
    config: GenerateConfig,
    *,
    batch: bool = False,
) -> tuple[float, float]:
    """(USD, seconds) to generate every prompt's ``params.samples`` responses.

    Output tokens are each prompt's ``expected_tokens`` (else ``config.expected_tokens``), capped by
    ``max_tokens``; prompt tokens about one per 4 bytes. Seconds assume ``config.concurrency`` requests
    in flight at ``config.tokens_per_second`` each, or the configured rate limits if slower. A model
    without a price gives ``nan`` dollars.
    """
    rows = prompts.to_pylist() if isinstance(prompts, pa.Table) else list(prompts)
    requests = build_requests(rows, model, GenerationParams(**{**_params_dict(params), "samples": 1}))
    out_tokens = 0.0
    in_tokens = 0.0
    latency = 0.0
    for request, row in zip(requests, rows, strict=True):
        expected = int(row.get("expected_tokens") or config.expected_tokens)
        out = min(expected, params.max_tokens)
        out_tokens += out * params.samples
        in_tokens += prompt_tokens_guess(request.messages) * params.samples
        latency += (0.3 + out / max(1e-9, config.tokens_per_second)) * params.samples
    price = model_price(model, config)
    usd = math.nan if price is None else (in_tokens * price.input + out_tokens * price.output) / 1e6
    if price is not None and batch:
        usd *= price.batch
    n = len(requests) * params.samples
    seconds = latency / max(1, config.concurrency)
    if config.requests_per_minute > 0:
        seconds = max(seconds, n / config.requests_per_minute * 60)
    if config.tokens_per_minute > 0:
        seconds = max(seconds, (in_tokens + out_tokens) / config.tokens_per_minute * 60)
    return usd, seconds


def _params_dict(params: GenerationParams) -> dict[str, Any]:
    return {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "seed": params.seed,
        "samples": params.samples,
    }


def pending_requests(
    journal: RequestJournal, requests: Sequence[Request], *, retry_failed: bool
) -> list[Request]:
    """Requests with no result in the journal (and, unless ``retry_failed``, no permanent failure)."""
    state = journal.state
    out = []
    for request in requests:
        if request.key in state.results:
            continue
        failure = state.failures.get(request.key)
        if failure and failure.get("permanent") and not retry_failed:
            continue
        out.append(request)
    return out


def recover(writer: ShardWriter, journal: RequestJournal, requests: Sequence[Request]) -> int:
    """Write out results the journal has but the catalog does not (a run killed before its flush)."""
    missing = [r for r in requests if r.key in journal.results and not writer.has(r)]
    if not missing:
        return 0
    full = journal.full_results({r.key for r in missing})
    return writer.write([(r, full[r.key]) for r in missing if r.key in full])


def run_price(
    model: str, config: GenerateConfig, endpoints: Sequence[str], max_cost: float, echo: Callable[[str], None]
) -> ModelPrice | None:
    """The price a run uses: the model's, else $0 for endpoints on this machine or a private network.

    Raises:
        ValueError: no endpoint, or a cost cap with a model that has no price.
    """
    if not endpoints:
        raise ValueError("no LLM endpoint: give --llm URL or set OPENAI_BASE_URL")
    price = model_price(model, config)
    if price is None and local_price(endpoints):
        price = ModelPrice(0.0, 0.0)
        echo(
            f"{model}: no price, and the endpoint is on this machine or a private network: priced at $0 "
            f'(set [generate.prices."{model}"] to change)'
        )
    if max_cost > 0 and price is None:
        raise ValueError(
            f'model {model!r} has no price: add [generate.prices."{model}"] input/output (USD per 1M tokens) '
            "to phicorpus.toml, or run without --max-cost"
        )
    return price


@dataclass(frozen=True, slots=True)
class RunStart:
    """What a generation run knows once its journal is open and before it sends anything."""

    run_id: int
    writer: ShardWriter
    recovered: int
    todo: list[Request]
    plan: Estimate


def start_run(
    corpus: Corpus,
    journal: RequestJournal,
    prompts: Path,
    rows: Sequence[Mapping[str, Any]],
    requests: Sequence[Request],
    *,
    model: str,
    params: GenerationParams,
    config: GenerateConfig,
    price: ModelPrice | None,
    max_cost: float,
    retry_failed: bool,
    echo: Callable[[str], None],
    where: str = "",
) -> RunStart:
    """The part every runner (this process, Ray actors) shares before sending: record the stage,
    write the answers the journal holds but no shard does (a kill -9), find what is left to
    send, and print the plan line. ``where``: how it will be sent (`` over 2 Ray actors``)."""
    run_params = {"prompts": str(prompts), "model": model, "params": _params_dict(params)}
    with Catalog.open(corpus) as catalog:
        run_id = catalog.start_stage("generate", run_params)
    # The catalog is opened only to publish a shard, so it is free between flushes.
    writer = ShardWriter(corpus, None, config, model)
    recovered = recover(writer, journal, requests)
    if recovered:
        echo(f"recovered {recovered} responses from the journal that were not yet in a shard")
    todo = pending_requests(journal, requests, retry_failed=retry_failed)
    plan = estimate(todo, price, config)
    echo(
        f"plan: {len(requests)} requests ({len(rows)} prompts x {params.samples} samples), "
        f"{len(requests) - len(todo)} already answered, {len(todo)} to send to {model}{where}: "
        + plan.describe()
        + (f"; cap ${max_cost:.4f}" if max_cost > 0 else "")
        + (f"; prices of {config.prices_date}" if price and (price.input or price.output) else "")
    )
    return RunStart(run_id, writer, recovered, todo, plan)


def run_generation(
    corpus: Corpus,
    prompts: Path,
    *,
    endpoints: Sequence[str],
    model: str,
    params: GenerationParams,
    max_cost: float,
    config: GenerateConfig,
    api_key: str = "",
    progress: bool | None = None,
    retry_failed: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate a response per prompt and sample; results become ``docs/<format>/`` documents.

    Resumable: keys with a result in ``requests/generate.jsonl`` (or in a segment
    ``generate-<k>.jsonl`` of a cluster run) are never sent again; results
    received but not yet in a shard (kill -9) are written first. ``max_cost <= 0`` means no cap.
    Returns statistics (sent, done, failed, dollars, stop reason, ...).

    Raises:
        ValueError: bad prompts, no endpoint, or a cost cap with a model that has no price.
    """
    price = run_price(model, config, endpoints, max_cost, echo)
    rows = load_prompts(prompts)
    requests = build_requests(rows, model, params, where=str(prompts))
    remove_stale_temporaries(corpus.root / "docs")
    started = time.monotonic()
    path = corpus.requests_dir / JOURNAL
    # Segments of a cluster run (generate-<k>.jsonl) count too: what they answered is not sent again.
    with RequestJournal.open(path, segments(path)) as journal:
        start = start_run(
            corpus, journal, prompts, rows, requests, model=model, params=params, config=config,
            price=price, max_cost=max_cost, retry_failed=retry_failed, echo=echo,
        )  # fmt: skip
        run_id, writer, recovered = start.run_id, start.writer, start.recovered
        todo, plan = start.todo, start.plan
        bar = Progress(len(todo), enabled=progress)
        bar.priced = price is not None
        buffer: list[tuple[Request, dict[str, Any]]] = []
        last_flush = [time.monotonic()]
        lock = asyncio.Lock()

        async def flush() -> None:
            async with lock:
                items, buffer[:] = list(buffer), []
                if items:
                    await asyncio.to_thread(writer.write, items)
                last_flush[0] = time.monotonic()

        async def on_result(request: Request, record: dict[str, Any]) -> None:
            buffer.append((request, record))
            if len(buffer) >= config.flush_every or time.monotonic() - last_flush[0] >= config.flush_seconds:
                await flush()

        engine = Engine(
            journal=journal,
            urls=endpoints,
            api_key=api_key,
            model=model,
            config=config,
            price=price,
            max_cost=max_cost,
            progress=bar,
            on_result=on_result,
            echo=echo,
        )
        engine.possibly_billed_before(todo)

        async def heartbeat() -> None:
            while True:  # off a terminal: a line every Progress.every seconds, answers or not
                await asyncio.sleep(min(bar.interval, 5.0))
                bar.draw()

        async def main() -> None:
            ticker = asyncio.create_task(heartbeat())
            try:
                await engine.run(todo)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                await flush()

        status = "failed"
        try:
            asyncio.run(main())
            status = "done" if not engine.stats.stop_reason and not engine.stats.failed else "incomplete"
        finally:
            bar.close()
            if buffer:  # interrupted: everything is in the journal; write what is buffered now
                writer.write(list(buffer))
            writer.record_failures(engine.stats.failures)
            stats = engine.stats
            meter = engine.meter
            result = {
                "requests": len(requests),
                "already_answered": len(requests) - len(todo),
                "recovered": recovered,
                "sent": stats.sent,
                "done": stats.done,
                "failed": stats.failed,
                "errors": dict(stats.errors),
                "stop_reason": stats.stop_reason,
                "documents": writer.docs,
                "dropped": writer.dropped,
                "shards": writer.shards,
                "prompt_tokens": stats.prompt_tokens,
                "output_tokens": stats.output_tokens,
                "spent_usd": round(meter.spent, 6),
                "possibly_billed_usd": round(meter.possibly, 6),
                "max_cost": max_cost,
                "seconds": round(time.monotonic() - started, 3),
                "continuations": stats.continuations,
                "concurrency": {
                    "start": stats.concurrency_start,
                    "final": stats.concurrency_final,
                    "raises": engine.concurrency.raises,
                    "backoffs": engine.concurrency.backoffs,
                    "cuts": engine.concurrency.cuts,
                },
                "context": stats.context,
                "estimate": {
                    "prompt_tokens": plan.prompt_tokens,
                    "output_tokens": plan.output_tokens,
                    "usd": plan.usd,
                },
                "tokens_per_second": round(stats.output_tokens / max(1e-9, time.monotonic() - started), 2),
            }
            with Catalog.open(corpus) as catalog:
                catalog.finish_stage(run_id, result, status=status)
        echo(
            f"generate: {stats.done} done, {stats.failed} failed, {stats.sent} attempts, "
            f"{writer.docs} documents ({sum(writer.dropped.values())} dropped: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(writer.dropped.items())) or 'none'}), "
            + (
                f"${meter.spent:.4f} spent (+${meter.possibly:.4f} possibly billed)"
                if price is not None
                else "cost unknown (no price)"
            )
            + f", {result['seconds']:.1f}s, {result['tokens_per_second']:.1f} output tokens/s"
            + (f"; stopped: {stats.stop_reason}" if stats.stop_reason else "")
            + (f"; errors {dict(stats.errors)}" if stats.errors else "")
        )
        return result

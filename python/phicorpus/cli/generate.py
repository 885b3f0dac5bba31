"""``phicorpus`` commands: generate (and its Batch API actions), verify-exercises, grade."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from phicorpus.cli._group import llm_endpoints, main, one_line_errors

__all__ = ["main", "one_line_errors"]


def _config(out: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from phicorpus.config import Config

    config = Config.load(out / "phicorpus.toml")
    return config.override(generate=overrides).generate


@main.command("generate")
@click.option(
    "--prompts",
    "prompts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="prompts Parquet file (id, format, messages | system+user, ...)",
)
@click.option(
    "--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="corpus directory"
)
@click.option(
    "--llm",
    "llm",
    multiple=True,
    help="OpenAI-compatible base URL (repeat to share the load); default $OPENAI_BASE_URL",
)
@click.option("--model", required=True)
@click.option("--temperature", type=float, default=None)
@click.option("--top-p", "top_p", type=float, default=None)
@click.option("--max-tokens", "max_tokens", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--samples", type=int, default=None, help="responses per prompt")
@click.option("--max-cost", "max_cost", type=float, default=0.0, help="hard cap in USD (0: none)")
@click.option("--concurrency", type=int, default=None)
@click.option("--max-concurrency", "max_concurrency", type=int, default=None)
@click.option(
    "--rpm", type=float, default=None, help="requests per minute (default: from the server's headers)"
)
@click.option(
    "--tpm", type=float, default=None, help="tokens per minute (default: from the server's headers)"
)
@click.option("--max-attempts", "max_attempts", type=int, default=None)
@click.option(
    "--timeout",
    "timeout",
    type=float,
    default=None,
    help="seconds without progress (no answer from the endpoint) before an attempt times out",
)
@click.option("--progress/--no-progress", default=None, help="progress bar on stderr (default: when a TTY)")
@click.option("--retry-failed", is_flag=True, help="send again keys that failed permanently before")
@click.option(
    "--batch",
    "batch",
    type=click.Choice(["export", "submit", "status", "import"]),
    default=None,
    help="use the OpenAI Batch API instead of live requests",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="send from this process, or from --workers Ray actors (default: [executor] kind, local)",
)
@click.option(
    "--ray-address",
    default=None,
    help="Ray cluster for --executor ray: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray)",
)
@click.option(
    "--workers", type=int, default=None, help="Ray actors for --executor ray (default: [executor] workers)"
)
@one_line_errors
def generate_command(
    prompts: Path,
    out: Path,
    llm: tuple[str, ...],
    model: str,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    samples: int | None,
    max_cost: float,
    concurrency: int | None,
    max_concurrency: int | None,
    rpm: float | None,
    tpm: float | None,
    max_attempts: int | None,
    timeout: float | None,
    progress: bool | None,
    retry_failed: bool,
    batch: str | None,
    executor: str | None,
    ray_address: str | None,
    workers: int | None,
) -> None:
    """Generate documents from prompts with an LLM: resumable, rate-limited, cost-capped."""
    from phicorpus.config import Config
    from phicorpus.corpus import Corpus
    from phicorpus.executors import make_executor
    from phicorpus.generate import GenerationParams
    from phicorpus.generate.cluster import generate_on

    # As for build: --executor / --ray-address are this run's, [executor] the default.
    here = Config.load(out / "phicorpus.toml").override(
        executor={"kind": executor, "ray_address": ray_address}
    )
    on_ray = here.executor.kind == "ray"
    if on_ray:
        if batch:
            raise click.UsageError("--batch is sent from this process: not with --executor ray")
        make_executor(here.executor)  # fails here, before any work, if Ray is missing

    config = _config(
        out,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        samples=samples,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        max_attempts=max_attempts,
        request_timeout=timeout,
    )
    corpus = Corpus.create(out)
    params = GenerationParams.from_config(config)
    api_key = os.environ.get("OPENAI_API_KEY", "")
    if batch:
        from phicorpus.generate.batch import run_batch_action

        stats = run_batch_action(
            batch,
            corpus,
            prompts,
            endpoints=llm_endpoints(llm) if batch != "export" else list(llm),
            model=model,
            params=params,
            config=config,
            api_key=api_key,
            echo=click.echo,
        )
        click.echo(json.dumps(stats, sort_keys=True))
        return
    # This machine, or --workers Ray actors (the executor's address and retries).
    runner = make_executor(here.executor) if on_ray else None
    stats = generate_on(
        runner,
        corpus,
        prompts,
        endpoints=llm_endpoints(llm),
        model=model,
        params=params,
        max_cost=max_cost,
        config=config,
        workers=workers or here.executor.workers,
        api_key=api_key,
        retry_failed=retry_failed,
        progress=progress,
        echo=click.echo,
    )
    if stats["stop_reason"] == "quota exhausted":
        raise click.ClickException("the API quota is exhausted; nothing more was sent (re-run to resume)")


@main.command("verify-exercises")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=None, help="seconds per exercise run")
@click.option("--workers", type=int, default=None, help="sandboxes run at once")
@one_line_errors
def verify_exercises_command(corpus_dir: Path, timeout: float | None, workers: int | None) -> None:
    """Run each exercise's solution with its tests in a bubblewrap sandbox (ReST^EM); check stories' words."""
    from phicorpus.corpus import Corpus
    from phicorpus.verify.exercises import verify_exercises

    config = _config(corpus_dir, sandbox_timeout=timeout, verify_workers=workers)
    stats = verify_exercises(Corpus.open(corpus_dir), config=config, echo=click.echo)
    click.echo(json.dumps(stats, sort_keys=True))


@main.command("grade")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sample", "sample", type=int, required=True, help="documents to grade (random, kept ones)")
@click.option("--llm", "llm", multiple=True, help="judge endpoint (default $OPENAI_BASE_URL)")
@click.option("--model", required=True, help="judge model")
@click.option("--max-cost", "max_cost", type=float, default=0.0, help="hard cap in USD (0: none)")
@click.option("--seed", type=int, default=0)
@click.option(
    "--sources", "sources", default=None, help="comma-separated sources to sample from (default: all kept)"
)
@one_line_errors
def grade_command(
    corpus_dir: Path,
    sample: int,
    llm: tuple[str, ...],
    model: str,
    max_cost: float,
    seed: int,
    sources: str | None,
) -> None:
    """Score a sample of documents with an LLM judge (TinyStories rubric for stories, edu value 0-5 else)."""
    from phicorpus.corpus import Corpus
    from phicorpus.verify.grade import grade

    stats = grade(
        Corpus.open(corpus_dir),
        sample=sample,
        endpoints=llm_endpoints(llm),
        model=model,
        config=_config(corpus_dir),
        max_cost=max_cost,
        api_key=os.environ.get("OPENAI_API_KEY", ""),
        seed=seed,
        sources=[x.strip() for x in sources.split(",") if x.strip()] if sources else None,
        echo=click.echo,
    )
    click.echo(json.dumps(stats, sort_keys=True))


@main.command("rephrase")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--llm",
    "llm",
    multiple=True,
    help="OpenAI-compatible base URL (repeat to share the load); default $OPENAI_BASE_URL.",
)
@click.option("--model", required=True)
@click.option("--format", "formats", multiple=True, help="Only these rephrase formats (repeatable).")
@click.option(
    "--benchmarks",
    "benchmarks",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Benchmark JSONL/Parquet: sources overlapping them are dropped before, outputs after.",
)
@click.option("--tokens", type=int, default=0, help="Expected output tokens to aim for (0: every document).")
@click.option("--max-cost", "max_cost", type=float, default=0.0, help="Hard cap in USD (0: none).")
@one_line_errors
def rephrase_cmd(
    corpus_dir: Path,
    llm: tuple[str, ...],
    model: str,
    formats: tuple[str, ...],
    benchmarks: tuple[Path, ...],
    tokens: int,
    max_cost: float,
) -> None:
    """Rephrase the kept web documents (WRAP, Nemotron-CC, FinePhrase, REWIRE formats).

    Routed by the edu classifier when one is trained (`classifier train`), else by [rephrase]
    weights; journaled generation (a re-run pays for nothing twice), then the fact-retention and
    verbatim-copy gates.
    """
    import os

    from phicorpus.cli._group import llm_endpoints
    from phicorpus.config import Config
    from phicorpus.corpus import Corpus
    from phicorpus.rephrase import run_rephrase

    corpus = Corpus.open(corpus_dir)
    config = Config.load(corpus.config_path)
    stats = run_rephrase(
        corpus,
        config,
        endpoints=llm_endpoints(llm),
        model=model,
        max_cost=max_cost,
        api_key=os.environ.get("OPENAI_API_KEY", ""),
        benchmarks=list(benchmarks),
        target_tokens=tokens,
        formats=list(formats) or None,
        echo=click.echo,
    )
    click.echo(json.dumps({k: v for k, v in stats.items() if k != "generate"}, indent=2, default=str))

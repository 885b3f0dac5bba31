"""``phicorpus`` commands: build, stats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from phicorpus.cli._group import main, one_line_errors

__all__ = ["build", "main", "one_line_errors", "stats"]


@main.command()
@click.option("--mix", default=None, help="name:weight,... over groups (synthetic, code) and sources.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Corpus directory.")
@click.option("--tokens", type=int, default=None, help="Training tokens (default: what the data gives).")
@click.option(
    "--llm",
    default=None,
    envvar="OPENAI_BASE_URL",
    help="OpenAI-compatible base URL [$OPENAI_BASE_URL] (none: the offline generators).",
)
@click.option("--model", default=None, help="Model name at --llm.")
@click.option(
    "--max-cost", "max_cost", type=float, default=0.0, help="Hard cap in USD on generation (0: none)."
)
@click.option("--tokenizer", default=None, help="tokenizer.json to use (default: train one).")
@click.option("--code", "code", multiple=True, type=click.Path(path_type=Path), help="Code dirs/files.")
@click.option("--web", "web", multiple=True, type=click.Path(path_type=Path), help="Web samples.")
@click.option("--benchmarks", multiple=True, type=click.Path(path_type=Path), help="For decontamination.")
@click.option("--seed", type=int, default=None)
@click.option("--valid-fraction", type=float, default=None, help="Share held out for validation.")
@click.option("--max-epochs", type=float, default=None, help="Most repeats of any source.")
@click.option("--shard-tokens", type=int, default=None, help="Tokens per shard file.")
@click.option("--name", default=None, help="Build name (build/<name>/).")
@click.option(
    "--concurrency", type=int, default=None, help="LLM requests in flight to start (default: server's slots)."
)
@click.option("--max-tokens", "max_tokens", type=int, default=None, help="Most output tokens per answer.")
@click.option(
    "--timeout", type=float, default=None, help="Seconds without progress before an LLM attempt times out."
)
@click.option("--samples", type=int, default=None, help="LLM answers per prompt.")
@one_line_errors
def build(
    mix: str | None,
    out: Path,
    tokens: int | None,
    llm: str | None,
    model: str | None,
    max_cost: float,
    tokenizer: str | None,
    code: tuple[Path, ...],
    web: tuple[Path, ...],
    benchmarks: tuple[Path, ...],
    seed: int | None,
    valid_fraction: float | None,
    max_epochs: float | None,
    shard_tokens: int | None,
    name: str | None,
    concurrency: int | None,
    max_tokens: int | None,
    timeout: float | None,
    samples: int | None,
) -> None:
    """Run every stage not done yet and write token shards whose shares match --mix."""
    from phicorpus.build import BuildInputs, run_build
    from phicorpus.config import Config
    from phicorpus.corpus import Corpus

    corpus = Corpus.create(out)
    config = Config.load(corpus.config_path).override(
        build={
            "mix": mix,
            "tokens": tokens,
            "tokenizer": tokenizer,
            "seed": seed,
            "valid_fraction": valid_fraction,
            "max_epochs": max_epochs,
            "shard_tokens": shard_tokens,
            "name": name,
        },
        generate={
            "concurrency": concurrency,
            "max_tokens": max_tokens,
            "request_timeout": timeout,
            "samples": samples,
        },
    )
    inputs = BuildInputs(
        llm=llm or None,
        model=model,
        code=code,
        web=web,
        benchmarks=benchmarks,
        max_cost=max_cost,
        api_key=os.environ.get("OPENAI_API_KEY", ""),
    )
    manifest = run_build(corpus, config, inputs, echo=click.echo)
    train = manifest["splits"]["train"]
    click.echo(
        f"done: {train['tokens']:,} training tokens in {len(train['shards'])} shards, "
        f"{manifest['splits']['valid']['tokens']:,} validation tokens -> "
        f"{corpus.build_dir(manifest['build'])}"
    )


@main.command()
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@one_line_errors
def stats(corpus_dir: Path, as_json: bool) -> None:
    """Tokens and documents by source, subject, format and audience; drops; duplicates; cost."""
    from phicorpus.corpus import Corpus
    from phicorpus.stats import corpus_stats, format_stats

    data = corpus_stats(Corpus.open(corpus_dir))
    click.echo(json.dumps(data, indent=2) if as_json else format_stats(data), nl=not as_json or True)

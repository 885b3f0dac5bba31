"""``phicorpus`` commands: build, stats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from phicorpus.cli._group import SEED, checked_name, corpus_alias, corpus_from, main, one_line_errors

__all__ = ["build", "main", "one_line_errors", "stats"]


@main.command()
@click.argument("corpus_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@corpus_alias("--out")
@corpus_alias("--corpus")
@click.option("--mix", default=None, help="name:weight,... over groups (synthetic, code) and sources.")
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
@click.option(
    "--web",
    "web",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Web documents for the web and rephrased sources (JSONL/Parquet text, HTML, WARC, dirs).",
)
@click.option("--benchmarks", multiple=True, type=click.Path(path_type=Path), help="For decontamination.")
@click.option("--seed", type=SEED, default=None, help="Seed of sampling and shuffling (>= 0).")
@click.option("--valid-fraction", type=float, default=None, help="Share held out for validation.")
@click.option("--max-epochs", type=float, default=None, help="Most repeats of any source.")
@click.option("--shard-tokens", type=int, default=None, help="Tokens per shard file.")
@click.option(
    "--name", default=None, callback=checked_name, help="Build name (build/<name>/; [A-Za-z0-9._-])."
)
@click.option(
    "--allow-lossy-tokenizer",
    is_flag=True,
    default=None,
    help="Accept a --tokenizer that is not byte-level BPE (WordPiece, Unigram); its [UNK]s lose text.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Ignore the configuration saved in the corpus: defaults plus this command's flags.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where stage units run: this machine, or Ray tasks (default: [executor] kind, local).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Ray cluster for --executor ray: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray).",
)
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
    corpus_dir: Path | None,
    out_flag: Path | None,
    corpus_flag: Path | None,
    mix: str | None,
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
    allow_lossy_tokenizer: bool | None,
    reset: bool,
    executor: str | None,
    ray_address: str | None,
    concurrency: int | None,
    max_tokens: int | None,
    timeout: float | None,
    samples: int | None,
) -> None:
    """Run every stage not done yet in the corpus CORPUS and write shards whose shares match --mix.

    Settings come from the corpus's phicorpus.toml (the last successful or interrupted build's),
    each flag given overriding its key; --reset starts from the defaults instead. A build that
    fails leaves the saved configuration as it was.
    """
    from phicorpus.build import BuildInputs, run_build
    from phicorpus.config import Config
    from phicorpus.corpus import Corpus
    from phicorpus.executors import make_executor

    out = corpus_from(corpus_dir, ("--out", out_flag), ("--corpus", corpus_flag))
    corpus = Corpus.create(out)
    config = (Config() if reset else Config.load(corpus.config_path)).override(
        build={
            "mix": mix,
            "tokens": tokens,
            "tokenizer": tokenizer,
            "seed": seed,
            "valid_fraction": valid_fraction,
            "max_epochs": max_epochs,
            "shard_tokens": shard_tokens,
            "name": name,
            "allow_lossy_tokenizer": allow_lossy_tokenizer or None,
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
    # --executor / --ray-address are this run's (the outputs do not depend on them, and a saved
    # cluster address would break the next run once that cluster is gone): [executor] is the default.
    here = config.override(executor={"kind": executor, "ray_address": ray_address}).executor
    runner = make_executor(here)  # fails here, before any work, if Ray is missing
    try:
        start = getattr(runner, "start", None)
        if start is not None:
            start()  # and here if no cluster answers at --ray-address
        manifest = run_build(corpus, config, inputs, executor=runner, echo=click.echo)
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
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

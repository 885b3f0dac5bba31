"""``phicorpus`` commands: ``topics stats|sample|check``, ``prompts`` and ``prompts stats``, ``bios``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from phicorpus.cli._group import (
    JSON_OPTION,
    SEED,
    corpus_alias,
    corpus_from,
    main,
    one_line_errors,
    print_summary,
)

__all__ = ["main", "one_line_errors"]


def _prompts_config(config_path: str | None, **overrides: Any) -> Any:
    from phicorpus.config import Config

    return Config.load(config_path).override(prompts=overrides).prompts


def _split(values: str | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v.strip() for v in values.split(",") if v.strip())


# -- topics ----------------------------------------------------------------------------------------


@main.group()
def topics() -> None:
    """The topic seeds: statistics, a random sample, validation."""


_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Topics directory (default: packaged).",
)


@topics.command("stats")
@_DIR
@one_line_errors
def topics_stats(directory: str | None) -> None:
    """Leaves per subject, courses and units."""
    from phicorpus.topics import load_topics

    loaded = load_topics(directory)
    per_subject = Counter(t.slug for t in loaded)
    courses = {(t.slug, t.course) for t in loaded}
    units = {(t.slug, t.course, t.unit) for t in loaded}
    for slug, count in sorted(per_subject.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"{count:7d}  {count / len(loaded):6.2%}  {slug}")
    click.echo(
        f"{len(loaded):7d}  leaves, {len(per_subject)} subjects, {len(courses)} courses, {len(units)} units"
    )


@topics.command("sample")
@_DIR
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@one_line_errors
def topics_sample(directory: str | None, n: int, seed: int) -> None:
    """Print N random leaf topics with their paths."""
    import numpy as np

    from phicorpus.topics import load_topics

    loaded = load_topics(directory)
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(loaded), size=min(n, len(loaded)), replace=False).tolist():
        click.echo(f"{loaded[i].id}  {loaded[i].path_str}")


@topics.command("check")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
def topics_check(directory: str | None) -> None:
    """Validate a topics directory (format, size, balance, near-duplicates); exit 1 on problems."""
    from phicorpus.topics import main as check_main

    code = check_main([directory] if directory else [])
    raise SystemExit(code)


# -- prompts ---------------------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--n", "n", type=click.IntRange(min=1), default=None, help="Number of prompts.")
@click.option(
    "--tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Token target instead of --n (expected tokens/response).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Write the prompts to this Parquet file."
)
@click.option(
    "--corpus", type=click.Path(file_okay=False), default=None, help="Publish into this corpus instead."
)
@click.option("--formats", default=None, help="Comma-separated: textbook,exercises,stories,rewrite.")
@click.option(
    "--web", multiple=True, type=click.Path(dir_okay=False), help="JSONL/Parquet web samples (repeatable)."
)
@click.option("--rewrite-from", multiple=True, type=click.Path(dir_okay=False), help="Documents to rewrite.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, help="phicorpus.toml."
)
@click.option("--templates", type=click.Path(dir_okay=False), default=None, help="Your own template TOML.")
@click.option(
    "--topics", "topics_dir", type=click.Path(file_okay=False), default=None, help="Topics directory."
)
@click.option("--web-fraction", type=click.FloatRange(0, 1), default=None)
@click.pass_context
@one_line_errors
def prompts(
    ctx: click.Context,
    n: int | None,
    tokens: int | None,
    out: str | None,
    corpus: str | None,
    formats: str | None,
    web: tuple[str, ...],
    rewrite_from: tuple[str, ...],
    seed: int,
    config_path: str | None,
    templates: str | None,
    topics_dir: str | None,
    web_fraction: float | None,
) -> None:
    """Render topic-seeded prompts to a Parquet file (or into a corpus with --corpus).

    `phicorpus prompts stats FILE` reports the diversity of a prompt file.
    """
    if ctx.invoked_subcommand is not None:
        return
    import pyarrow.parquet as pq

    from phicorpus.prompts import (
        iter_prompt_batches,
        load_templates,
        load_text_records,
        prompts_for_tokens,
        write_prompt_file,
    )

    if (n is None) == (tokens is None):
        raise click.UsageError("give exactly one of --n and --tokens")
    if (out is None) == (corpus is None):
        raise click.UsageError("give exactly one of --out FILE and --corpus DIR")
    config = _prompts_config(
        config_path, templates=templates, topics_dir=topics_dir, web_fraction=web_fraction
    )
    chosen = _split(formats) or config.formats
    loaded_templates = load_templates(config.templates or None)
    if n is None:
        assert tokens is not None
        weights = {f: config.format_weights.get(f, 0.0) for f in chosen}
        total = sum(weights.values()) or float(len(chosen))
        expected = sum(
            (weights[f] or (total / len(chosen))) / total * loaded_templates.formats[f].expected_tokens
            for f in chosen
            if f in loaded_templates.formats
        )
        n = prompts_for_tokens(tokens, expected or 1.0)
    documents = load_text_records(rewrite_from, what="rewrite") if rewrite_from else []
    # Rendered and written batch by batch: a million prompts never sit in memory as text.
    batches = iter_prompt_batches(
        n, formats=chosen, seed=seed, web=web, config=config, documents=documents, templates=loaded_templates
    )
    if corpus is not None:
        from phicorpus.corpus import Corpus
        from phicorpus.prompts import write_prompts

        path = write_prompts(Corpus.create(corpus), batches)
        counts: Counter[str] = Counter(pq.read_table(path, columns=["format"]).column("format").to_pylist())
    else:
        path, counts, _ = write_prompt_file(Path(out or ""), batches)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    click.echo(f"{sum(counts.values())} prompts ({summary}) -> {path}")


@prompts.command("stats")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, help="phicorpus.toml."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@one_line_errors
def prompts_stats(file: str, config_path: str | None, as_json: bool) -> None:
    """Diversity of a prompt file: topics covered, format x audience x style, near-duplicate rate."""
    import pyarrow.parquet as pq

    from phicorpus.prompts import load_templates, prompt_stats
    from phicorpus.topics import TopicFileError, load_topics

    config = _prompts_config(config_path)
    table = pq.read_table(file)
    try:
        n_topics: int | None = len(load_topics(config.topics_dir or None))
    except TopicFileError:
        n_topics = None
    stats = prompt_stats(table, templates=load_templates(config.templates or None), n_topics=n_topics)
    if as_json:
        click.echo(json.dumps(stats, indent=2, sort_keys=True))
        return
    click.echo(f"prompts            {stats['prompts']}")
    click.echo("formats            " + ", ".join(f"{k} {v}" for k, v in stats["formats"].items()))
    coverage = f" of {n_topics} ({stats['topic_coverage']:.1%})" if n_topics else ""
    click.echo(f"topics covered     {stats['topics_covered']}{coverage}, max uses {stats['max_topic_uses']}")
    for fmt, c in stats["combinations"].items():
        click.echo(f"audience x style   {fmt}: {c['used']} of {c['possible']}")
    click.echo(f"web excerpts       {stats['web_share']:.1%}")
    click.echo("answer formats     " + ", ".join(f"{k} {v}" for k, v in stats["answer_formats"].items()))
    click.echo(
        f"near-duplicates    {stats['near_duplicate_rate']:.2%} "
        f"(MinHash-LSH candidates with exact Jaccard >= {stats['near_duplicate_threshold']}, "
        "word 5-grams of the user message)"
    )
    per_format = stats["near_duplicate_rate_by_format"]
    click.echo("  within format    " + ", ".join(f"{k} {v:.2%}" for k, v in per_format.items()))


# -- bioS ------------------------------------------------------------------------------------------


@main.command("bios")
@click.argument("corpus_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@corpus_alias("--corpus")
@corpus_alias("--out")
@click.option("--people", "n_people", type=click.IntRange(min=1), required=True, help="Number of people.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--multi", type=click.IntRange(min=1), default=1, show_default=True, help="Biographies per person."
)
@click.option("--permute", is_flag=True, help="Shuffle the sentence order of each biography.")
@click.option("--fullname", is_flag=True, help="Full name in every sentence instead of pronouns.")
@JSON_OPTION
@one_line_errors
def bios(
    corpus_dir: Path | None,
    corpus_flag: Path | None,
    out_flag: Path | None,
    n_people: int,
    seed: int,
    multi: int,
    permute: bool,
    fullname: bool,
    as_json: bool,
) -> None:
    """Write the offline bioS knowledge corpus (Physics of Language Models 3.1) into CORPUS."""
    from phicorpus.corpus import Corpus
    from phicorpus.sources.bios import write_bios

    corpus = corpus_from(corpus_dir, ("--corpus", corpus_flag), ("--out", out_flag))
    stats = write_bios(
        Corpus.create(corpus), n_people, seed=seed, multi=multi, permute=permute, fullname=fullname
    )
    print_summary("bios", stats, as_json)

"""``phicorpus export``: the kept documents with provenance, as a Hugging Face dataset directory."""

from __future__ import annotations

from pathlib import Path

import click

from phicorpus.cli._group import main, one_line_errors

__all__ = ["export"]


@main.command()
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="New or empty directory.")
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True
)
@click.option("--sources", default=None, help="Comma-separated sources (default: every source).")
@click.option("--rows-per-file", type=int, default=50_000, show_default=True, help="Documents per file.")
@one_line_errors
def export(corpus_dir: Path, out: Path, fmt: str, sources: str | None, rows_per_file: int) -> None:
    """Write the kept documents with their provenance, one directory per source, and a dataset card."""
    from phicorpus.corpus import Corpus
    from phicorpus.export import export_corpus

    names = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    stats = export_corpus(Corpus.open(corpus_dir), out, fmt=fmt, sources=names, rows_per_file=rows_per_file)
    for name, s in stats["sources"].items():
        click.echo(f"{name}: {s['documents']} documents, {s['tokens']} tokens, {len(s['files'])} files")
    click.echo(f"wrote {out}/README.md (dataset card)")

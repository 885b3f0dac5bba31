"""``phicorpus`` commands: ingest, filter, dedup, decontam, classifier, sql, verify."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phicorpus.cli._group import llm_endpoints, main, one_line_errors

if TYPE_CHECKING:
    from phicorpus.corpus import Corpus

__all__ = ["main", "one_line_errors"]


def _config(corpus_dir: str | Path) -> Any:
    from phicorpus.config import Config

    return Config.load(Path(corpus_dir) / "phicorpus.toml")


def _print_stats(stats: dict[str, Any]) -> None:
    click.echo(json.dumps(stats, indent=2, sort_keys=True, default=str))


@main.group()
def ingest() -> None:
    """Bring documents into a corpus."""


@ingest.command("code")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Corpus directory.")
@click.option("--source", default="code", show_default=True, help="Source name of the documents.")
@click.option("--shard-files", type=int, default=None, help="Input files per shard.")
@one_line_errors
def ingest_code_cmd(paths: tuple[Path, ...], out: Path, source: str, shard_files: int | None) -> None:
    """Ingest code: directories, source files, JSONL/Parquet with a `content` column.

    With no PATH, the standard library source of the running Python.
    """
    from phicorpus.corpus import Corpus
    from phicorpus.sources.code import ingest_code

    corpus = Corpus.create(out)
    config = _config(out).override(ingest={"shard_files": shard_files})
    stats = ingest_code(corpus, list(paths) or None, config=config.ingest, source=source)
    _print_stats(stats)


@ingest.command("web")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Corpus directory.")
@click.option("--source", default="web", show_default=True, help="Source name of the documents.")
@one_line_errors
def ingest_web_cmd(paths: tuple[Path, ...], out: Path, source: str) -> None:
    """Ingest web documents: JSONL/Parquet with a `text` column (FineWeb, DCLM), HTML, WARC, text.

    HTML pages and WARC responses have their main text extracted (trafilatura). With no PATH,
    the HTML and text documentation under /usr/share/doc.
    """
    from phicorpus.corpus import Corpus
    from phicorpus.sources.web import ingest_web

    corpus = Corpus.create(out)
    stats = ingest_web(corpus, list(paths) or None, config=_config(out).ingest, source=source)
    _print_stats(stats)


@main.command("filter")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--min-edu", type=float, default=None, help="Drop documents the edu classifier scores lower.")
@one_line_errors
def filter_cmd(corpus_dir: Path, min_edu: float | None) -> None:
    """Heuristic quality rules (prose and code sets) and the edu-value filter."""
    from phicorpus.corpus import Corpus
    from phicorpus.filter.stage import run_filter

    config = _config(corpus_dir).override(filter={"min_edu": min_edu})
    _print_stats(run_filter(Corpus.open(corpus_dir), config.filter))


@main.command("dedup")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=None, help="Jaccard threshold (default 0.8).")
@click.option("--ngram", type=int, default=None, help="Words per shingle (default 5).")
@click.option("--num-perm", type=int, default=None, help="MinHash permutations (default 128).")
@one_line_errors
def dedup_cmd(corpus_dir: Path, threshold: float | None, ngram: int | None, num_perm: int | None) -> None:
    """Exact, then MinHash-LSH near-duplicate removal across all sources."""
    from phicorpus.corpus import Corpus
    from phicorpus.dedup.stage import run_dedup

    config = _config(corpus_dir).override(
        dedup={"threshold": threshold, "ngram": ngram, "num_perm": num_perm}
    )
    _print_stats(run_dedup(Corpus.open(corpus_dir), config.dedup))


@main.command("decontam")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--benchmarks",
    "benchmarks",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Benchmark JSONL/Parquet.",
)
@click.option("--field", "fields", multiple=True, help="Text field of the benchmark records (repeatable).")
@click.option("--ngram", type=int, default=None, help="Words per n-gram (default 13).")
@click.option("--flag", is_flag=True, help="Only flag overlapping documents (decontam_hits), do not drop.")
@one_line_errors
def decontam_cmd(
    corpus_dir: Path, benchmarks: tuple[Path, ...], fields: tuple[str, ...], ngram: int | None, flag: bool
) -> None:
    """Drop (or flag) documents sharing an n-gram with a benchmark."""
    from phicorpus.corpus import Corpus
    from phicorpus.decontam import run_decontam

    config = _config(corpus_dir).override(
        decontam={"fields": list(fields) or None, "ngram": ngram, "mode": "flag" if flag else None}
    )
    _print_stats(run_decontam(Corpus.open(corpus_dir), list(benchmarks), config.decontam))


@main.group()
def classifier() -> None:
    """The educational-value classifier (phi-1): annotate a sample, train, then filter --min-edu."""


@classifier.command("annotate")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL of {"id": ..., "score": 0-5} from a judge.',
)
@click.option(
    "--llm",
    "llm",
    multiple=True,
    help="Judge endpoint, OpenAI-compatible base URL (repeat to share the load); default $OPENAI_BASE_URL.",
)
@click.option("--model", default=None, help="Judge model: score the sample with it (edu value 0-5).")
@click.option("--max-cost", "max_cost", type=float, default=0.0, help="Hard cap in USD (0: none).")
@click.option(
    "--sample", type=int, default=1000, show_default=True, help="Documents to sample for the judge."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Without --labels or --model: write the sample (id, text) here for a judge to score.",
)
@one_line_errors
def annotate_cmd(
    corpus_dir: Path,
    labels_file: Path | None,
    llm: tuple[str, ...],
    model: str | None,
    max_cost: float,
    sample: int,
    seed: int,
    out: Path | None,
) -> None:
    """Edu-value labels (0-5) of a seeded sample of kept documents, for `classifier train`.

    With --model, an LLM judge scores the sample (the `grade` edu rubric, through the generation
    engine: journaled, so a re-run pays for no document twice). With --labels, a judge's scores are
    imported. With neither, the sample is written out for a judge to score.
    """
    from phicorpus.catalog import Catalog
    from phicorpus.corpus import Corpus, atomic_path, read_texts
    from phicorpus.filter.classifier import load_labels, publish_labels
    from phicorpus.verify.grade import sample_documents

    if labels_file is not None and model is not None:
        raise click.UsageError("give either --labels or --model, not both")
    if out is not None and (labels_file is not None or model is not None):
        raise click.UsageError("--out is where the sample goes when there is no --labels or --model")
    if (llm or max_cost) and model is None:
        raise click.UsageError("--llm and --max-cost need --model (the judge)")
    corpus = Corpus.open(corpus_dir)
    if labels_file is not None:
        labels = load_labels(labels_file)
        target = publish_labels(corpus, labels, str(labels_file))
        click.echo(f"stored {len(labels)} labels in {corpus.relative(target)}")
        return
    if model is not None:
        _annotate_with_judge(corpus, model, llm_endpoints(llm), max_cost, sample, seed)
        return
    with Catalog.open(corpus, read_only=True) as catalog:
        picked = sample_documents(catalog, sample, seed)
    target = out or corpus.root / "models" / "edu_sample.jsonl"
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        by_file: dict[str, list[tuple[str, int]]] = {}
        for doc_id, _source, file, row in sorted(picked, key=lambda d: (d[2], d[3])):
            by_file.setdefault(file, []).append((doc_id, row))
        for file, members in by_file.items():
            for (doc_id, _), text in zip(
                members, read_texts(corpus, file, [r for _, r in members]), strict=True
            ):
                fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    click.echo(f"wrote {len(picked)} documents to {target}; score them 0-5 and pass --labels")


def _annotate_with_judge(
    corpus: Corpus, model: str, endpoints: list[str], max_cost: float, sample: int, seed: int
) -> None:
    """Score the seeded sample with the edu rubric and store the parsed scores as the labels file."""
    from phicorpus.catalog import Catalog
    from phicorpus.filter.classifier import publish_labels
    from phicorpus.verify.grade import judge_documents, sample_documents, store_scores

    config = _config(corpus.root).generate
    with Catalog.open(corpus) as catalog:
        run_id = catalog.start_stage("classifier-annotate", {"sample": sample, "model": model, "seed": seed})
        docs = sample_documents(catalog, sample, seed)
        judged = judge_documents(
            corpus,
            docs,
            endpoints=endpoints,
            model=model,
            config=config,
            max_cost=max_cost,
            api_key=os.environ.get("OPENAI_API_KEY", ""),
            rubric="edu",
        )
        store_scores(catalog, judged, model)
        stats = judged.stats
        catalog.finish_stage(run_id, stats, status="done" if judged.scores else "failed")
    if not judged.scores:
        _print_stats(stats)
        raise ValueError(
            f"the judge scored none of {len(docs)} documents ({stats['unparsed']} answers did not parse, "
            f"{stats['failed']} requests failed); no labels stored"
        )
    labels = {doc_id: scores["educational_value"] for doc_id, scores in judged.scores.items()}
    target = publish_labels(corpus, labels, f"judge {model}")
    _print_stats({**stats, "labels": len(labels), "labels_file": corpus.relative(target)})


@classifier.command("train")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Labels JSONL (default: those stored by annotate).",
)
@click.option("--holdout", type=float, default=0.2, show_default=True, help="Held-out fraction.")
@click.option(
    "--threshold", type=float, default=3.0, show_default=True, help="Score that counts as positive."
)
@click.option("--seed", type=int, default=0, show_default=True)
@one_line_errors
def train_cmd(
    corpus_dir: Path, labels_file: Path | None, holdout: float, threshold: float, seed: int
) -> None:
    """Fit the linear classifier on the labels and report held-out accuracy and F1."""
    from phicorpus.catalog import Catalog
    from phicorpus.corpus import Corpus, read_texts
    from phicorpus.filter.classifier import evaluate, labels_path, load_labels, train_classifier

    corpus = Corpus.open(corpus_dir)
    labels = load_labels(labels_file or labels_path(corpus))
    config = _config(corpus_dir).filter
    with Catalog.open(corpus) as catalog:
        rows = catalog.exec("SELECT id, file, row FROM documents ORDER BY id")
        where = {r[0]: (r[1], r[2]) for r in rows if r[0] in labels}
        texts: dict[str, str] = {}
        by_file: dict[str, list[str]] = {}
        for doc_id, (file, _row) in where.items():
            by_file.setdefault(file, []).append(doc_id)
        for file, ids in by_file.items():
            for doc_id, text in zip(ids, read_texts(corpus, file, [where[i][1] for i in ids]), strict=True):
                texts[doc_id] = text
        ids = sorted(texts)
        random.Random(seed).shuffle(ids)
        cut = int(len(ids) * (1 - holdout))
        train_ids, test_ids = ids[:cut], ids[cut:]
        if not train_ids:
            raise ValueError("no labelled documents to train on")
        model = train_classifier([texts[i] for i in train_ids], [labels[i] for i in train_ids], seed=seed)
        metrics = evaluate(model, [texts[i] for i in test_ids], [labels[i] for i in test_ids], threshold)
        from dataclasses import replace

        model = replace(model, metrics=metrics)
        target = corpus.absolute(config.edu_model)
        model.save(target)
        catalog.register_shard(
            target,
            "model",
            rows=len(train_ids),
            stage="classifier",
        )
    click.echo(
        f"trained on {len(train_ids)}, held out {len(test_ids)}: accuracy {metrics['accuracy']:.3f} "
        f"F1 {metrics['f1']:.3f} (score >= {threshold}), MAE {metrics['mae']:.2f}; saved {config.edu_model}"
    )


@main.command("sql")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.argument("query")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@one_line_errors
def sql_cmd(corpus_dir: Path, query: str, fmt: str) -> None:
    """Run a read-only SQL query on the catalog (external file access limited to the corpus)."""
    import duckdb

    from phicorpus.catalog import open_sql_connection

    con = open_sql_connection(corpus_dir)
    try:
        try:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            raise click.ClickException(str(exc).strip()) from exc
    finally:
        con.close()
    out = sys.stdout
    if fmt == "json":
        for row in rows:
            out.write(
                json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False) + "\n"
            )
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        out.write(buf.getvalue())
    else:
        cells = [[str(c) for c in columns], *[["NULL" if v is None else str(v) for v in row] for row in rows]]
        widths = [min(max(len(r[i]) for r in cells), 60) for i in range(len(columns))]
        for k, row_cells in enumerate(cells):
            out.write(
                "  ".join(c[:60].ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip() + "\n"
            )
            if k == 0:
                out.write("  ".join("-" * w for w in widths) + "\n")


@main.command("verify")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@one_line_errors
def verify_cmd(corpus_dir: Path) -> None:
    """Re-check every registered file (size and sha256); name each missing or corrupt one."""
    from phicorpus.catalog import open_catalog, verify_files

    with open_catalog(corpus_dir, read_only=True) as catalog:
        checked, problems = verify_files(catalog)
    for problem in problems:
        click.echo(f"{problem.path}: {problem.problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} of {checked} files missing or corrupt")
    click.echo(f"ok: {checked} files verified")

"""``phicorpus`` commands: ingest, filter, dedup, decontam, classifier, sql, report, verify."""

from __future__ import annotations

import csv
import decimal
import io
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phicorpus.cli._group import (
    JSON_OPTION,
    SEED,
    checked_name,
    corpus_alias,
    corpus_from,
    llm_endpoints,
    main,
    one_line_errors,
    print_summary,
)

if TYPE_CHECKING:
    from phicorpus.corpus import Corpus

__all__ = ["main", "one_line_errors"]


def _config(corpus_dir: str | Path) -> Any:
    from phicorpus.config import Config

    return Config.load(Path(corpus_dir) / "phicorpus.toml")


@main.group()
def ingest() -> None:
    """Bring documents into a corpus."""


@ingest.command("code")
@click.argument("args", nargs=-1, type=click.Path(path_type=Path), metavar="CORPUS [PATH]...")
@corpus_alias("--out")
@corpus_alias("--corpus")
@click.option(
    "--source",
    default="code",
    show_default=True,
    callback=checked_name,
    help="Source name of the documents ([A-Za-z0-9._-]).",
)
@click.option("--shard-files", type=click.IntRange(min=1), default=None, help="Input files per shard.")
@click.option(
    "--max-record-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Skip larger JSONL/Parquet records as oversized (default 1,000,000).",
)
@JSON_OPTION
@one_line_errors
def ingest_code_cmd(
    args: tuple[Path, ...],
    out_flag: Path | None,
    corpus_flag: Path | None,
    source: str,
    shard_files: int | None,
    max_record_bytes: int | None,
    as_json: bool,
) -> None:
    """Ingest code into CORPUS: directories, source files, JSONL/Parquet with a `content` column.

    With no PATH, the standard library source of the running Python. Skipped inputs are counted
    by reason, and the first bad ones named by file and line; when every input is bad the
    command fails.
    """
    from phicorpus.corpus import Corpus
    from phicorpus.sources.code import ingest_code

    if out_flag is not None or corpus_flag is not None:  # the older spelling: PATHs only
        out, paths = corpus_from(None, ("--out", out_flag), ("--corpus", corpus_flag)), args
    else:
        out, paths = corpus_from(args[0] if args else None), args[1:]
        looks_like_code = out.is_dir() and not (out / "catalog.duckdb").exists() and any(out.iterdir())
        if looks_like_code and not (out / "phicorpus.toml").exists():
            raise click.UsageError(
                f"{out} holds files but is not a corpus; the corpus comes first: ingest code CORPUS {out}"
            )
    config = _config(out).override(ingest={"shard_files": shard_files, "max_record_bytes": max_record_bytes})
    corpus = Corpus.create(out)
    progress = None if as_json else (lambda line: click.echo(line, err=True))
    stats = ingest_code(corpus, list(paths) or None, config=config.ingest, source=source, progress=progress)
    print_summary(f"ingest {source!r}", stats, as_json)


@ingest.command("web")
@click.argument("args", nargs=-1, type=click.Path(path_type=Path), metavar="CORPUS [PATH]...")
@corpus_alias("--out")
@corpus_alias("--corpus")
@click.option(
    "--source",
    default="web",
    show_default=True,
    callback=checked_name,
    help="Source name of the documents ([A-Za-z0-9._-]).",
)
@JSON_OPTION
@one_line_errors
def ingest_web_cmd(
    args: tuple[Path, ...], out_flag: Path | None, corpus_flag: Path | None, source: str, as_json: bool
) -> None:
    """Ingest web documents into CORPUS: JSONL/Parquet with a `text` column (FineWeb, DCLM), HTML,
    WARC, plain text, or directories of them.

    HTML pages and WARC responses have their main text extracted (trafilatura); `url`, `id`,
    `language` and `score` fields are kept. With no PATH, the HTML and text documentation under
    /usr/share/doc. Bad lines and records are counted by reason and named by file and line.
    """
    from phicorpus.corpus import Corpus
    from phicorpus.sources.web import ingest_web

    if out_flag is not None or corpus_flag is not None:  # `ingest web PATH... --out CORPUS`
        out, paths = corpus_from(None, ("--out", out_flag), ("--corpus", corpus_flag)), args
    else:
        out, paths = corpus_from(args[0] if args else None), args[1:]
    corpus = Corpus.create(out)
    stats = ingest_web(corpus, list(paths) or None, config=_config(out).ingest, source=source)
    print_summary(f"ingest {source!r}", stats, as_json)


@main.command("filter")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--min-edu", type=float, default=None, help="Drop documents the edu classifier scores lower.")
@JSON_OPTION
@one_line_errors
def filter_cmd(corpus_dir: Path, min_edu: float | None, as_json: bool) -> None:
    """Heuristic quality rules (prose and code sets) and the edu-value filter."""
    from phicorpus.corpus import Corpus
    from phicorpus.filter.stage import run_filter

    config = _config(corpus_dir).override(filter={"min_edu": min_edu})
    print_summary("filter", run_filter(Corpus.open(corpus_dir), config.filter), as_json)


@main.command("dedup")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=None, help="Jaccard threshold (default 0.8).")
@click.option("--ngram", type=int, default=None, help="Words per shingle (default 5).")
@click.option("--num-perm", type=int, default=None, help="MinHash permutations (default 128).")
@JSON_OPTION
@one_line_errors
def dedup_cmd(
    corpus_dir: Path, threshold: float | None, ngram: int | None, num_perm: int | None, as_json: bool
) -> None:
    """Exact, then MinHash-LSH near-duplicate removal across all sources."""
    from phicorpus.corpus import Corpus
    from phicorpus.dedup.stage import run_dedup

    config = _config(corpus_dir).override(
        dedup={"threshold": threshold, "ngram": ngram, "num_perm": num_perm}
    )
    print_summary("dedup", run_dedup(Corpus.open(corpus_dir), config.dedup), as_json)


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
@JSON_OPTION
@one_line_errors
def decontam_cmd(
    corpus_dir: Path,
    benchmarks: tuple[Path, ...],
    fields: tuple[str, ...],
    ngram: int | None,
    flag: bool,
    as_json: bool,
) -> None:
    """Drop (or flag) documents sharing an n-gram with a benchmark."""
    from phicorpus.corpus import Corpus
    from phicorpus.decontam import run_decontam

    config = _config(corpus_dir).override(
        decontam={"fields": list(fields) or None, "ngram": ngram, "mode": "flag" if flag else None}
    )
    stats = run_decontam(Corpus.open(corpus_dir), list(benchmarks), config.decontam)
    print_summary("decontam", stats, as_json)


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
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Without --labels or --model: write the sample (id, text) here for a judge to score.",
)
@JSON_OPTION
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
    as_json: bool,
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
        _annotate_with_judge(corpus, model, llm_endpoints(llm), max_cost, sample, seed, as_json)
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
    corpus: Corpus, model: str, endpoints: list[str], max_cost: float, sample: int, seed: int, as_json: bool
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
        print_summary("classifier annotate", stats, as_json)
        raise ValueError(
            f"the judge scored none of {len(docs)} documents ({stats['unparsed']} answers did not parse, "
            f"{stats['failed']} requests failed); no labels stored"
        )
    labels = {doc_id: scores["educational_value"] for doc_id, scores in judged.scores.items()}
    target = publish_labels(corpus, labels, f"judge {model}")
    summary = {**stats, "labels": len(labels), "labels_file": corpus.relative(target)}
    print_summary("classifier annotate", summary, as_json)


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
@click.option("--seed", type=SEED, default=0, show_default=True)
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
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result to this file (needed for --format parquet).",
)
@one_line_errors
def sql_cmd(corpus_dir: Path, query: str, fmt: str, out_file: Path | None) -> None:
    """Run a read-only SQL query on the catalog; the text views read the corpus's documents.

    Reads the catalog's published snapshot: it works while a build runs and sees the catalog as
    of the build's last publish (the last finished stage or a commit a few seconds old). No file
    is read or written by the query itself: COPY TO, EXPORT, ATTACH and file functions are
    refused (``--out`` is written by phicorpus, not by the query).
    """
    import duckdb

    from phicorpus.catalog import interruptible, open_sql_connection

    if fmt == "parquet" and out_file is None:
        raise click.UsageError("--format parquet needs --out FILE")
    con = open_sql_connection(corpus_dir)
    table: Any = None
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []

    def run() -> None:
        nonlocal table, columns, rows
        if fmt == "parquet":
            relation = con.sql(query)
            if relation is None:
                raise click.ClickException("the statement returns no result to write")
            table = relation.to_arrow_table()
        else:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()

    try:
        try:
            interruptible(con, run)
        except duckdb.PermissionException as exc:
            first = str(exc).strip().splitlines()[0]
            raise click.ClickException(
                f"{first} (phicorpus sql reads the catalog; document text is in the document_text "
                "and kept_text views; nothing is written)"
            ) from exc
        except duckdb.Error as exc:
            raise click.ClickException(str(exc).strip().splitlines()[0]) from exc
    finally:
        con.close()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        from phicorpus.corpus import atomic_path

        assert out_file is not None
        with atomic_path(out_file) as tmp:
            pq.write_table(table, tmp)
        click.echo(f"wrote {table.num_rows:,} rows to {out_file}", err=True)
        return
    out: Any = sys.stdout if out_file is None else io.StringIO()
    if fmt == "json":
        for row in rows:
            record = dict(zip(columns, map(_json_value, row), strict=True))
            out.write(json.dumps(record, default=str, ensure_ascii=False, allow_nan=False) + "\n")
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
    if out_file is not None:
        from phicorpus.corpus import publish_bytes

        publish_bytes(out_file, out.getvalue().encode())


@main.command("report")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@one_line_errors
def report_cmd(corpus_dir: Path, out_file: Path) -> None:
    """One self-contained HTML page of plots and sample documents (works while a build runs)."""
    from phicorpus.corpus import Corpus
    from phicorpus.report import write_report

    path = write_report(Corpus.open(corpus_dir), out_file)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser, no network needed)")


def _json_value(value: Any) -> Any:
    """A SQL value as strict JSON: NaN and infinities (no JSON spelling) become null."""
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


@main.command("verify")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
@one_line_errors
def verify_cmd(corpus_dir: Path) -> None:
    """Check the catalog itself, then every registered file (size and sha256, Parquet footers).

    Each missing or corrupt file is named, with what to do about it.
    """
    from phicorpus.catalog import open_catalog, verify_catalog, verify_files

    with open_catalog(corpus_dir, read_only=True) as catalog:
        problems = verify_catalog(catalog)
        checked = 0
        if not any(p.path.endswith("catalog.duckdb") for p in problems):
            checked, file_problems = verify_files(catalog)
            problems += file_problems
    for problem in problems:
        click.echo(f"{problem.path}: {problem.problem}", err=True)
    if any(p.path.endswith("catalog.duckdb") for p in problems):
        raise click.ClickException("the catalog is damaged; no file was checked")
    if problems:
        raise click.ClickException(f"{len(problems)} of {checked} files missing or corrupt; {_REPAIR_ADVICE}")
    click.echo(f"ok: catalog and {checked} files verified")


#: What to do about missing or corrupt files, for the last line of a failed verify.
_REPAIR_ADVICE = (
    "re-run the command that wrote them (build rewrites its shards; ingest and bios their document files)"
)

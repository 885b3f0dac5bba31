"""Export the kept documents of a corpus with their provenance: a directory ready to upload as a
Hugging Face dataset.

``OUT/<source>/train-NNNNN-of-MMMMM.parquet`` (or ``.jsonl``) holds the documents of one source
that no stage dropped, in catalog order (file, row), and ``OUT/README.md`` is the dataset card:
a YAML header with one ``config`` per source (plus ``default``, every source) and the mix, counts,
filters, dedup and decontamination figures from the catalog. Every source's files have the same
columns, :data:`EXPORT_SCHEMA`, so one glob over all of them reads as one table:

``id``, ``text``, ``source``, ``kind``, ``format``, ``language``, ``license``, ``repo``, ``path``
(code: relative to the root ingested), ``topic_id``, ``topic_path``, ``subject``, ``audience``,
``style``, ``prompt_id``, ``model`` (generated documents), ``original_id`` (the document a rewrite
or rephrase came from, or the web sample its prompt carried), ``generator`` (an offline
generator's parameters, JSON), ``tokens`` (with the build's tokenizer, end-of-text included) and
``edu_score``.

Each file is published atomically and the card last; ``OUT`` must be new or empty, so a failed
export leaves no card over partial data.

Example:
    >>> stats = export_corpus(Corpus.open("corpus/"), "hf-out/", fmt="parquet")  # doctest: +SKIP
    >>> stats["sources"]["code"]["documents"]  # doctest: +SKIP
    1250
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus, atomic_path, publish_bytes

__all__ = ["EXPORT_SCHEMA", "FORMATS", "ExportError", "export_corpus"]

FORMATS = ("parquet", "jsonl")

EXPORT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("format", pa.string()),
        ("language", pa.string()),
        ("license", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("topic_id", pa.string()),
        ("topic_path", pa.string()),
        ("subject", pa.string()),
        ("audience", pa.string()),
        ("style", pa.string()),
        ("prompt_id", pa.string()),
        ("model", pa.string()),
        ("original_id", pa.string()),
        ("generator", pa.string()),
        ("tokens", pa.int64()),
        ("edu_score", pa.float64()),
    ]
)

#: Columns taken from the document's own Parquet row when the catalog has none.
_FROM_TEXT_FILE = (
    "license", "repo", "path", "model", "style", "topic_id", "subject", "audience", "prompt_id",
)  # fmt: skip


class ExportError(ValueError):
    """The export cannot start: bad arguments, or an output directory that is not empty."""


def export_corpus(
    corpus: Corpus,
    out: str | Path,
    *,
    fmt: str = "parquet",
    sources: Sequence[str] | None = None,
    rows_per_file: int = 50_000,
) -> dict[str, Any]:
    """Write the kept documents of ``sources`` (default: all) under ``out`` with a dataset card.

    Args:
        corpus: The corpus.
        out: A new or empty directory.
        fmt: ``"parquet"`` (zstd) or ``"jsonl"``.
        sources: Source names to export; ``None``: every source with kept documents.
        rows_per_file: Documents per file.

    Returns:
        ``{"out", "format", "sources": {name: {"documents", "tokens", "files"}}}``.

    Raises:
        ExportError: an unknown format or source, or ``out`` not empty.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose parquet or jsonl")
    if rows_per_file <= 0:
        raise ExportError(f"rows per file must be positive, got {rows_per_file}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty directory; give a new --out")
    with Catalog.open(corpus, read_only=True) as catalog:
        available = [
            r[0]
            for r in catalog.exec(
                "SELECT source FROM documents WHERE drop_stage IS NULL GROUP BY source ORDER BY source"
            )
        ]
        chosen = list(sources) if sources else available
        for name in chosen:
            if name not in available:
                raise ExportError(
                    f"source {name!r} has no kept documents in {corpus.root} "
                    f"(have: {', '.join(available) or 'none'})"
                )
        prompts = _prompt_fields(corpus, catalog)
        stats: dict[str, Any] = {"out": str(out), "format": fmt, "sources": {}}
        out.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            stats["sources"][name] = _export_source(corpus, catalog, name, out, fmt, rows_per_file, prompts)
        card = _dataset_card(corpus, catalog, chosen, fmt, stats)
    publish_bytes(out / "README.md", card.encode("utf-8"))
    return stats


def _prompt_fields(corpus: Corpus, catalog: Catalog) -> dict[str, tuple[str | None, str | None, str | None]]:
    """prompt id -> (topic_path, style, original id) from every registered prompt table."""
    out: dict[str, tuple[str | None, str | None, str | None]] = {}
    for record in catalog.shards("prompts"):
        path = corpus.absolute(record.path)
        if not path.is_file():
            continue
        names = set(pq.read_schema(path).names)
        cols = [c for c in ("id", "topic_path", "style", "source_id", "web_id") if c in names]
        table = pq.read_table(path, columns=cols).to_pydict()
        n = len(table["id"])
        none = [None] * n
        for pid, topic_path, style, source_id, web_id in zip(
            table["id"],
            table.get("topic_path", none),
            table.get("style", none),
            table.get("source_id", none),
            table.get("web_id", none),
            strict=True,
        ):
            out[pid] = (topic_path, style, source_id or web_id)
    return out


_DOC_COLUMNS = (
    "id", "kind", "file", "row", "provenance", "language", "license", "topic_id", "subject",
    "format", "audience", "prompt_id", "tokens", "edu_score",
)  # fmt: skip


def _kept_rows(catalog: Catalog, source: str) -> list[dict[str, Any]]:
    cols = ", ".join(f'"{c}"' for c in _DOC_COLUMNS)
    rows = catalog.exec(
        f'SELECT {cols} FROM documents WHERE source = ? AND drop_stage IS NULL ORDER BY file, "row"',
        [source],
    )
    return [dict(zip(_DOC_COLUMNS, r, strict=True)) for r in rows]


def _documents(
    corpus: Corpus, rows: list[dict[str, Any]], source: str, prompts: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Export records of ``rows`` (catalog order), their text read shard by shard."""
    start = 0
    while start < len(rows):
        file = rows[start]["file"]
        end = start
        while end < len(rows) and rows[end]["file"] == file:
            end += 1
        path = corpus.absolute(file)
        names = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=["text", *(c for c in _FROM_TEXT_FILE if c in names)])
        picked = table.take(pa.array([r["row"] for r in rows[start:end]], pa.int64())).to_pydict()
        for k, doc in enumerate(rows[start:end]):
            yield _record(doc, {c: v[k] for c, v in picked.items()}, source, prompts)
        start = end


def _record(doc: dict[str, Any], row: dict[str, Any], source: str, prompts: dict[str, Any]) -> dict[str, Any]:
    try:
        provenance = json.loads(doc["provenance"]) if doc["provenance"] else {}
    except json.JSONDecodeError:
        provenance = {}
    if not isinstance(provenance, dict):
        provenance = {}

    def first(*values: Any) -> Any:
        return next((v for v in values if v is not None), None)

    prompt_id = first(doc["prompt_id"], row.get("prompt_id"))
    topic_path, style, original = prompts.get(prompt_id, (None, None, None)) if prompt_id else (None,) * 3
    generator = provenance.get("generator")
    return {
        "id": doc["id"],
        "text": row["text"],
        "source": source,
        "kind": doc["kind"],
        "format": first(doc["format"], doc["kind"]),
        "language": doc["language"],
        "license": first(doc["license"], row.get("license"), provenance.get("license")),
        "repo": first(row.get("repo"), provenance.get("repo")),
        "path": first(row.get("path"), provenance.get("path")),
        "topic_id": first(doc["topic_id"], row.get("topic_id")),
        "topic_path": topic_path,
        "subject": first(doc["subject"], row.get("subject")),
        "audience": first(doc["audience"], row.get("audience")),
        "style": first(row.get("style"), style),
        "prompt_id": prompt_id,
        "model": first(row.get("model"), provenance.get("model")),
        "original_id": first(provenance.get("source_id"), provenance.get("original_id"), original),
        "generator": json.dumps(provenance, sort_keys=True) if generator else None,
        "tokens": doc["tokens"],
        "edu_score": doc["edu_score"],
    }


def _export_source(
    corpus: Corpus,
    catalog: Catalog,
    source: str,
    out: Path,
    fmt: str,
    rows_per_file: int,
    prompts: dict[str, Any],
) -> dict[str, Any]:
    rows = _kept_rows(catalog, source)
    n_files = max(1, math.ceil(len(rows) / rows_per_file))
    directory = out / source
    directory.mkdir(parents=True, exist_ok=True)
    records = _documents(corpus, rows, source, prompts)
    files = []
    for k in range(n_files):
        batch = [r for _, r in zip(range(rows_per_file), records, strict=False)]
        path = directory / f"train-{k:05d}-of-{n_files:05d}.{fmt}"
        with atomic_path(path) as tmp:
            if fmt == "parquet":
                table = pa.Table.from_pylist(batch, schema=EXPORT_SCHEMA)
                pq.write_table(table, tmp, compression="zstd")
            else:
                with open(tmp, "w", encoding="utf-8") as fh:
                    for record in batch:
                        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        files.append(str(path.relative_to(out)))
    counted = [int(r["tokens"]) for r in rows if r["tokens"] is not None]
    return {"documents": len(rows), "tokens": sum(counted) if counted else None, "files": files}


def _dataset_card(
    corpus: Corpus, catalog: Catalog, sources: list[str], fmt: str, stats: dict[str, Any]
) -> str:
    """README.md: the Hugging Face YAML header (configs per source) and the corpus's figures."""
    licenses = sorted(
        {
            str(r[0])
            for r in catalog.exec(
                "SELECT DISTINCT license FROM documents WHERE drop_stage IS NULL AND license IS NOT NULL "
                "AND source IN (SELECT unnest(?::VARCHAR[]))",
                [sources],
            )
        }
    )
    lines = [
        "---",
        "license: other",
        f"pretty_name: {corpus.root.name} (phicorpus export)",
        "language:",
        "- en",
        "tags:",
        "- synthetic",
        "- pretraining",
        "- phicorpus",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f'    path: "*/train-*.{fmt}"',
    ]
    for name in sources:
        lines += [
            f"- config_name: {name}",
            "  data_files:",
            "  - split: train",
            f'    path: "{name}/train-*.{fmt}"',
        ]
    lines += ["---", "", f"# {corpus.root.name}", ""]
    builder = "parquet" if fmt == "parquet" else "json"
    lines += [
        "Documents that every stage of a [phicorpus](https://pypi.org/project/phicorpus/) corpus kept "
        "(quality filter, exact and MinHash-LSH dedup, decontamination), one directory per source, "
        f'all with the same columns. Load with `datasets.load_dataset("{builder}", '
        f'data_files="<dir>/*/train-*.{fmt}")` or one source\'s config.',
        "",
        "## Sources",
        "",
        "| source | kind | documents | tokens | dropped | files |",
        "|---|---|---:|---:|---:|---:|",
    ]
    dropped = dict(
        catalog.exec("SELECT source, count(*) FROM documents WHERE drop_stage IS NOT NULL GROUP BY source")
    )
    kinds = dict(catalog.exec("SELECT name, kind FROM sources"))
    for name in sources:
        s = stats["sources"][name]
        lines.append(
            f"| {name} | {kinds.get(name, '')} | {s['documents']:,} | "
            f"{'not tokenized' if s['tokens'] is None else format(s['tokens'], ',')} | "
            f"{int(dropped.get(name, 0)):,} | {len(s['files'])} |"
        )
    lines += ["", f"Licenses of the kept documents: {', '.join(licenses) or 'none recorded'}.", ""]
    lines += _mix_section(corpus)
    drop_rows = catalog.exec(
        "SELECT drop_stage, source, coalesce(drop_reason, ''), count(*) FROM documents "
        "WHERE drop_stage IS NOT NULL GROUP BY ALL ORDER BY 1, 2, 4 DESC"
    )
    lines += ["## Filters and drops", "", "| stage | source | reason | documents |", "|---|---|---|---:|"]
    lines += [f"| {st} | {so} | {re} | {int(n):,} |" for st, so, re, n in drop_rows] or ["| — | — | — | 0 |"]
    dup_rows = catalog.exec(
        "SELECT key, documents, exact_dups, near_dups, dup_rate FROM dup_stats "
        "WHERE grouping = 'source' ORDER BY key"
    )
    lines += [
        "",
        "## Dedup",
        "",
        "| source | documents | exact duplicates | near duplicates | rate |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {k} | {int(d):,} | {int(e):,} | {int(n):,} | {r:.2%} |" for k, d, e, n, r in dup_rows] or [
        "| — | 0 | 0 | 0 | — |"
    ]
    hits = catalog.exec(
        "SELECT benchmark, source, documents, ngram_hits FROM decontam_hits ORDER BY benchmark, source"
    )
    lines += ["", "## Decontamination", "", "| benchmark | source | documents | n-gram hits |"]
    lines += ["|---|---|---:|---:|"]
    lines += [f"| {b} | {s} | {int(d):,} | {int(h):,} |" for b, s, d, h in hits] or [
        "| none run | — | 0 | 0 |"
    ]
    lines += [
        "",
        "## Columns",
        "",
        "`id`, `text`, `source`, `kind`, `format`, `language`, `license`, `repo`, `path` (code: relative "
        "to the root ingested), `topic_id`, `topic_path`, `subject`, `audience`, `style`, `prompt_id`, "
        "`model` (generated documents), `original_id` (the document a rewrite or rephrase came from, or "
        "the web sample its prompt carried), `generator` (an offline generator's parameters, JSON), "
        "`tokens` (the build's tokenizer, end-of-text included) and `edu_score`; null where a column "
        "does not apply to a source.",
        "",
    ]
    return "\n".join(lines)


def _mix_section(corpus: Corpus) -> list[str]:
    lines = ["## Mix", ""]
    builds = sorted((corpus.root / "build").glob("*/manifest.json"))
    if not builds:
        return [*lines, "No token build yet.", ""]
    for path in builds:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        lines += [
            f"Build `{manifest.get('build', path.parent.name)}`: mix `{manifest.get('mix')}`, "
            f"{manifest['splits']['train']['tokens']:,} train tokens.",
            "",
            "| source | share | target | epochs |",
            "|---|---:|---:|---:|",
        ]
        for name, s in sorted(manifest.get("sources", {}).items()):
            lines.append(
                f"| {name} | {s.get('actual_share', 0):.2%} | {s.get('share', 0):.2%} "
                f"| {s.get('epochs', '')} |"
            )
        lines.append("")
    return lines

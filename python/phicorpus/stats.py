"""``phicorpus stats``: what a corpus holds, from its catalog.

Tokens and documents by source, subject, format and audience (kept documents; tokens are filled
in by the build's tokenize step), drops by stage and reason, duplicate rates, LLM cost and
requests (when the generation stage has recorded any), builds and stage runs.

Example:
    >>> stats = corpus_stats(Corpus.open("corpus/"))  # doctest: +SKIP
    >>> print(format_stats(stats))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus

__all__ = ["corpus_stats", "format_stats"]


def _table_columns(catalog: Catalog, table: str) -> set[str]:
    rows = catalog.exec("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])
    return {str(r[0]) for r in rows}


def _by(catalog: Catalog, column: str) -> list[dict[str, Any]]:
    assert column in ("source", "subject", "format", "audience")  # identifiers cannot be parameters
    rows = catalog.exec(
        f"SELECT coalesce({column}, '-') AS k, count(*), coalesce(sum(tokens), 0), "
        f"coalesce(sum(chars), 0) FROM documents WHERE drop_stage IS NULL GROUP BY k ORDER BY k"
    )
    return [{column: k, "documents": int(n), "tokens": int(t), "chars": int(c)} for k, n, t, c in rows]


def corpus_stats(corpus: Corpus) -> dict[str, Any]:
    """Every figure ``phicorpus stats`` shows, as plain data (``--json`` prints this)."""
    with Catalog.open(corpus, read_only=True) as catalog:
        out: dict[str, Any] = {"corpus": str(corpus.root)}
        totals = catalog.exec(
            "SELECT source, count(*), count(*) FILTER (WHERE drop_stage IS NULL), "
            "count(*) FILTER (WHERE drop_stage = 'dedup') FROM documents GROUP BY source ORDER BY source"
        )
        out["sources"] = [
            {
                "source": s,
                "documents": int(n),
                "kept": int(k),
                "duplicates": int(d),
                "duplicate_rate": round(d / n, 6) if n else 0.0,
            }
            for s, n, k, d in totals
        ]
        out["by_source"] = _by(catalog, "source")
        out["by_subject"] = _by(catalog, "subject")
        out["by_format"] = _by(catalog, "format")
        out["by_audience"] = _by(catalog, "audience")
        out["drops"] = [
            {"stage": st, "source": so, "reason": r, "count": int(c)}
            for st, so, r, c in catalog.exec(
                "SELECT stage, source, reason, count FROM drop_counts ORDER BY stage, source, count DESC"
            )
        ]
        requests: dict[str, Any] = {"requests": 0, "cost_usd": 0.0}
        columns = _table_columns(catalog, "requests")
        if columns:
            cost = next((c for c in ("cost_usd", "cost") if c in columns), None)
            row = catalog.exec_one(
                "SELECT count(*), " + (f"coalesce(sum({cost}), 0)" if cost else "0") + " FROM requests"
            )
            if row:
                requests = {"requests": int(row[0]), "cost_usd": float(row[1])}
        out["llm"] = requests
        out["openers"] = _openers(catalog)
        out["files"] = [
            {"kind": k, "files": int(n), "bytes": int(b), "tokens": int(t)}
            for k, n, b, t in catalog.exec(
                "SELECT kind, count(*), sum(bytes), coalesce(sum(tokens), 0) FROM shards "
                "GROUP BY kind ORDER BY kind"
            )
        ]
        out["stages"] = [
            {"stage": st, "status": status, "runs": int(n)}
            for st, status, n in catalog.exec(
                "SELECT stage, arg_max(status, id), count(*) FROM stage_runs GROUP BY stage ORDER BY stage"
            )
        ]
    return out


def _openers(catalog: Catalog) -> list[dict[str, Any]]:
    """Kept LLM documents per format that open with a boilerplate phrase ("Once upon a time"), as
    the generation stage named them in their provenance."""
    if "provenance" not in _table_columns(catalog, "documents"):
        return []
    rows = catalog.exec(
        "SELECT source, o, count(*) FROM (SELECT source, "
        "json_extract_string(provenance, '$.opener') AS o FROM documents "
        "WHERE drop_stage IS NULL AND provenance LIKE '%\"opener\"%') "
        "WHERE o IS NOT NULL GROUP BY source, o ORDER BY source, count(*) DESC, o"
    )
    return [{"format": f, "opener": o, "documents": int(n)} for f, o, n in rows]


def _table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return [f"{title}: none", ""]
    keys = list(rows[0])
    cells = [[f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    numeric = [isinstance(rows[0][k], (int, float)) for k in keys]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    return [title, line(keys), line(["-" * w for w in widths]), *(line(c) for c in cells), ""]


def format_stats(stats: dict[str, Any]) -> str:
    """The terminal tables of :func:`corpus_stats`."""
    out = [f"corpus {stats['corpus']}", ""]
    out += _table("documents by source (all; duplicates = dropped by dedup)", stats["sources"])
    out += _table("kept documents and tokens by source", stats["by_source"])
    out += _table("by subject", stats["by_subject"])
    out += _table("by format", stats["by_format"])
    out += _table("by audience", stats["by_audience"])
    out += _table("drops", stats["drops"])
    llm = stats["llm"]
    out += [f"LLM: {llm['requests']:,} requests, ${llm['cost_usd']:.2f}", ""]
    out += _table("boilerplate openers of kept LLM documents", stats.get("openers", []))
    out += _table("files", stats["files"])
    out += _table("stages", stats["stages"])
    return "\n".join(out).rstrip() + "\n"

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

from phicorpus.corpus import Corpus
from phicorpus.reader import CorpusReader

__all__ = ["corpus_stats", "format_stats"]


def _by(reader: CorpusReader, column: str) -> list[dict[str, Any]]:
    assert column in ("source", "subject", "format", "audience")  # identifiers cannot be parameters
    return reader.sql(
        f"SELECT coalesce({column}, '-') AS {column}, count(*) AS documents, "
        f"coalesce(sum(tokens), 0)::BIGINT AS tokens, coalesce(sum(chars), 0)::BIGINT AS chars "
        f"FROM documents WHERE drop_stage IS NULL GROUP BY ALL ORDER BY 1"
    ).to_dicts()


def corpus_stats(corpus: Corpus) -> dict[str, Any]:
    """Every figure ``phicorpus stats`` shows, as plain data (``--json`` prints this), read from
    one snapshot of the catalog (it may be building)."""
    with CorpusReader(corpus).snapshot() as reader:
        out: dict[str, Any] = {"corpus": str(corpus.root)}
        out["sources"] = reader.sql(
            "SELECT source, count(*) AS documents, count(*) FILTER (WHERE drop_stage IS NULL) AS kept, "
            "count(*) FILTER (WHERE drop_stage = 'dedup') AS duplicates, "
            "round(duplicates / count(*), 6) AS duplicate_rate "
            "FROM documents GROUP BY source ORDER BY source"
        ).to_dicts()
        for column in ("source", "subject", "format", "audience"):
            out[f"by_{column}"] = _by(reader, column)
        out["drops"] = reader.sql(
            "SELECT stage, source, reason, count FROM drop_counts ORDER BY stage, source, count DESC"
        ).to_dicts()
        llm = reader.sql(
            "SELECT count(*) AS requests, coalesce(sum(cost), 0)::DOUBLE AS cost_usd FROM requests"
        )
        out["llm"] = llm.row(0, named=True)
        out["files"] = reader.sql(
            "SELECT kind, count(*) AS files, sum(bytes)::BIGINT AS bytes, "
            "coalesce(sum(tokens), 0)::BIGINT AS tokens FROM shards GROUP BY kind ORDER BY kind"
        ).to_dicts()
        has_rephrases = reader.sql(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'rephrases'"
        ).item()
        if has_rephrases:
            from phicorpus.rephrase import rephrase_stats

            out["rephrase"] = rephrase_stats(corpus, lambda q, p=None: reader.sql(q, p).rows())
        out["openers"] = _openers(reader)
        out["stages"] = reader.sql(
            "SELECT stage, arg_max(status, id) AS status, count(*) AS runs FROM stage_runs "
            "GROUP BY stage ORDER BY stage"
        ).to_dicts()
    return out


def _openers(reader: Any) -> list[dict[str, Any]]:
    """Kept LLM documents per format that open with a boilerplate phrase ("Once upon a time"), as
    the generation stage named them in their provenance."""
    has = reader.sql(
        "SELECT count(*) AS n FROM information_schema.columns "
        "WHERE table_name = 'documents' AND column_name = 'provenance'"
    ).item()
    if not has:
        return []
    rows = reader.sql(
        "SELECT source, o, count(*) AS n FROM (SELECT source, "
        "json_extract_string(provenance, '$.opener') AS o FROM documents "
        "WHERE drop_stage IS NULL AND provenance LIKE '%\"opener\"%') "
        "WHERE o IS NOT NULL GROUP BY source, o ORDER BY source, count(*) DESC, o"
    ).rows()
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
    if stats.get("rephrase"):
        title = "rephrases by format (fact retention, copy overlap, near-duplicates)"
        out += _table(title, stats["rephrase"])
    out += _table("stages", stats["stages"])
    return "\n".join(out).rstrip() + "\n"

"""The rephrase stage: real documents in, rephrased documents out, their facts checked.

    kept source documents (``web``) -> [decontaminate against --benchmarks] -> route by quality
    -> chunk + render (prompts.rephrase) -> journaled generation (generate) -> quality gates
    -> [decontaminate the outputs]

- Routing (Nemotron-CC): with the edu classifier (``[filter] edu_model``) each document gets a
  score; below ``[rephrase] quality_threshold`` it is paraphrased, at or above it it gets the
  knowledge formats. Without a classifier, formats are drawn by weight.
- Generation is the ordinary journaled engine (:func:`phicorpus.generate.run_generation`):
  pay-once, cost cap, resume after a kill. Each output's structure is parsed when it is written
  (REWIRE keeps only its rewrite; the reasoning goes to ``rephrases.reasoning``).
- Quality gates (:func:`gate_rephrases`): fact retention (the share of the source chunk's
  numbers, capitalised names and rare words that the output contains) at least
  ``min_fact_retention``; verbatim copying (the share of the output's word n-grams found in the
  chunk) at most ``max_copy_overlap``. Drops carry the reason (``drop_stage = 'rephrase'``).

Every rephrased document has a ``rephrases`` row (its original's id, format, chunk, span), so

    SELECT r.format, o.text AS original, d.text AS rephrase
    FROM rephrases r JOIN document_text d ON d.id = r.doc_id JOIN document_text o ON o.id = r.source_id

joins a rephrase to its source text in ``phicorpus sql``.

Example:
    >>> url = "http://127.0.0.1:8080/v1"
    >>> stats = run_rephrase(corpus, config, endpoints=[url], model="m")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phicorpus.catalog import Catalog
from phicorpus.config import Config, RephraseConfig
from phicorpus.corpus import Corpus, read_texts
from phicorpus.prompts.rephrase import (
    REPHRASE_FORMATS,
    RephraseDocument,
    load_rephrase_templates,
    render_rephrase_prompts,
)

__all__ = [
    "copy_overlap",
    "fact_retention",
    "gate_rephrases",
    "plan_rephrase_prompts",
    "rephrase_stats",
    "run_rephrase",
    "source_facts",
]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z'\-]{2,}\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|\d+(?:[.,]\d+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*)$")
_RARE_MIN_LETTERS = 9
_STOP_TEXT = """a about after all also an and any are as at be because been but by can could did do does
    each for from had has have he her his how i if in into is it its just may more most no not of
    on one or other our out over she so some such than that the their them then there these they
    this those through to too under up very was we were what when where which while who will with
    would you your however therefore although"""
_STOP = frozenset(_STOP_TEXT.split())


def _norm_number(token: str) -> str:
    return token.replace(",", "")


def source_facts(text: str) -> set[str]:
    """The checkable facts of a text: its numbers, capitalised names that do not start a
    sentence (a cheap named-entity proxy), and rare words (at least nine letters, not a stop word).

    Example:
        >>> sorted(source_facts("In 1966 the Arno flooded Florence; restoration took decades."))
        ['1966', 'arno', 'florence', 'restoration']
    """
    facts = {_norm_number(m.group()) for m in _NUMBER.finditer(text)}
    for m in _CAPITALISED.finditer(text):
        word = m.group().lower()
        if word in _STOP:
            continue
        if _SENTENCE_START.search(text[max(0, m.start() - 3) : m.start()]) and m.start() > 0:
            continue
        if m.start() == 0:
            continue
        facts.add(word)
    for m in _WORD.finditer(text):
        word = m.group().lower()
        if len(word) >= _RARE_MIN_LETTERS and word.isalpha() and word not in _STOP:
            facts.add(word)
    return facts


def _output_tokens(text: str) -> set[str]:
    out = set()
    for m in _WORD.finditer(text):
        token = m.group()
        out.add(_norm_number(token) if token[0].isdigit() else token.lower())
    return out


def fact_retention(source: str, output: str) -> float:
    """Share of :func:`source_facts` of ``source`` that appear in ``output`` (1.0 when none).

    Example:
        >>> round(fact_retention("The Arno flooded Florence in 1966.", "In 1966 a flood hit Florence."), 2)
        0.67
    """
    facts = source_facts(source)
    if not facts:
        return 1.0
    tokens = _output_tokens(output)
    return len(facts & tokens) / len(facts)


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = [m.group().lower() for m in _WORD.finditer(text)]
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def copy_overlap(source: str, output: str, n: int = 8) -> float:
    """Share of the output's word ``n``-grams that occur in ``source`` (0.0 for a short output).

    Example:
        >>> copy_overlap("one two three four", "one two three four", n=2)
        1.0
    """
    grams = _ngrams(output, n)
    if not grams:
        return 0.0
    seen = set(_ngrams(source, n))
    return sum(g in seen for g in grams) / len(grams)


# -- planning ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    id: str
    file: str
    row: int
    edu_score: float | None


def _kept_sources(catalog: Catalog, source: str) -> list[_Source]:
    """Kept documents of ``source``, and those already rephrased that only a later dedup dropped
    (a near-duplicate of their own rephrase), so that a re-run plans the same prompts; a document
    that overlaps a benchmark is never rephrased."""
    rows = catalog.exec(
        'SELECT id, file, "row", edu_score FROM documents WHERE source = ? AND (drop_stage IS NULL OR '
        "(drop_stage = 'dedup' AND id IN (SELECT source_id FROM rephrases))) ORDER BY id",
        [source],
    )
    return [_Source(r[0], r[1], int(r[2]), None if r[3] is None else float(r[3])) for r in rows]


def _texts(corpus: Corpus, docs: Sequence[_Source]) -> list[str]:
    by_file: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_file.setdefault(d.file, []).append(i)
    out: list[str] = [""] * len(docs)
    for file, members in by_file.items():
        for i, text in zip(members, read_texts(corpus, file, [docs[i].row for i in members]), strict=True):
            out[i] = text
    return out


def _qualities(
    corpus: Corpus, config: Config, docs: Sequence[_Source], texts: Sequence[str]
) -> list[float | None]:
    """Edu scores: the filter's where it stored one, else the classifier's, else None (no model)."""
    rc = config.rephrase
    if not rc.route_by_quality:
        return [None] * len(docs)
    model_path = corpus.absolute(config.filter.edu_model)
    missing = [i for i, d in enumerate(docs) if d.edu_score is None]
    scores: list[float | None] = [d.edu_score for d in docs]
    if missing and model_path.is_file():
        from phicorpus.filter.classifier import EduModel

        model = EduModel.load(model_path)
        values = model.score([texts[i] for i in missing])
        for i, value in zip(missing, values.tolist(), strict=True):
            scores[i] = float(value)
    return scores


def plan_rephrase_prompts(
    corpus: Corpus, config: Config, *, target_tokens: int = 0, formats: Sequence[str] | None = None
) -> pa.Table:
    """The rephrase prompts of the kept ``[rephrase] source`` documents.

    With ``target_tokens > 0`` documents are taken in a seeded random order, and their prompts
    until the prompts' expected output tokens reach it (every document when there are too few);
    otherwise all.
    ``formats`` narrows ``[rephrase] formats`` (a mix naming single formats).
    """
    rc = config.rephrase
    chosen = tuple(f for f in rc.formats if not formats or f in set(formats)) or tuple(formats or ())
    with Catalog.open(corpus) as catalog:
        docs = _kept_sources(catalog, rc.source)
    if not docs:
        return render_rephrase_prompts([], formats=chosen)
    order = np.random.default_rng(rc.seed).permutation(len(docs)).tolist()
    docs = [docs[i] for i in order]
    texts = _texts(corpus, docs)
    qualities = _qualities(corpus, config, docs, texts)
    threshold = rc.quality_threshold if any(q is not None for q in qualities) else None
    templates = load_rephrase_templates(rc.templates or None)
    kwargs: dict[str, Any] = {
        "formats": chosen,
        "weights": rc.weights,
        "threshold": threshold,
        "per_document": rc.per_document,
        "context_tokens": rc.context_tokens,
        "chars_per_token": rc.chars_per_token,
        "max_chunks": rc.max_chunks,
        "seed": rc.seed,
        "templates": templates,
    }
    documents = [RephraseDocument(d.id, t, q) for d, t, q in zip(docs, texts, qualities, strict=True)]
    if target_tokens > 0:
        # expected output tokens per document, rendered in blocks until the target is reached
        tables: list[pa.Table] = []
        total = 0
        block = 256
        for start in range(0, len(documents), block):
            table = render_rephrase_prompts(
                documents[start : start + block], **{**kwargs, "seed": rc.seed + start}
            )
            tables.append(table)
            total += int(pa.compute.sum(table.column("expected_tokens")).as_py() or 0)
            if total >= target_tokens:
                break
        table = pa.concat_tables(tables)
        # Only the prompts that reach the target (a block is rendered whole, not sent whole); a
        # larger target gives a longer prefix of the same prompts (a top-up round sends only those).
        cum = np.cumsum(table.column("expected_tokens").to_numpy(zero_copy_only=False))
        keep = min(table.num_rows, int(np.searchsorted(cum, target_tokens, side="left")) + 1)
        return _renumber(table.slice(0, keep))
    return render_rephrase_prompts(documents, **kwargs)


def _renumber(table: pa.Table) -> pa.Table:
    return table.set_column(
        table.schema.get_field_index("index"), "index", pa.array(np.arange(table.num_rows), pa.int64())
    )


# -- gates --------------------------------------------------------------------------------------------


def gate_rephrases(corpus: Corpus, config: RephraseConfig) -> dict[str, Any]:
    """Score every rephrase not yet gated and drop those failing the fact/copy gates.

    Returns:
        ``gated`` (scored now), ``dropped`` per reason (``low-fact-retention``, ``verbatim-copy``).
    """
    with Catalog.open(corpus) as catalog:
        rows = catalog.exec(
            'SELECT r.doc_id, r.format, r.chunk_start, r.chunk_end, d.file, d."row", s.file, s."row", '
            "d.drop_stage FROM rephrases r JOIN documents d ON d.id = r.doc_id "
            "JOIN documents s ON s.id = r.source_id WHERE r.fact_retention IS NULL ORDER BY r.doc_id"
        )
        if not rows:
            return {"gated": 0, "dropped": {}}
        outputs = _texts(corpus, [_Source(r[0], r[4], int(r[5]), None) for r in rows])
        sources = _texts(corpus, [_Source(r[0], r[6], int(r[7]), None) for r in rows])
        updates: dict[str, list[Any]] = {
            "doc_id": [],
            "fact_retention": [],
            "copy_overlap": [],
            "gate_reason": [],
        }
        drops: dict[str, dict[str, int]] = {}
        for row, output, source in zip(rows, outputs, sources, strict=True):
            doc_id, fmt, start, end = row[0], row[1], int(row[2]), int(row[3])
            chunk = source[start:end] if end > start else source
            retention = fact_retention(chunk, output)
            overlap = copy_overlap(chunk, output, config.copy_ngram)
            minimum = config.fact_retention_by_format.get(fmt, config.min_fact_retention)
            reason = None
            if retention < minimum:
                reason = "low-fact-retention"
            elif overlap > config.max_copy_overlap:
                reason = "verbatim-copy"
            updates["doc_id"].append(doc_id)
            updates["fact_retention"].append(retention)
            updates["copy_overlap"].append(overlap)
            updates["gate_reason"].append(reason)
            if reason and row[8] is None:
                by = drops.setdefault(fmt, {})
                by[reason] = by.get(reason, 0) + 1
        table = pa.table(updates)
        with catalog.transaction():
            catalog.con.register("_rephrase_gates", table)
            try:
                catalog.exec(
                    "UPDATE rephrases SET fact_retention = g.fact_retention, copy_overlap = g.copy_overlap, "
                    "gate_reason = g.gate_reason FROM _rephrase_gates g WHERE rephrases.doc_id = g.doc_id"
                )
                catalog.exec(
                    "UPDATE documents SET drop_stage = 'rephrase', drop_reason = g.gate_reason "
                    "FROM _rephrase_gates g WHERE documents.id = g.doc_id AND g.gate_reason IS NOT NULL "
                    "AND documents.drop_stage IS NULL"
                )
            finally:
                catalog.con.unregister("_rephrase_gates")
            for fmt, counts in drops.items():
                catalog.add_drop_counts("rephrase", fmt, counts)
    dropped: dict[str, int] = {}
    for counts in drops.values():
        for reason, n in counts.items():
            dropped[reason] = dropped.get(reason, 0) + n
    return {"gated": len(rows), "dropped": dict(sorted(dropped.items()))}


def rephrase_stats(corpus: Corpus, query: Callable[..., list[tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """Per rephrase format: documents, kept, fact retention (mean, p10, median), copy overlap
    (mean), and the near-duplicate rate of the kept outputs (MinHash-LSH, verified Jaccard >= 0.8).

    ``query(sql, params)`` returns rows (a catalog's ``exec``, or a read snapshot's).
    """
    from phicorpus.prompts.stats import near_duplicate_rate

    rows = query(
        "SELECT r.format, count(*), count(*) FILTER (WHERE d.drop_stage IS NULL), avg(r.fact_retention), "
        "quantile_cont(r.fact_retention, 0.1), median(r.fact_retention), avg(r.copy_overlap) "
        "FROM rephrases r JOIN documents d ON d.id = r.doc_id GROUP BY r.format ORDER BY r.format"
    )
    out = []
    for fmt, n, kept, mean, p10, p50, overlap in rows:
        kept_docs = query(
            'SELECT d.id, d.file, d."row" FROM rephrases r JOIN documents d ON d.id = r.doc_id '
            "WHERE r.format = ? AND d.drop_stage IS NULL ORDER BY d.id LIMIT 20000",
            [fmt],
        )
        texts = _texts(corpus, [_Source(r[0], r[1], int(r[2]), None) for r in kept_docs])
        out.append(
            {
                "format": fmt,
                "documents": int(n),
                "kept": int(kept),
                "fact_retention_mean": None if mean is None else round(float(mean), 4),
                "fact_retention_p10": None if p10 is None else round(float(p10), 4),
                "fact_retention_median": None if p50 is None else round(float(p50), 4),
                "copy_overlap_mean": None if overlap is None else round(float(overlap), 4),
                "near_duplicate_rate": round(near_duplicate_rate(texts), 4),
            }
        )
    return out


# -- the whole stage -----------------------------------------------------------------------------------


def run_rephrase(
    corpus: Corpus,
    config: Config,
    *,
    endpoints: Sequence[str],
    model: str,
    max_cost: float = 0.0,
    api_key: str = "",
    benchmarks: Sequence[Path] = (),
    target_tokens: int = 0,
    formats: Sequence[str] | None = None,
    prompts: pa.Table | None = None,
    executor: Any = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Decontaminate the sources, render, generate (journaled), gate, decontaminate the outputs.

    Args:
        corpus: a corpus whose ``[rephrase] source`` documents are ingested (and filtered/deduped).
        config: the whole configuration (``[rephrase]``, ``[generate]``, ``[filter]``, ``[decontam]``).
        endpoints, model, max_cost, api_key: the LLM (see :func:`phicorpus.generate.run_generation`).
        benchmarks: JSONL/Parquet benchmark files; sources overlapping them are dropped before any
            prompt is rendered, outputs overlapping them after generation.
        target_tokens: expected output tokens to aim for (0: rephrase every kept document).
        formats: only these rephrase formats.
        prompts: already planned prompts (the build prints their plan before any work).
        executor: where to generate: on the Ray executor from ``[executor] workers`` Ray actors
            (:func:`phicorpus.generate.cluster.generate_on`), else in this process.

    Raises:
        ValueError: no source documents, no endpoint, a cost cap without a price.
    """
    from phicorpus.decontam import run_decontam
    from phicorpus.generate import GenerationParams
    from phicorpus.generate.cluster import generate_on
    from phicorpus.prompts import write_prompts

    stats: dict[str, Any] = {}
    if benchmarks:
        stats["decontam_sources"] = run_decontam(corpus, list(benchmarks), config.decontam)
        prompts = None  # the kept set may have changed
    if prompts is None:
        prompts = plan_rephrase_prompts(corpus, config, target_tokens=target_tokens, formats=formats)
    if prompts.num_rows == 0:
        raise ValueError(
            f"no kept {config.rephrase.source!r} documents to rephrase: ingest some first "
            "(`phicorpus ingest web PATH --out CORPUS`, or build --web PATH)"
        )
    path = write_prompts(corpus, prompts)
    gen = generate_on(
        executor,
        corpus,
        path,
        endpoints=endpoints,
        model=model,
        params=GenerationParams.from_config(config.generate),
        max_cost=max_cost,
        config=config.generate,
        workers=config.executor.workers,
        api_key=api_key,
        echo=echo,
    )
    stats["generate"] = gen
    stats["prompts"] = prompts.num_rows
    stats["gates"] = gate_rephrases(corpus, config.rephrase)
    if benchmarks:
        stats["decontam_outputs"] = run_decontam(corpus, list(benchmarks), config.decontam)
    echo(
        f"rephrase: {prompts.num_rows} prompts, {gen.get('documents', 0)} documents, gates dropped "
        + (", ".join(f"{k} {v}" for k, v in stats["gates"]["dropped"].items()) or "none")
    )
    return stats


#: Every rephrase format name (the source names of their outputs).
REPHRASE_SOURCES = tuple(REPHRASE_FORMATS)

"""The dedup stage: exact duplicates, then MinHash-LSH near-duplicates across every source.

Steps, streaming the text shard by shard (only one shard's text is in memory at a time):

1. **signatures**: for every kept document (``drop_stage IS NULL``), the xxh3 hash of its
   normalized text and its MinHash signature, into one ``(n, num_perm)`` uint32 array
   (1M documents x 128 permutations = 512 MB);
2. **order**: documents are ranked best first: highest edu score (NaN lowest), then earliest
   (shard path, row). Of each group of exact duplicates (same normalized text) only the best
   takes part in the next step; the others follow it;
3. **verified clusters** (``lsh_dedup``): LSH banding chosen for recall
   (``lsh_recall_params``, 18 bands x 7 rows at 0.8) gives candidate components; in each,
   documents in rank order join the first kept representative whose MinHash estimate of
   Jaccard similarity is at least ``threshold``, else are kept as a new representative. A
   dropped document is thus near its kept document itself, not only through a chain;
4. **keep**: representatives are kept; every other document is dropped as ``exact_duplicate``
   (same normalized text as its representative) or ``near_duplicate``, and its
   ``dup_cluster`` is the representative's id;
5. **record**: decisions, cluster ids, per-source and per-topic duplicate rates and the cluster
   size histogram (a cluster = a representative and the documents dropped for it), in one
   catalog transaction. A killed run commits nothing; the re-run starts over.

The inputs are the documents no earlier stage dropped, including those a previous dedup run
dropped: a run with other parameters, or over other input documents, recomputes all of dedup's
decisions and replaces the last one's; a run with the same parameters and inputs is skipped.
A run dropping more than 90% of a source says so (``warnings``).

Example:
    >>> stats = run_dedup(Corpus.open("corpus/"), DedupConfig(threshold=0.8))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus, read_texts
from phicorpus.dedup.minhash import exact_hashes, lsh_dedup, lsh_recall_params, minhash_signatures
from phicorpus.destructive import heavy_drop_warnings_from_counts

__all__ = [
    "DECISION_SCHEMA",
    "DEDUP_INPUTS",
    "begin_dedup",
    "choose_keepers",
    "decisions_table",
    "dedup_params",
    "rank_best_first",
    "record_decisions",
    "run_dedup",
]


def rank_best_first(score: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Each document's rank: highest ``score`` first (NaN lowest), then the earliest index.

    Example:
        >>> rank_best_first(np.array([1.0, np.nan, 3.0, 1.0])).tolist()
        [1, 3, 0, 2]
    """
    n = len(score)
    cleaned = np.nan_to_num(score.astype(np.float64), nan=-np.inf)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), -cleaned))] = np.arange(n)
    return rank


def choose_keepers(
    signatures: npt.NDArray[np.uint32],
    exact: npt.NDArray[np.uint64] | None,
    score: npt.NDArray[np.float64],
    *,
    threshold: float,
    bands: int,
    rows: int,
    max_reps: int = 256,
    num_threads: int | None = None,
) -> npt.NDArray[np.int64]:
    """The kept document (representative) of every document: exact groups, then ``lsh_dedup``.

    Documents are in order (index = earliness) and ranked by :func:`rank_best_first`. Of each
    group of equal ``exact`` hashes only the best-ranked document (its leader) is clustered; the
    others follow their leader, whose signature they share. ``exact=None`` skips the grouping.

    Returns:
        Per document, the index of the document kept for it (itself if it is kept).

    Example:
        >>> sig = minhash_signatures(["a b c d e f", "A b c d e f!", "x y z"], num_perm=16)
        >>> exact = exact_hashes(["a b c d e f", "A b c d e f!", "x y z"])
        >>> choose_keepers(sig, exact, np.array([1.0, 2.0, 0.0]), threshold=0.8, bands=4, rows=4).tolist()
        [1, 1, 2]
    """
    n = len(signatures)
    rank = rank_best_first(score)
    leader = np.arange(n, dtype=np.int64)
    if exact is not None and n:
        by_group = np.lexsort((rank, exact))
        first = np.r_[True, exact[by_group][1:] != exact[by_group][:-1]]
        leader[by_group] = by_group[np.flatnonzero(first)[np.cumsum(first) - 1]]
    follower = leader != np.arange(n)
    reps = lsh_dedup(signatures, np.where(follower, -1, rank), bands, rows, threshold, max_reps, num_threads)
    return reps[leader]


#: The stage's inputs: every document no earlier stage dropped, those an earlier dedup run dropped
#: included, so a run with other parameters recomputes every decision (a looser threshold brings
#: back what a stricter one dropped).
DEDUP_INPUTS = "(drop_stage IS NULL OR drop_stage = 'dedup')"


def _inputs_fingerprint(catalog: Catalog) -> str:
    """Order-free fingerprint of the input documents and their edu scores (which rank them)."""
    row = catalog.exec_one(
        "SELECT count(*), coalesce(bit_xor(hash(id, coalesce(edu_score, -1.0))), 0) FROM documents "
        f"WHERE {DEDUP_INPUTS}"
    )
    return f"{row[0]}:{row[1]}" if row else "0:0"


def dedup_params(config: DedupConfig) -> dict[str, Any]:
    """The parameters a dedup run records (its inputs' fingerprint is added by :func:`begin_dedup`)."""
    return {
        "threshold": config.threshold,
        "ngram": config.ngram,
        "num_perm": config.num_perm,
        "seed": config.seed,
        "exact": config.exact,
        "clustering": "verified",
        "candidate_recall": config.candidate_recall,
        "max_reps": config.max_reps,
    }


def begin_dedup(
    catalog: Catalog, config: DedupConfig, *, fetch: bool = True
) -> tuple[int, pa.Table | None] | dict[str, Any]:
    """Start a dedup run: its run id and input documents (``id, source, topic_id, file, row,
    edu_score`` in ``(file, row)`` order; ``None`` unless ``fetch``), or the last run's
    statistics when nothing changed.

    Recomputed only when the parameters or the input documents changed since the last run.
    """
    catalog.exec("UPDATE stage_runs SET status = 'interrupted' WHERE stage = 'dedup' AND status = 'running'")
    params = {**dedup_params(config), "inputs": _inputs_fingerprint(catalog)}
    if catalog.stage_done("dedup", params):
        last = catalog.exec_one(
            "SELECT stats FROM stage_runs WHERE stage = 'dedup' AND status = 'done' "
            "AND params_hash = ? ORDER BY id DESC LIMIT 1",
            [params_hash(params)],
        )
        skipped: dict[str, Any] = {**json.loads(last[0] if last else "{}"), "skipped": True}
        return skipped
    run = catalog.start_stage("dedup", params)
    if not fetch:
        return run, None
    docs = catalog.con.sql(
        f"SELECT id, source, topic_id, file, row, edu_score FROM documents WHERE {DEDUP_INPUTS} "
        "ORDER BY file, row"
    ).to_arrow_table()
    return run, docs


def run_dedup(corpus: Corpus, config: DedupConfig, num_threads: int | None = None) -> dict[str, Any]:
    """Remove exact and near duplicates among the kept documents of every source.

    Returns:
        Statistics: ``documents``, ``exact_duplicates``, ``near_duplicates``, ``clusters`` (with
        more than one document: a kept document and those dropped for it), ``largest_cluster``,
        ``bands``/``rows`` (the candidate banding).
    """
    bands, rows = lsh_recall_params(config.threshold, config.num_perm, config.candidate_recall)
    with Catalog.open(corpus) as catalog:
        begun = begin_dedup(catalog, config)
        if isinstance(begun, dict):
            return begun
        run, docs = begun
        assert docs is not None
        n = docs.num_rows
        files = docs.column("file").to_numpy(zero_copy_only=False)
        row_idx = docs.column("row").to_numpy()
        signatures = np.empty((n, config.num_perm), dtype=np.uint32)
        exact = np.empty(n, dtype=np.uint64)
        start = 0
        while start < n:
            # One shard (or part of one) at a time: documents are sorted by file.
            stop = start + 1
            while stop < n and files[stop] == files[start] and stop - start < config.batch_docs:
                stop += 1
            texts = read_texts(corpus, str(files[start]), row_idx[start:stop].tolist())
            signatures[start:stop] = minhash_signatures(
                texts, config.num_perm, config.ngram, config.seed, num_threads
            )
            exact[start:stop] = exact_hashes(texts, num_threads)
            del texts
            start = stop
        score = docs.column("edu_score").to_numpy(zero_copy_only=False).astype(np.float64)
        keeper = choose_keepers(
            signatures,
            exact if config.exact else None,
            score,
            threshold=config.threshold,
            bands=bands,
            rows=rows,
            max_reps=config.max_reps,
            num_threads=num_threads,
        )
        del signatures
        if not config.exact:
            exact = np.arange(n, dtype=np.uint64)  # every document its own exact group
        stats = record_decisions(catalog, decisions_table(docs, keeper, exact), bands=bands, rows=rows)
        catalog.finish_stage(run, stats)
    return stats


def decisions_table(docs: pa.Table, keeper: npt.NDArray[np.int64], exact: npt.NDArray[np.uint64]) -> pa.Table:
    """The decisions of ``docs`` (``id`` in index order) as rows of :data:`DECISION_SCHEMA`.

    Args:
        docs: ``id`` of every document taking part, in index order.
        keeper: Per document, the index of the document kept for it (itself if kept).
        exact: Per document, its exact hash (its index when exact grouping is off).
    """
    n = len(keeper)
    ids = docs.column("id").to_numpy(zero_copy_only=False)
    index = np.arange(n)
    dropped = keeper != index
    exact_dup = dropped & (exact == exact[keeper])
    reason = np.where(exact_dup, "exact_duplicate", np.where(dropped, "near_duplicate", ""))
    sizes = np.bincount(keeper, minlength=n) if n else np.zeros(0, np.int64)
    in_cluster = sizes[keeper] > 1
    dup_cluster = np.asarray(ids[keeper], dtype=object)
    dup_cluster[~in_cluster] = None
    return pa.table(
        {
            "id": docs.column("id"),
            "exact_hash": pa.array(exact, pa.uint64()),
            "dup_cluster": pa.array(dup_cluster, pa.string()),
            "reason": pa.array([r or None for r in reason.tolist()], pa.string()),
        },
        schema=DECISION_SCHEMA,
    )


#: One row per document taking part: its exact hash, its cluster (the kept document's id, or
#: null outside a cluster of two or more) and why it is dropped (null: kept).
DECISION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("exact_hash", pa.uint64()),
        ("dup_cluster", pa.string()),
        ("reason", pa.string()),
    ]
)


def record_decisions(
    catalog: Catalog,
    decisions: pa.Table | Sequence[Path],
    *,
    bands: int,
    rows: int,
) -> dict[str, Any]:
    """Write dedup decisions to the catalog in one transaction; the statistics come from SQL, so
    the decisions may stay on disk (a relation over Parquet files) and never become Python
    objects.

    Args:
        catalog: The open catalog (the one writer).
        decisions: Rows of :data:`DECISION_SCHEMA`, one per document taking part, in a table
            or in Parquet files (read by DuckDB, out of core).
        bands: LSH bands of the candidate banding (for the statistics).
        rows: Rows per band.

    Returns:
        The statistics of :func:`run_dedup`.
    """
    con = catalog.con
    with catalog.transaction():
        if isinstance(decisions, pa.Table):
            con.register("_dedup", decisions)
        else:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in decisions)
            con.execute(f"CREATE TEMP VIEW _dedup AS SELECT * FROM read_parquet([{files}])")
        try:
            totals = catalog.exec_one(
                "SELECT count(*), count(*) FILTER (reason = 'exact_duplicate'), "
                "count(*) FILTER (reason = 'near_duplicate'), count(DISTINCT dup_cluster), "
                "coalesce((SELECT max(c) FROM (SELECT count(*) AS c FROM _dedup "
                "WHERE dup_cluster IS NOT NULL GROUP BY dup_cluster)), 1) FROM _dedup"
            )
            per_source = catalog.exec(
                "SELECT doc.source, count(*) FILTER (d.reason IS NOT NULL), count(*) "
                "FROM _dedup d JOIN documents doc USING (id) GROUP BY doc.source ORDER BY doc.source"
            )
            catalog.exec(
                "UPDATE documents SET drop_stage = NULL, drop_reason = NULL WHERE drop_stage = 'dedup'"
            )
            catalog.exec(
                "UPDATE documents SET exact_hash = d.exact_hash, dup_cluster = d.dup_cluster "
                "FROM _dedup d WHERE documents.id = d.id"
            )
            catalog.exec(
                "UPDATE documents SET drop_stage = 'dedup', drop_reason = d.reason FROM _dedup d "
                "WHERE documents.id = d.id AND d.reason IS NOT NULL AND documents.drop_stage IS NULL"
            )
            catalog.recount_drops("dedup")  # over every document this stage dropped, any run
            catalog.exec("DELETE FROM dup_stats")
            for grouping, column in (("source", "source"), ("topic", "topic_id")):
                catalog.exec(
                    "INSERT INTO dup_stats SELECT ?, k, count(*), "
                    "count(*) FILTER (r = 'exact_duplicate'), "
                    "count(*) FILTER (r = 'near_duplicate'), count(r) / count(*) FROM ("
                    "SELECT CASE WHEN ? = 'source' THEN source ELSE topic_id END AS k, "
                    "CASE WHEN drop_stage = 'dedup' THEN drop_reason END AS r FROM documents "
                    "WHERE drop_stage IS NULL OR drop_stage = 'dedup') WHERE k IS NOT NULL GROUP BY k",
                    [grouping, column],
                )
            catalog.exec("DELETE FROM dup_cluster_sizes")
            catalog.exec(
                "INSERT INTO dup_cluster_sizes SELECT size, count(*) FROM ("
                "SELECT coalesce(dup_cluster, id) AS c, count(*) AS size FROM documents "
                "WHERE drop_stage IS NULL OR drop_stage = 'dedup' GROUP BY c) GROUP BY size"
            )
        finally:
            if isinstance(decisions, pa.Table):
                con.unregister("_dedup")
            else:
                con.execute("DROP VIEW _dedup")
    n, exact_dups, near_dups, clusters, largest = totals if totals else (0, 0, 0, 0, 0)
    warnings = heavy_drop_warnings_from_counts("dedup", ((str(r[0]), (r[1], r[2])) for r in per_source))
    stats: dict[str, Any] = {
        "documents": int(n),
        "exact_duplicates": int(exact_dups),
        "near_duplicates": int(near_dups),
        "clusters": int(clusters),
        "largest_cluster": int(largest) if n else 0,
        "bands": bands,
        "rows": rows,
    }
    if warnings:
        stats["warnings"] = warnings
    return stats

"""The dedup stage: exact duplicates, then MinHash-LSH near-duplicates across every source.

Steps, streaming the text shard by shard (only one shard's text is in memory at a time):

1. **signatures**: for every kept document (``drop_stage IS NULL``), the xxh3 hash of its
   normalized text and its MinHash signature, into one ``(n, num_perm)`` uint32 array
   (1M documents x 128 permutations = 512 MB);
2. **clusters**: LSH banding and union-find (``lsh_clusters``); documents with equal exact
   hashes are joined too (this only matters for texts without words, which LSH keeps apart);
3. **keep**: in each cluster the document with the highest edu score, then the earliest
   (shard path, row), is kept; the others are dropped as ``exact_duplicate`` (same normalized
   text as the kept one) or ``near_duplicate``;
4. **record**: decisions, cluster ids, per-source and per-topic duplicate rates and the cluster
   size histogram, in one catalog transaction. A killed run commits nothing; the re-run starts
   over.

Example:
    >>> stats = run_dedup(Corpus.open("corpus/"), DedupConfig(threshold=0.8))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus, read_texts
from phicorpus.dedup.minhash import exact_hashes, lsh_clusters, lsh_params, minhash_signatures

__all__ = ["cluster_keepers", "run_dedup"]


def cluster_keepers(
    labels: npt.NDArray[np.int64], exact: npt.NDArray[np.uint64], score: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Merge exact-hash groups into the LSH clusters and pick each cluster's keeper.

    Documents are in order (index = earliness). Returns ``(cluster, keeper)``: per document its
    cluster's representative index and the index of the document kept for that cluster (highest
    ``score``, NaN lowest, then the earliest).

    Example:
        >>> cluster_keepers(np.array([0, 0, 2]), np.array([1, 2, 1], np.uint64), np.array([1.0, 3.0, 0.0]))
        (array([0, 0, 0]), array([1, 1, 1]))
    """
    n = len(labels)
    parent = labels.astype(np.int64).copy()
    if n:
        # Exact duplicates nearly always share an LSH cluster already (equal signatures); the
        # pairs that do not (texts without words) are few, so a union-find over them suffices.
        order = np.lexsort((parent, exact))
        same = exact[order][1:] == exact[order][:-1]
        a, b = parent[order][:-1][same], parent[order][1:][same]
        differ = a != b
        root: dict[int, int] = {}

        def find(x: int) -> int:
            while root.get(x, x) != x:
                x = root[x] = root.get(root[x], root[x])
            return x

        for x, y in zip(a[differ].tolist(), b[differ].tolist(), strict=True):
            rx, ry = find(x), find(y)
            if rx != ry:
                root[max(rx, ry)] = min(rx, ry)
        if root:
            parent = np.fromiter((find(x) for x in parent.tolist()), dtype=np.int64, count=n)
    cleaned = np.nan_to_num(score.astype(np.float64), nan=-np.inf)
    order = np.lexsort((np.arange(n), -cleaned, parent))
    first = np.r_[True, parent[order][1:] != parent[order][:-1]] if n else np.zeros(0, bool)
    keeper_of_cluster = np.empty(n, dtype=np.int64)
    keeper_of_cluster[parent[order][first]] = order[first]
    return parent, keeper_of_cluster[parent]


def run_dedup(corpus: Corpus, config: DedupConfig, num_threads: int | None = None) -> dict[str, Any]:
    """Remove exact and near duplicates among the kept documents of every source.

    Returns:
        Statistics: ``documents``, ``exact_duplicates``, ``near_duplicates``, ``clusters`` (with
        more than one document), ``largest_cluster``, ``bands``/``rows``.
    """
    params = {
        "threshold": config.threshold,
        "ngram": config.ngram,
        "num_perm": config.num_perm,
        "seed": config.seed,
        "exact": config.exact,
    }
    bands, rows = lsh_params(config.threshold, config.num_perm)
    with Catalog.open(corpus) as catalog:
        catalog.exec(
            "UPDATE stage_runs SET status = 'interrupted' WHERE stage = 'dedup' AND status = 'running'"
        )
        run = catalog.start_stage("dedup", params)
        docs = catalog.con.sql(
            "SELECT id, source, topic_id, file, row, edu_score FROM documents WHERE drop_stage IS NULL "
            "ORDER BY file, row"
        ).to_arrow_table()
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
        labels = lsh_clusters(signatures, bands, rows, num_threads) if n else np.zeros(0, np.int64)
        del signatures
        if not config.exact:
            exact = np.arange(n, dtype=np.uint64)  # every document its own exact group
        score = docs.column("edu_score").to_numpy(zero_copy_only=False).astype(np.float64)
        cluster, keeper = cluster_keepers(labels, exact, score)
        ids = docs.column("id").to_numpy(zero_copy_only=False)
        index = np.arange(n)
        dropped = keeper != index
        exact_dup = dropped & (exact == exact[keeper])
        reason = np.where(exact_dup, "exact_duplicate", np.where(dropped, "near_duplicate", ""))
        sizes = np.bincount(cluster, minlength=n) if n else np.zeros(0, np.int64)
        in_cluster = sizes[cluster] > 1
        dup_cluster = np.asarray(ids[keeper], dtype=object)
        dup_cluster[~in_cluster] = None
        decisions = pa.table(
            {
                "id": docs.column("id"),
                "source": docs.column("source"),
                "topic_id": docs.column("topic_id"),
                "exact_hash": pa.array(exact, pa.uint64()),
                "dup_cluster": pa.array(dup_cluster, pa.string()),
                "reason": pa.array([r or None for r in reason.tolist()], pa.string()),
            }
        )
        with catalog.transaction():
            catalog.con.register("_dedup", decisions)
            try:
                catalog.exec(
                    "UPDATE documents SET exact_hash = d.exact_hash, "
                    # A re-run sees only the kept documents: keep the clusters found before.
                    "dup_cluster = coalesce(d.dup_cluster, documents.dup_cluster) "
                    "FROM _dedup d "
                    "WHERE documents.id = d.id"
                )
                catalog.exec(
                    "UPDATE documents SET drop_stage = 'dedup', drop_reason = d.reason FROM _dedup d "
                    "WHERE documents.id = d.id AND d.reason IS NOT NULL AND documents.drop_stage IS NULL"
                )
                # Counts and rates over every document that reached dedup (this run or an earlier).
                counts = catalog.exec(
                    "SELECT source, drop_reason, count(*) FROM documents "
                    "WHERE drop_stage = 'dedup' GROUP BY ALL"
                )
                for (source,) in catalog.exec("SELECT DISTINCT source FROM documents"):
                    catalog.set_drop_counts(
                        "dedup", source, {str(r[1]): int(r[2]) for r in counts if r[0] == source}
                    )
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
                catalog.con.unregister("_dedup")
        stats = {
            "documents": int(n),
            "exact_duplicates": int(exact_dup.sum()),
            "near_duplicates": int((dropped & ~exact_dup).sum()),
            "clusters": int((sizes > 1).sum()),
            "largest_cluster": int(sizes.max()) if n else 0,
            "bands": bands,
            "rows": rows,
        }
        catalog.finish_stage(run, stats)
    return stats

"""The dedup stage: exact and near duplicates across sources, the best document kept, stats."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus
from phicorpus.dedup.stage import cluster_keepers, run_dedup

sys.path.insert(0, str(Path(__file__).parent.parent / "filter"))
from test_stage import add_docs


def _text(rng: random.Random, n: int = 80) -> str:
    words = [f"w{rng.randrange(5000)}" for _ in range(n)]
    return " ".join(words)


def test_cluster_keepers_merges_exact_groups_and_prefers_score_then_earliest() -> None:
    labels = np.array([0, 1, 2, 3, 3], dtype=np.int64)  # LSH: 3 and 4 together
    exact = np.array([7, 9, 7, 5, 6], dtype=np.uint64)  # exact: 0 and 2 together
    score = np.array([np.nan, 1.0, 2.0, 1.0, 1.0])
    cluster, keeper = cluster_keepers(labels, exact, score)
    assert cluster.tolist() == [0, 1, 0, 3, 3]
    assert keeper.tolist() == [2, 1, 2, 3, 3]


def test_dedup_across_sources(tmp_path: Path) -> None:
    rng = random.Random(0)
    base = [_text(rng) for _ in range(40)]
    near = base[0].split()
    near[40] = "changed"
    corpus = Corpus.create(tmp_path)
    a = add_docs(corpus, "a", "code", "code", [*base[:20], base[21].upper() + "!!"])
    b = add_docs(corpus, "b", "textbook", "textbook", [*base[20:], " ".join(near)])
    with Catalog.open(corpus) as cat:
        cat.exec("UPDATE documents SET topic_id = 't1' WHERE source = 'textbook'")
    stats = run_dedup(corpus, DedupConfig())
    assert stats["exact_duplicates"] == 1 and stats["near_duplicates"] == 1
    with Catalog.open(corpus, read_only=True) as cat:
        dropped = dict(cat.exec("SELECT id, drop_reason FROM documents WHERE drop_stage = 'dedup'"))
        clusters = dict(cat.exec("SELECT id, dup_cluster FROM documents WHERE dup_cluster IS NOT NULL"))
        per_source = dict(
            cat.exec("SELECT key, near_dups + exact_dups FROM dup_stats WHERE grouping = 'source'")
        )
        per_topic = cat.exec("SELECT key, documents FROM dup_stats WHERE grouping = 'topic'")
        sizes = dict(cat.exec("SELECT size, clusters FROM dup_cluster_sizes"))
    # The earliest (shard a before b) is kept: the original in b of a's upper-cased copy is an
    # exact duplicate (case and punctuation are normalized away), the edited copy a near one.
    assert dropped == {b[1]: "exact_duplicate", b[20]: "near_duplicate"}
    assert clusters == {a[0]: a[0], b[20]: a[0], b[1]: a[20], a[20]: a[20]}
    assert per_source == {"code": 0, "textbook": 2}
    assert per_topic == [("t1", 21)]
    assert sizes == {1: 38, 2: 2}
    # A re-run keeps the decisions.
    assert run_dedup(corpus, DedupConfig())["near_duplicates"] == 0
    with Catalog.open(corpus, read_only=True) as cat:
        assert len(cat.exec("SELECT id FROM documents WHERE drop_stage = 'dedup'")) == 2
        assert dict(cat.exec("SELECT size, clusters FROM dup_cluster_sizes")) == {1: 38, 2: 2}

"""The dedup stage: exact and near duplicates across sources, the best document kept, stats."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus
from phicorpus.dedup import exact_hashes, lsh_recall_params, minhash_signatures
from phicorpus.dedup.stage import choose_keepers, rank_best_first, run_dedup

sys.path.insert(0, str(Path(__file__).parent.parent / "filter"))
from test_stage import add_docs


def _text(rng: random.Random, n: int = 80) -> str:
    words = [f"w{rng.randrange(5000)}" for _ in range(n)]
    return " ".join(words)


def test_rank_best_first() -> None:
    assert rank_best_first(np.array([1.0, np.nan, 3.0, 1.0])).tolist() == [1, 3, 0, 2]
    assert rank_best_first(np.zeros(0)).tolist() == []


def test_choose_keepers_follows_exact_leaders_and_prefers_score_then_earliest() -> None:
    rng = random.Random(1)
    a, b = _text(rng), _text(rng)
    near_a = a.replace(a.split()[40], "changed", 1)
    texts = [a, b, a.upper() + "!", near_a, "", " ... ", b]
    sig = minhash_signatures(texts)
    exact = exact_hashes(texts)
    score = np.array([np.nan, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0])

    def keepers(exact_groups: bool) -> list[int]:
        groups = exact if exact_groups else None
        return choose_keepers(sig, groups, score, threshold=0.8, bands=18, rows=7).tolist()

    # The upper-cased copy of a has the best score; b and the empty texts keep their earliest.
    assert keepers(True) == [2, 1, 2, 2, 4, 4, 1]
    # Without exact groups, texts without words stay apart (no signature to compare).
    assert keepers(False) == [2, 1, 2, 2, 4, 5, 1]
    assert choose_keepers(sig[:0], exact[:0], score[:0], threshold=0.8, bands=18, rows=7).tolist() == []


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
    # A re-run on the same documents is skipped: nothing read, no new run recorded.
    again = run_dedup(corpus, DedupConfig())
    assert again["skipped"] and again["near_duplicates"] == 1
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec("SELECT count(*) FROM stage_runs WHERE stage = 'dedup'") == [(1,)]
    # A new document: dedup runs again over all its inputs and makes the same decisions as before
    # (the new document is no one's duplicate).
    add_docs(corpus, "c", "code", "code", [_text(rng)])
    again = run_dedup(corpus, DedupConfig())
    assert not again.get("skipped") and (again["exact_duplicates"], again["near_duplicates"]) == (1, 1)
    with Catalog.open(corpus, read_only=True) as cat:
        assert len(cat.exec("SELECT id FROM documents WHERE drop_stage = 'dedup'")) == 2
        assert dict(cat.exec("SELECT size, clusters FROM dup_cluster_sizes")) == {1: 39, 2: 2}
        assert cat.exec("SELECT count(*) FROM stage_runs WHERE stage = 'dedup'") == [(2,)]


def test_dedup_drops_only_documents_near_the_kept_one(tmp_path: Path) -> None:
    # A chain: b is near a and c, but a and c are apart (lsh_clusters joins all three).
    rng = random.Random(3)
    a = _text(rng, 200).split()
    b = list(a)
    for p in (20, 80, 140):
        b[p] = f"edit{p}"
    c = list(b)
    for p in (50, 110, 170):
        c[p] = f"edit{p}"
    corpus = Corpus.create(tmp_path)
    ids = add_docs(corpus, "a", "code", "code", [" ".join(a), " ".join(b), " ".join(c)])
    stats = run_dedup(corpus, DedupConfig(num_perm=512))
    assert stats["near_duplicates"] == 1 and (stats["bands"], stats["rows"]) == lsh_recall_params(0.8, 512)
    with Catalog.open(corpus, read_only=True) as cat:
        dropped = cat.exec("SELECT id, drop_reason, dup_cluster FROM documents WHERE drop_stage = 'dedup'")
        sizes = dict(cat.exec("SELECT size, clusters FROM dup_cluster_sizes"))
    assert dropped == [(ids[1], "near_duplicate", ids[0])]
    assert sizes == {1: 1, 2: 1}

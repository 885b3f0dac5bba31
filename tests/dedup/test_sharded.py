"""Sharded dedup (steps over shards handing off through files) decides as run_dedup does."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus
from phicorpus.dedup.sharded import band_keys, connected_components, run_dedup_sharded
from phicorpus.dedup.stage import run_dedup
from phicorpus.stage import LocalExecutor, Stage, UnitResult, WorkUnit

sys.path.insert(0, str(Path(__file__).parent.parent / "filter"))
from test_stage import add_docs


def _planted(seed: int) -> list[list[str]]:
    """Four shards: originals, exact copies (case/punctuation), near copies at several edit
    distances (some around the threshold), chains, texts without words and short texts."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(400)]
    bases = [[rng.choice(vocab) for _ in range(rng.randrange(30, 90))] for _ in range(60)]
    texts: list[str] = []
    for b in bases:
        texts.append(" ".join(b))
        for _ in range(rng.randrange(0, 4)):
            kind = rng.random()
            words = list(b)
            if kind < 0.3:
                texts.append(" ".join(words).upper() + " !!")
            else:
                for _ in range(rng.randrange(1, 6)):
                    words[rng.randrange(len(words))] = rng.choice(vocab)
                texts.append(" ".join(words))
                b = words  # a chain: the next copy edits this one
    texts += ["", " ... ", "?", "one two", "One, two!", "three"]
    rng.shuffle(texts)
    return [texts[i::4] for i in range(4)]


def _corpus(root: Path, shards: list[list[str]], seed: int) -> Corpus:
    corpus = Corpus.create(root)
    for i, texts in enumerate(shards):
        add_docs(corpus, f"s{i}", "textbook" if i % 2 else "code", "textbook" if i % 2 else "code", texts)
    rng = random.Random(seed)
    with Catalog.open(corpus) as cat:
        ids = [r[0] for r in cat.exec("SELECT id FROM documents ORDER BY id")]
        for doc in ids:
            score = rng.choice([None, 1.0, 2.0, 2.0, 3.5])  # ties and NaN
            cat.exec("UPDATE documents SET edu_score = ?, topic_id = ? WHERE id = ?",
                     [score, f"t{rng.randrange(3)}", doc])  # fmt: skip
    return corpus


def _state(corpus: Corpus) -> tuple[object, ...]:
    with Catalog.open(corpus, read_only=True) as cat:
        return (
            cat.exec(
                "SELECT id, drop_stage, drop_reason, dup_cluster, exact_hash FROM documents ORDER BY id"
            ),
            cat.exec("SELECT * FROM dup_stats ORDER BY ALL"),
            cat.exec("SELECT * FROM dup_cluster_sizes ORDER BY ALL"),
            cat.exec("SELECT stage, source, reason, count FROM drop_counts ORDER BY ALL"),
        )


@pytest.mark.parametrize(
    ("config", "bands", "clusters", "ranges"),
    [
        (DedupConfig(), None, None, 1),
        (DedupConfig(), 1, 1, 1),
        (DedupConfig(max_reps=2, threshold=0.7), 3, 2, 2),
        (DedupConfig(exact=False), 5, 3, 3),
    ],
)
def test_sharded_equals_single_process(
    tmp_path: Path, config: DedupConfig, bands: int | None, clusters: int | None, ranges: int
) -> None:
    shards = _planted(7)
    one = _corpus(tmp_path / "one", shards, 3)
    many = _corpus(tmp_path / "many", shards, 3)
    want = run_dedup(one, config)
    got = run_dedup_sharded(
        many, config, band_partitions=bands, cluster_partitions=clusters, key_ranges=ranges
    )
    assert want["exact_duplicates"] + want["near_duplicates"] > 20
    assert {k: got[k] for k in want} == want
    assert _state(one) == _state(many)
    work = many.root / "cache" / "dedup"
    assert not work.exists() or not any(work.iterdir())
    # A second run sees only the kept documents, like run_dedup's.
    again = run_dedup_sharded(many, config)
    assert {k: v for k, v in again.items() if k not in ("units", "resumed")} == run_dedup(one, config)
    assert _state(one) == _state(many)


class _Killed(Exception):
    pass


@dataclass
class _DyingExecutor:
    """Runs units here and dies (like a killed driver) after ``after`` of them."""

    after: int
    ran: int = 0
    distributed: bool = False

    def map_units(self, stage: Stage, corpus: Corpus, units: Sequence[WorkUnit]) -> Iterable[UnitResult]:
        for result in LocalExecutor(workers=1).map_units(stage, corpus, units):
            self.ran += 1
            yield result
            if self.ran == self.after:
                raise _Killed


def test_markers_resume_and_partial_outputs_are_overwritten(tmp_path: Path) -> None:
    shards = _planted(11)
    one = _corpus(tmp_path / "one", shards, 5)
    many = _corpus(tmp_path / "many", shards, 5)
    run_dedup(one, DedupConfig())
    # Killed after signatures (4), buckets (4), cc-L0 (4), one unit of cc-S0.
    with pytest.raises(_Killed):
        run_dedup_sharded(many, DedupConfig(), executor=_DyingExecutor(13))
    work = next((many.root / "cache" / "dedup").iterdir())
    # A unit that died after writing some outputs but before its marker: garbage left behind.
    partial = work / "cc" / "cc-L1" / "0002" / "000001.npz"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"partial")
    got = run_dedup_sharded(many, DedupConfig())
    resumed = got["resumed"]
    assert [resumed.pop(k) for k in ("signatures", "buckets", "cc-L0", "cc-S0", "cc-L1")] == [4, 4, 4, 1, 0]
    assert set(resumed.values()) == {0} and "members" in resumed
    assert _state(one) == _state(many)
    assert not list((many.root / "cache" / "markers").rglob("*.json"))


def test_band_keys_and_components() -> None:
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(1000, 14), dtype=np.uint32)
    sig[500:] = sig[:500]
    sig[500:, :7] += 1  # band 0 differs, band 1 equal
    k0, k1 = band_keys(sig, 0, 7), band_keys(sig, 1, 7)
    assert len(np.unique(k0)) == 1000 and np.array_equal(k1[:500], k1[500:])
    # A long path and a star: one component each, labelled by the smallest node.
    u = np.r_[np.arange(1, 2000), np.full(5, 5000)]
    v = np.r_[np.arange(0, 1999), np.arange(5001, 5006)]
    nodes, label = connected_components(u[::-1].copy(), v[::-1].copy())
    assert nodes.tolist() == [*range(2000), *range(5000, 5006)]
    assert set(label[:2000].tolist()) == {0} and set(label[2000:].tolist()) == {5000}

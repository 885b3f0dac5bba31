"""Dedup over shards: named steps that hand off through files, so any executor can run them.

The decisions equal :func:`phicorpus.dedup.stage.run_dedup`'s (the same exact groups, LSH
candidates and verified keep rule, the same rank order), but no worker holds the corpus: each
unit reads one input shard, one band partition or one cluster partition. Steps, in order (``S``
document shards, ``B`` band partitions, ``C`` cluster partitions; ``gidx`` is a document's
index in ``(file, row)`` order, which :func:`plan_dedup` fixes on the driver):

1. ``signatures`` (per shard): MinHash signatures and exact hashes of the shard's kept
   documents (``sig/<s>.npy``, ``meta/<s>.npz``), and the shuffle: each LSH band's 64-bit key
   per document into the file of its band partition (``bands/<b>/<s>.npz``, band ``j`` in
   partition ``j % B``). With exact grouping the exact hash is one more band over every
   document (texts without words included), so an exact group always lands in one component.
2. ``buckets`` (per band partition): documents with equal keys in a band are candidates; the
   connected components of the partition's bands, as star edges (each member to its
   component's smallest ``gidx``), routed to the node partitions of the first round.
3. ``cc-L<r>``, ``cc-S<r>``, ``labels`` (``P`` node partitions each): the global connected
   components of all partitions' stars by large-star / small-star rounds
   (:mod:`phicorpus.dedup.components`), each step's edges handed to the next through files
   (``cc/<step>/<p>/<producer>.npz``), until a small-star step sees the graph of the round
   before (the driver compares the units' fingerprints); then each node's label (its
   component's smallest ``gidx``) per shard (``labels/<p>/<s>.npz``).
4. ``members`` (per shard): each such document's signature, exact hash and score, to the
   cluster partition of its component (``members/<c>/<s>.npz``, ``c`` = a hash of the
   component mod ``C``).
5. ``clusters`` (per cluster partition): :func:`~phicorpus.dedup.stage.choose_keepers` over
   the partition's documents in ``gidx`` order. A component is whole in one partition and its
   exact groups are whole in it, so the leaders, their LSH components and the greedy order are
   those of the single-process run; the keeper of every member, per shard
   (``clusters/<c>/<s>.npz``).
6. ``decisions`` (per shard): every document's keeper (itself unless a cluster partition says
   otherwise) and exact hash (``decisions/<s>.npz``).

The driver then records the decisions in one catalog transaction
(:func:`~phicorpus.dedup.stage.record_decisions`). Each step is a
:class:`~phicorpus.stage.Stage` (:class:`DedupStep`): every unit writes its outputs atomically,
then the executor its marker; a unit with a marker is done, so a killed run resumes, and a unit
that died is re-run over its partial outputs.

Band keys here are a multiply-xorshift hash of the band's slots, not the xxh3 that
``lsh_dedup`` uses inside a cluster partition: a collision of these keys only routes two
components into one partition (harmless), and the decisions come from ``lsh_dedup`` itself.

Memory per unit: ``signatures`` holds its shard's text and signatures; ``buckets`` 16 bytes per
document and band of its partition; ``clusters`` the signatures of its partition's candidate
documents; a components step 16 bytes per edge of its node partition (about ``2/P`` of all
partitions' star edges in the first round, fewer after), a few times over for sorting; no unit
holds the corpus.

Example:
    >>> stats = run_dedup_sharded(Corpus.open("corpus/"), DedupConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus, atomic_path
from phicorpus.dedup.components import (
    MAX_ROUNDS,
    Edges,
    both_ways,
    dedupe,
    edge_fingerprint,
    large_star,
    route,
    small_star,
    spread,
    star_labels,
)
from phicorpus.dedup.minhash import EMPTY_SLOT, exact_hashes, lsh_recall_params, minhash_signatures
from phicorpus.dedup.stage import DECISION_SCHEMA, DEDUP_INPUTS, begin_dedup, choose_keepers, record_decisions
from phicorpus.stage import Executor, UnitResult, WorkUnit, marker_path, run_stage

__all__ = [
    "DedupPlan",
    "DedupStep",
    "band_keys",
    "connected_components",
    "plan_dedup",
    "run_dedup_sharded",
    "step_units",
]

_U64 = np.uint64


@dataclass(frozen=True, slots=True)
class DedupPlan:
    """Everything a unit needs (picklable; the driver makes it, workers only read it).

    Attributes:
        corpus_root: The corpus directory.
        work: The step files' directory.
        shards: The document shards (relative to the corpus), in ``(file, row)`` order.
        offsets: ``gidx`` of each shard's first document, and the document count last.
        num_perm: MinHash permutations.
        ngram: Words per shingle.
        seed: MinHash seed.
        exact: Exact grouping on.
        threshold: Jaccard threshold of the keep rule.
        bands: LSH bands.
        rows: Rows per band.
        max_reps: Representatives a document is compared with.
        batch_docs: Documents hashed per batch.
        band_partitions: ``B``: band groups x ``key_ranges``.
        cluster_partitions: ``C``.
        threads: Threads per unit (``None``: all cores).
        key_ranges: Each band group's keys split into this many ranges (partition
            ``group * key_ranges + range``), so one band's keys need not fit one unit.
        component_partitions: ``P``: node partitions of the connected-components rounds.
    """

    corpus_root: str
    work: str
    shards: tuple[str, ...]
    offsets: tuple[int, ...]
    num_perm: int
    ngram: int
    seed: int
    exact: bool
    threshold: float
    bands: int
    rows: int
    max_reps: int
    batch_docs: int
    band_partitions: int
    cluster_partitions: int
    threads: int | None = None
    key_ranges: int = 1
    component_partitions: int = 1

    def path(self, *parts: str | int) -> Path:
        """A file under the work directory."""
        return Path(self.work).joinpath(*(str(p) for p in parts))

    def band_ids(self, partition: int) -> list[int]:
        """The bands of a band partition (band ``bands`` is the exact hash, when on)."""
        total = self.bands + (1 if self.exact else 0)
        groups = self.band_partitions // self.key_ranges
        return [j for j in range(total) if j % groups == partition // self.key_ranges]

    def key_range(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """The key range of each key (its high 32 bits mod ``key_ranges``)."""
        ranges: npt.NDArray[np.uint64] = (keys >> _U64(32)) % _U64(self.key_ranges)
        return ranges


def step_units(plan: DedupPlan, step: str) -> list[int]:
    """The unit indexes of ``step`` (``cc-L<r>``, ``cc-S<r>`` and ``labels``: ``P`` each)."""
    counts = {
        "signatures": len(plan.shards),
        "buckets": plan.band_partitions,
        "members": len(plan.shards),
        "clusters": plan.cluster_partitions,
        "decisions": len(plan.shards),
    }
    return list(range(counts.get(step, plan.component_partitions)))


def band_keys(signatures: npt.NDArray[np.uint32], band: int, rows: int) -> npt.NDArray[np.uint64]:
    """64-bit keys of band ``band`` (slots ``band*rows : (band+1)*rows``) of every signature.

    Example:
        >>> sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 2, 3, 4]], dtype=np.uint32)
        >>> k = band_keys(sig, 0, 2)
        >>> bool(k[0] == k[1]), bool(k[0] == k[2])
        (True, False)
    """
    slots = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64).T.copy()  # one row per slot
    with np.errstate(over="ignore"):
        h = np.full(len(signatures), _U64(0x9E3779B97F4A7C15) * _U64(band + 1), dtype=np.uint64)
        for column in slots:
            h ^= column
            h *= _U64(0xBF58476D1CE4E5B9)
            h ^= h >> _U64(31)
        h ^= h >> _U64(33)
        h *= _U64(0xFF51AFD7ED558CCD)
        h ^= h >> _U64(33)
    return h


def connected_components(
    u: npt.NDArray[np.int64], v: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Connected components of the graph of edges ``u[i] - v[i]``.

    Returns:
        ``(nodes, label)``: the sorted distinct nodes and, per node, the smallest node of its
        component.

    Example:
        >>> n, lab = connected_components(np.array([5, 3, 9]), np.array([3, 7, 8]))
        >>> n.tolist(), lab.tolist()
        ([3, 5, 7, 8, 9], [3, 3, 3, 8, 8])
    """
    nodes, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    a, b = inverse[: len(u)], inverse[len(u) :]
    label = np.arange(len(nodes), dtype=np.int64)
    while True:
        # Hook each edge's larger label to the smaller, then jump pointers until flat.
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, label[a], low)
        np.minimum.at(label, label[b], low)
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            break
    return nodes, nodes[label]


def _peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux ru_maxrss is in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _save_npz(path: Path, **arrays: npt.NDArray[Any]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return path


def _save_npy(path: Path, array: npt.NDArray[Any]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return path


def _shard_range(plan: DedupPlan, s: int) -> tuple[int, int]:
    return plan.offsets[s], plan.offsets[s + 1]


def _signatures(plan: DedupPlan, s: int) -> tuple[list[Path], dict[str, Any]]:
    docs = pq.read_table(plan.path("docs", f"{s:06d}.parquet"), columns=["row", "score"])
    rows = docs.column("row").to_numpy()
    score = docs.column("score").to_numpy()
    n = len(rows)
    column = pq.read_table(Path(plan.corpus_root) / plan.shards[s], columns=["text"]).column("text")
    sig = np.empty((n, plan.num_perm), dtype=np.uint32)
    exact = np.empty(n, dtype=np.uint64)
    for start in range(0, n, plan.batch_docs):
        stop = min(n, start + plan.batch_docs)
        texts: list[str] = column.take(pa.array(rows[start:stop])).to_pylist()
        sig[start:stop] = minhash_signatures(texts, plan.num_perm, plan.ngram, plan.seed, plan.threads)
        exact[start:stop] = exact_hashes(texts, plan.threads)
        del texts
    del column
    outputs = [
        _save_npy(plan.path("sig", f"{s:06d}.npy"), sig),
        _save_npz(plan.path("meta", f"{s:06d}.npz"), exact=exact, score=score),
    ]
    first, _ = _shard_range(plan, s)
    gidx = np.arange(first, first + n, dtype=np.int64)
    live = np.flatnonzero((sig != EMPTY_SLOT).any(axis=1))
    live_sig = sig if len(live) == n else sig[live]
    keyed: dict[int, tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.uint64]]] = {}
    for b in range(plan.band_partitions):
        arrays: dict[str, npt.NDArray[Any]] = {}
        for j in plan.band_ids(b):
            if j not in keyed:
                if j == plan.bands:  # the exact band: every document
                    keys, idx = exact, gidx
                else:
                    keys, idx = band_keys(live_sig, j, plan.rows), gidx[live]
                keyed[j] = (keys, idx, plan.key_range(keys))
            keys, idx, ranges = keyed[j]
            pick = ranges == _U64(b % plan.key_ranges)
            arrays[f"k{j}"], arrays[f"i{j}"] = keys[pick], idx[pick]
        outputs.append(_save_npz(plan.path("bands", f"{b:04d}", f"{s:06d}.npz"), **arrays))
    return outputs, {"documents": n}


def _buckets(plan: DedupPlan, b: int) -> tuple[list[Path], dict[str, Any]]:
    us, vs = [], []
    for j in plan.band_ids(b):
        keys, idx = [], []
        for s in range(len(plan.shards)):
            with np.load(plan.path("bands", f"{b:04d}", f"{s:06d}.npz")) as part:
                keys.append(part[f"k{j}"])
                idx.append(part[f"i{j}"])
        key, gidx = np.concatenate(keys), np.concatenate(idx)
        del keys, idx
        order = np.lexsort((gidx, key))
        key, gidx = key[order], gidx[order]
        del order
        if len(key) == 0:
            continue
        start = np.r_[True, key[1:] != key[:-1]]
        first = gidx[np.flatnonzero(start)[np.cumsum(start) - 1]]
        joined = ~start
        us.append(first[joined])
        vs.append(gidx[joined])
        del key, gidx, first, start, joined
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    nodes, label = connected_components(u, v)
    star = nodes != label
    # The partition's stars go to the first large-star step, under both of their nodes.
    outputs = _save_edges(plan, "cc-L0", b, both_ways(nodes[star], label[star], plan.component_partitions))
    return outputs, {"edges": int(star.sum())}


def _save_edges(plan: DedupPlan, step: str, producer: int, parts: list[Edges]) -> list[Path]:
    """A producer's edges for each partition of ``step`` (``cc/<step>/<p>/<producer>.npz``)."""
    return [
        _save_npz(plan.path("cc", step, f"{p:04d}", f"{producer:06d}.npz"), key=key, other=other)
        for p, (key, other) in enumerate(parts)
    ]


def _load_edges(plan: DedupPlan, step: str, p: int) -> Edges:
    """Every edge the producers of ``step`` routed to its partition ``p``."""
    producers = plan.band_partitions if step == "cc-L0" else plan.component_partitions
    keys, others = [], []
    for producer in range(producers):
        with np.load(plan.path("cc", step, f"{p:04d}", f"{producer:06d}.npz")) as part:
            keys.append(part["key"])
            others.append(part["other"])
    return np.concatenate(keys), np.concatenate(others)


def _cc_round(step: str) -> int:
    return int(step[len("cc-L") :])


def _large_star(plan: DedupPlan, step: str, p: int) -> tuple[list[Path], dict[str, Any]]:
    key, other = _load_edges(plan, step, p)
    a, b = large_star(key, other)
    outputs = _save_edges(plan, f"cc-S{_cc_round(step)}", p, route(a, b, plan.component_partitions))
    return outputs, {"edges_in": len(key), "edges_out": len(a)}


def _small_star(plan: DedupPlan, step: str, p: int) -> tuple[list[Path], dict[str, Any]]:
    key, other = dedupe(*_load_edges(plan, step, p))
    count, digest = edge_fingerprint(key, other)
    a, b = small_star(key, other)
    outputs = _save_edges(plan, f"cc-L{_cc_round(step) + 1}", p, both_ways(a, b, plan.component_partitions))
    # The fingerprint is a string: JSON readers may not keep 64-bit integers exact.
    return outputs, {"edges_in": count, "fingerprint": str(digest), "edges_out": len(a)}


def _labels(plan: DedupPlan, step: str, p: int) -> tuple[list[Path], dict[str, Any]]:
    """At the fixed point: each node of partition ``p``'s stars and its label, per shard."""
    nodes, label = star_labels(*_load_edges(plan, step, p))
    outputs = []
    for s in range(len(plan.shards)):
        lo, hi = np.searchsorted(nodes, _shard_range(plan, s))
        path = plan.path("labels", f"{p:04d}", f"{s:06d}.npz")
        outputs.append(_save_npz(path, gidx=nodes[lo:hi], label=label[lo:hi]))
    return outputs, {"nodes": len(nodes), "centres": int((nodes == label).sum())}


def _members(plan: DedupPlan, s: int) -> tuple[list[Path], dict[str, Any]]:
    gidxs, labels = [], []
    for p in range(plan.component_partitions):
        with np.load(plan.path("labels", f"{p:04d}", f"{s:06d}.npz")) as part:
            gidxs.append(part["gidx"])
            labels.append(part["label"])
    # A centre can be listed by several partitions (with the same label): once each.
    gidx, first = np.unique(np.concatenate(gidxs), return_index=True)
    label = np.concatenate(labels)[first]
    with np.load(plan.path("meta", f"{s:06d}.npz")) as meta:
        exact, score = meta["exact"], meta["score"]
    sig = np.load(plan.path("sig", f"{s:06d}.npy"), mmap_mode="r")
    ids = pq.read_table(plan.path("docs", f"{s:06d}.parquet"), columns=["id"]).column("id")
    local = gidx - plan.offsets[s]
    partition = spread(label) % _U64(plan.cluster_partitions)
    outputs = []
    for c in range(plan.cluster_partitions):
        pick = local[partition == c]
        id_offsets, id_data = _ids_to_arrays(ids.take(pa.array(pick)))
        outputs.append(
            _save_npz(
                plan.path("members", f"{c:04d}", f"{s:06d}.npz"),
                gidx=gidx[partition == c],
                exact=exact[pick],
                score=score[pick],
                sig=np.ascontiguousarray(sig[pick]),
                id_offsets=id_offsets,
                id_data=id_data,
            )
        )
    return outputs, {"members": len(gidx)}


def _ids_to_arrays(ids: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Strings as Arrow lays them out (offsets, UTF-8 bytes), for an ``.npz`` without pickles."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return off - off[0], raw[off[0] : off[-1]].copy()


def _ids_from_arrays(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> pa.LargeStringArray:
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))


#: Reason codes of the cluster files (``reason`` column of :data:`DECISION_SCHEMA`).
_REASONS = (None, "exact_duplicate", "near_duplicate")


def _clusters(plan: DedupPlan, c: int) -> tuple[list[Path], dict[str, Any]]:
    parts: dict[str, list[npt.NDArray[Any]]] = {"gidx": [], "exact": [], "score": [], "sig": []}
    names: list[pa.LargeStringArray] = []
    for s in range(len(plan.shards)):
        with np.load(plan.path("members", f"{c:04d}", f"{s:06d}.npz")) as part:
            for name, arrays in parts.items():
                arrays.append(part[name])
            names.append(_ids_from_arrays(part["id_offsets"], part["id_data"]))
    gidx = np.concatenate(parts["gidx"])
    exact = np.concatenate(parts["exact"])
    score = np.concatenate(parts["score"])
    sig = np.concatenate(parts["sig"]) if gidx.size else np.zeros((0, plan.num_perm), dtype=np.uint32)
    ids = pa.concat_arrays(names) if names else pa.array([], pa.large_string())
    del parts, names
    # Shards come in order and each shard's members in gidx order: index order is gidx order.
    keeper = choose_keepers(
        np.ascontiguousarray(sig, dtype=np.uint32),
        exact if plan.exact else None,
        score,
        threshold=plan.threshold,
        bands=plan.bands,
        rows=plan.rows,
        max_reps=plan.max_reps,
        num_threads=plan.threads,
    )
    del sig
    # decisions_table's rule, over the partition's members: their clusters are whole here.
    n = len(gidx)
    dropped = keeper != np.arange(n)
    exact_dup = dropped & (exact == exact[keeper]) if plan.exact else np.zeros(n, dtype=bool)
    in_cluster = np.bincount(keeper, minlength=n)[keeper] > 1 if n else np.zeros(0, dtype=bool)
    reason = np.where(exact_dup, 1, np.where(dropped, 2, 0)).astype(np.int8)
    outputs = []
    for s in range(len(plan.shards)):
        lo, hi = np.searchsorted(gidx, _shard_range(plan, s))
        rows = lo + np.flatnonzero(in_cluster[lo:hi])
        id_offsets, id_data = _ids_to_arrays(ids.take(pa.array(keeper[rows])))
        path = plan.path("clusters", f"{c:04d}", f"{s:06d}.npz")
        outputs.append(
            _save_npz(path, gidx=gidx[rows], reason=reason[rows], id_offsets=id_offsets, id_data=id_data)
        )
    return outputs, {"members": n, "dropped": int(dropped.sum())}


def _decisions(plan: DedupPlan, s: int) -> tuple[list[Path], dict[str, Any]]:
    """The shard's rows of :data:`~phicorpus.dedup.stage.DECISION_SCHEMA` (``decisions/<s>.parquet``)."""
    first, stop = _shard_range(plan, s)
    n = stop - first
    ids = pq.read_table(plan.path("docs", f"{s:06d}.parquet"), columns=["id"]).column("id")
    cluster = np.full(n, None, dtype=object)
    reason = np.zeros(n, dtype=np.int8)
    for c in range(plan.cluster_partitions):
        with np.load(plan.path("clusters", f"{c:04d}", f"{s:06d}.npz")) as part:
            local = part["gidx"] - first
            reason[local] = part["reason"]
            cluster[local] = _ids_from_arrays(part["id_offsets"], part["id_data"]).to_numpy(
                zero_copy_only=False
            )
    if plan.exact:
        with np.load(plan.path("meta", f"{s:06d}.npz")) as meta:
            exact = meta["exact"]
    else:
        exact = np.arange(first, stop, dtype=np.uint64)  # every document its own exact group
    labels = np.array(_REASONS, dtype=object)[reason]
    table = pa.table(
        {
            "id": ids.cast(pa.string()),
            "exact_hash": pa.array(exact, pa.uint64()),
            "dup_cluster": pa.array(cluster, pa.string()),
            "reason": pa.array(labels, pa.string()),
        },
        schema=DECISION_SCHEMA,
    )
    path = plan.path("decisions", f"{s:06d}.parquet")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return [path], {"dropped": int((reason > 0).sum())}


_STEP_FUNCS: dict[str, Callable[[DedupPlan, int], tuple[list[Path], dict[str, Any]]]] = {
    "signatures": _signatures,
    "buckets": _buckets,
    "members": _members,
    "clusters": _clusters,
    "decisions": _decisions,
}


def _run_step(plan: DedupPlan, step: str, unit: int) -> tuple[list[Path], dict[str, Any]]:
    if step.startswith("cc-L"):
        return _large_star(plan, step, unit)
    if step.startswith("cc-S"):
        return _small_star(plan, step, unit)
    if step.startswith("labels-"):  # labels-cc-S<r>: the stars of the converged round
        return _labels(plan, step[len("labels-") :], unit)
    return _STEP_FUNCS[step](plan, unit)


@dataclass(slots=True)
class DedupStep:
    """One step of the sharded dedup as a :class:`phicorpus.stage.Stage` (picklable: a plan and
    a step name), so any executor runs its units. Its commit records nothing: the catalog gets
    the decisions once, after the last step (:func:`run_dedup_sharded`)."""

    plan: DedupPlan
    step: str
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"dedup-{self.step}"

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        """One unit per shard or partition; keys carry the plan's fingerprint."""
        fingerprint = Path(self.plan.work).name
        return [
            WorkUnit(key=f"{fingerprint}/{u:06d}", params={"plan": fingerprint, "step": self.step, "unit": u})
            for u in step_units(self.plan, self.step)
        ]

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        """The step's work for one unit; reads and writes files under the plan's work directory."""
        outputs, stats = _run_step(self.plan, self.step, int(unit.params["unit"]))
        stats = {**stats, "pid": os.getpid(), "peak_rss": _peak_rss()}
        return UnitResult(unit.key, tuple(corpus.relative(p) for p in outputs), stats)

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, Any]:
        """Nothing to record until the last step."""
        return {}


def plan_dedup(
    corpus: Corpus,
    config: DedupConfig,
    catalog: Catalog,
    *,
    band_partitions: int | None = None,
    cluster_partitions: int | None = None,
    threads: int | None = None,
    key_ranges: int = 1,
    component_partitions: int | None = None,
) -> DedupPlan:
    """The plan for the dedup inputs of ``catalog`` in ``(file, row)`` order, and their
    per-shard lists (``id``, ``row``, ``score``) under ``cache/dedup/<fingerprint>/docs/``.

    Everything per document goes from DuckDB to those files one shard at a time: the driver
    never holds the corpus's documents. The fingerprint covers the parameters and the documents
    (ids, places and scores), so a re-run over the same kept documents finds the finished units
    of a killed run.
    """
    bands, rows = lsh_recall_params(config.threshold, config.num_perm, config.candidate_recall)
    counts = catalog.exec(
        f"SELECT file, count(*) FROM documents WHERE {DEDUP_INPUTS} GROUP BY file ORDER BY file"
    )
    shards = tuple(str(f) for f, _ in counts)
    offsets = (0, *(int(x) for x in np.cumsum([c for _, c in counts], dtype=np.int64)))
    total_bands = bands + (1 if config.exact else 0)
    params = {
        "threshold": config.threshold,
        "ngram": config.ngram,
        "num_perm": config.num_perm,
        "seed": config.seed,
        "exact": config.exact,
        "candidate_recall": config.candidate_recall,
        "max_reps": config.max_reps,
        "band_partitions": (band_partitions or min(total_bands, max(2, len(shards)))) * key_ranges,
        "key_ranges": key_ranges,
        "cluster_partitions": cluster_partitions or max(1, len(shards)),
    }
    params["component_partitions"] = component_partitions or params["band_partitions"]
    documents = catalog.exec_one(
        "SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h), 0) FROM (SELECT "
        f"hash(id, file, row, coalesce(edu_score, -1.0)) AS h FROM documents WHERE {DEDUP_INPUTS})"
    )
    digest = hashlib.sha256(json.dumps({**params, "documents": str(documents)}, sort_keys=True).encode())
    work = corpus.root / "cache" / "dedup" / digest.hexdigest()[:16]
    plan = DedupPlan(
        corpus_root=str(corpus.root),
        work=str(work),
        shards=shards,
        offsets=offsets,
        num_perm=config.num_perm,
        ngram=config.ngram,
        seed=config.seed,
        exact=config.exact,
        threshold=config.threshold,
        bands=bands,
        rows=rows,
        max_reps=config.max_reps,
        batch_docs=config.batch_docs,
        band_partitions=int(params["band_partitions"]),
        key_ranges=key_ranges,
        cluster_partitions=int(params["cluster_partitions"]),
        component_partitions=int(params["component_partitions"]),
        threads=threads,
    )
    for s, shard in enumerate(shards):
        path = plan.path("docs", f"{s:06d}.parquet")
        if not path.is_file():
            table = catalog.con.sql(
                "SELECT id, row::BIGINT AS row, coalesce(edu_score, 'NaN')::DOUBLE AS score FROM documents "
                f"WHERE {DEDUP_INPUTS} AND file = ? ORDER BY row",
                params=[shard],
            ).to_arrow_table()
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
    with atomic_path(plan.path("plan.json")) as tmp:
        tmp.write_text(json.dumps(asdict(plan), sort_keys=True))
    return plan


def run_dedup_sharded(
    corpus: Corpus,
    config: DedupConfig,
    *,
    executor: Executor | None = None,
    band_partitions: int | None = None,
    cluster_partitions: int | None = None,
    threads: int | None = None,
    key_ranges: int = 1,
    component_partitions: int | None = None,
    keep_work: bool = False,
) -> dict[str, Any]:
    """:func:`~phicorpus.dedup.stage.run_dedup` as steps over shards, run by ``executor``.

    Args:
        corpus: The corpus.
        config: ``[dedup]``.
        executor: Where the units run (default: :class:`~phicorpus.stage.LocalExecutor`).
        band_partitions: Band groups (default: the bands, at most the shards, at least 2).
        cluster_partitions: ``C`` (default: the shards).
        threads: Threads per unit (``None``: all cores).
        key_ranges: Key ranges per band group (``B`` = groups x ranges bucket units).
        component_partitions: ``P``, node partitions of the components rounds (default ``B``).
        keep_work: Leave the step files (default: removed once the catalog has the decisions).

    Returns:
        ``run_dedup``'s statistics, with ``units``: per step, the units' stats (``peak_rss``,
        ``pid``, ...), and ``resumed``: per step, the units found done by their markers.
    """
    with Catalog.open(corpus) as catalog:
        begun = begin_dedup(catalog, config, fetch=False)
        if isinstance(begun, dict):
            return begun
        run, _ = begun
        plan = plan_dedup(
            corpus,
            config,
            catalog,
            band_partitions=band_partitions,
            cluster_partitions=cluster_partitions,
            threads=threads,
            key_ranges=key_ranges,
            component_partitions=component_partitions,
        )
    # The units run while no catalog is open here (run_stage opens it for each step's commit).
    units: dict[str, list[dict[str, Any]]] = {}
    resumed: dict[str, int] = {}

    def step(name: str) -> list[dict[str, Any]]:
        done = run_stage(DedupStep(plan, name), corpus, executor)
        units[name] = [dict(r.stats) for r in done.results]
        resumed[name] = int(done.stats["units_resumed"])
        return units[name]

    step("signatures")
    step("buckets")
    last: tuple[int, int] | None = None
    for r in range(MAX_ROUNDS + 1):
        if r == MAX_ROUNDS:
            raise RuntimeError(f"dedup: connected components did not converge in {MAX_ROUNDS} rounds")
        step(f"cc-L{r}")
        stars = step(f"cc-S{r}")
        # The graph entering a small-star step, twice the same: the fixed point (module doc).
        edges, digest = sum(u["edges_in"] for u in stars), sum(int(u["fingerprint"]) for u in stars)
        fingerprint = (edges, digest % (1 << 64))
        if fingerprint == last or fingerprint[0] == 0:
            break
        last = fingerprint
    step(f"labels-cc-S{r}")
    for name in ("members", "clusters", "decisions"):
        step(name)
    with Catalog.open(corpus) as catalog:
        files = [plan.path("decisions", f"{s:06d}.parquet") for s in range(len(plan.shards))]
        decided = files or DECISION_SCHEMA.empty_table()
        stats = record_decisions(catalog, decided, bands=plan.bands, rows=plan.rows)
        catalog.finish_stage(run, stats)
    if not keep_work:
        shutil.rmtree(plan.work, ignore_errors=True)
        for name in units:
            markers = marker_path(corpus, f"dedup-{name}", Path(plan.work).name).with_suffix("")
            shutil.rmtree(markers, ignore_errors=True)
    return {**stats, "units": units, "resumed": resumed}

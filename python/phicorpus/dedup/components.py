"""Connected components over edges partitioned by node: large-star / small-star rounds.

The two operations of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC
2014), each a pure function of one node partition's edges, so that no worker holds the graph:

- **large-star** (input: every edge under both of its nodes): each node ``u`` links each
  neighbour ``v > u`` to ``m(u)``, the smallest of ``u`` and its neighbours;
- **small-star** (input: every edge under its larger node): each node ``u`` links itself and
  each smaller neighbour to the smallest of them.

Both keep every component connected and never join two. Alternated, they reach a fixed point
in ``O(log^2 n)`` rounds (``O(log n)`` in practice): a star per component whose centre is the
component's smallest node. A round is a large-star then a small-star step; the graph entering a
small-star step is fingerprinted (:func:`edge_fingerprint`), and two rounds in a row with the
same fingerprint mean the fixed point: then each node's label is its one smaller neighbour
(:func:`star_labels`), and a centre is its own.

An edge is a pair of ``int64`` node ids ``(key, other)``; a partition owns the keys
``spread(key) % P``. :func:`route` splits a step's output into the next step's partitions.

Example:
    >>> u, v = np.array([1, 2, 3, 7]), np.array([0, 1, 2, 8])
    >>> nodes, label, rounds = components_by_rounds(u, v)
    >>> nodes.tolist(), label.tolist()
    ([0, 1, 2, 3, 7, 8], [0, 0, 0, 0, 7, 7])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "Edges",
    "both_ways",
    "components_by_rounds",
    "dedupe",
    "edge_fingerprint",
    "large_star",
    "route",
    "small_star",
    "spread",
    "star_labels",
    "under_larger",
]

#: ``(key, other)`` arrays of one partition's edges.
Edges = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]

_U64 = np.uint64
#: Rounds after which a run is taken to be broken (the bound is O(log^2 n): 64 is ~2^8 nodes'
#: worth of worst-case rounds past any real corpus).
MAX_ROUNDS = 64


def spread(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """A 64-bit mix of each value (splitmix64's finalizer), so that partitions by ``% P`` are even
    for ids that are often multiples of a group size.

    Example:
        >>> (spread(np.array([0, 10, 20])) % np.uint64(3)).tolist()
        [2, 0, 0]
    """
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        out: npt.NDArray[np.uint64] = z ^ (z >> _U64(31))
    return out


def dedupe(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> Edges:
    """The distinct edges, sorted by ``(key, other)``; self-loops dropped."""
    real = key != other
    key, other = key[real], other[real]
    order = np.lexsort((other, key))
    key, other = key[order], other[order]
    if len(key) > 1:
        first = np.r_[True, (key[1:] != key[:-1]) | (other[1:] != other[:-1])]
        key, other = key[first], other[first]
    return key, other


def _groups(key: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start index and size of each run of equal keys in sorted ``key``."""
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.intp)
    sizes = np.diff(np.r_[starts, len(key)])
    return starts, sizes


def large_star(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> Edges:
    """One partition's large-star step.

    Args:
        key: Every edge of the partition's nodes under its node (both directions of an edge
            reach the partitions of both its nodes).
        other: The other node of each edge.

    Returns:
        Edges ``(v, m(u))`` for each neighbour ``v > u`` of each node ``u``: keyed by their
        larger node (``m(u) <= u < v``), as :func:`small_star` takes them.
    """
    key, other = dedupe(key, other)
    if not len(key):
        return key, other
    starts, sizes = _groups(key)
    smallest = np.minimum(np.minimum.reduceat(other, starts), key[starts])
    m = np.repeat(smallest, sizes)
    up = other > key
    return other[up], m[up]


def small_star(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> Edges:
    """One partition's small-star step.

    Args:
        key: Every edge under its larger node (``other < key``).
        other: The smaller node.

    Returns:
        Edges ``(v, m)`` for ``u`` and each smaller neighbour ``v`` of each node ``u``, ``m``
        the smallest of them (``v != m``), undirected: :func:`both_ways` routes them to the next
        large-star step.
    """
    key, other = dedupe(key, other)
    if not len(key):
        return key, other
    starts, sizes = _groups(key)
    smallest = np.minimum.reduceat(other, starts)
    a = np.concatenate([other, key[starts]])
    b = np.concatenate([np.repeat(smallest, sizes), smallest])
    moved = a != b
    return a[moved], b[moved]


def edge_fingerprint(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> tuple[int, int]:
    """Order-free fingerprint of distinct edges: their count and the sum (mod 2^64) of a hash of
    each; the sum over partitions is the fingerprint of the whole graph."""
    if not len(key):
        return 0, 0
    with np.errstate(over="ignore"):
        h = spread(key) ^ (spread(other) * _U64(0x2545F4914F6CDD1D))
    return len(key), int(spread(h.view(np.int64)).sum(dtype=np.uint64))


def star_labels(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> Edges:
    """At the fixed point: ``(nodes, label)`` of a partition's small-star input, each node's
    label its smallest neighbour below it, and each centre (a node only ever below) its own.
    A centre may be listed by several partitions; its label is the same in each."""
    key, other = dedupe(key, other)
    starts, _ = _groups(key)
    leaves = key[starts]
    labels = np.minimum.reduceat(other, starts) if len(key) else other
    centres = np.setdiff1d(other, leaves)
    nodes = np.concatenate([leaves, centres])
    label = np.concatenate([labels, centres])
    order = np.argsort(nodes, kind="stable")
    return nodes[order], label[order]


def _partition_of(nodes: npt.NDArray[np.int64], parts: int) -> npt.NDArray[np.uint64]:
    target: npt.NDArray[np.uint64] = spread(nodes) % _U64(parts)
    return target


def route(key: npt.NDArray[np.int64], other: npt.NDArray[np.int64], parts: int) -> list[Edges]:
    """``(key, other)`` split by the partition of ``key``: one edge list per partition."""
    target = _partition_of(key, parts)
    return [(key[target == p], other[target == p]) for p in range(parts)]


def both_ways(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], parts: int) -> list[Edges]:
    """Undirected edges under both their nodes, per partition (a large-star step's input)."""
    return route(np.concatenate([a, b]), np.concatenate([b, a]), parts)


def under_larger(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], parts: int) -> list[Edges]:
    """Undirected edges under their larger node, per partition (a small-star step's input)."""
    return route(np.maximum(a, b), np.minimum(a, b), parts)


def components_by_rounds(
    u: npt.NDArray[np.int64], v: npt.NDArray[np.int64], parts: int = 3
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """The rounds in one process over ``parts`` partitions (what the dedup steps do over files).

    Returns:
        ``(nodes, label, rounds)``: the sorted nodes of the edges, each one's smallest
        component member, and the rounds it took.
    """
    split = both_ways(u.astype(np.int64), v.astype(np.int64), parts)
    last: tuple[int, int] | None = None
    for rounds in range(1, MAX_ROUNDS + 1):
        stars = [large_star(*e) for e in split]
        inputs = _gather([under_larger(a, b, parts) for a, b in stars], parts)
        fingerprint = _sum_fingerprints([edge_fingerprint(*dedupe(*e)) for e in inputs])
        if fingerprint == last or fingerprint[0] == 0:
            labelled = [star_labels(*e) for e in inputs]
            nodes = np.concatenate([n for n, _ in labelled]) if labelled else np.zeros(0, np.int64)
            label = np.concatenate([lab for _, lab in labelled]) if labelled else np.zeros(0, np.int64)
            nodes, first = np.unique(nodes, return_index=True)
            return nodes, label[first], rounds
        last = fingerprint
        split = _gather([both_ways(*small_star(*e), parts) for e in inputs], parts)
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _gather(outputs: list[list[Edges]], parts: int) -> list[Edges]:
    """Per partition, the edges every producer routed to it."""
    return [
        (np.concatenate([o[p][0] for o in outputs]), np.concatenate([o[p][1] for o in outputs]))
        for p in range(parts)
    ]


def _sum_fingerprints(parts: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(c for c, _ in parts), sum(h for _, h in parts) % (1 << 64)

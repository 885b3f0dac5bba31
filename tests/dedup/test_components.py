"""Large-star / small-star rounds give the connected components scipy's graph search gives."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from phicorpus.dedup.components import (
    components_by_rounds,
    dedupe,
    edge_fingerprint,
    large_star,
    small_star,
    spread,
)


def _oracle(u: npt.NDArray[np.int64], v: npt.NDArray[np.int64]) -> tuple[list[int], list[int]]:
    """Nodes of the edges and, per node, the smallest node of its component (scipy's BFS)."""
    nodes, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(u)), (inverse[: len(u)], inverse[len(u) :])), shape=(n, n))
    _, comp = scipy_components(graph, directed=False)
    smallest = np.full(comp.max() + 1 if n else 0, np.iinfo(np.int64).max)
    np.minimum.at(smallest, comp, nodes)
    return nodes.tolist(), smallest[comp].tolist()


def _check(u: npt.NDArray[np.int64], v: npt.NDArray[np.int64], parts: int) -> int:
    keep = u != v
    u, v = u[keep], v[keep]
    nodes, label, rounds = components_by_rounds(u, v, parts)
    assert (nodes.tolist(), label.tolist()) == _oracle(u, v)
    return rounds


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_paths_trees_stars_and_random_graphs(parts: int) -> None:
    rng = np.random.default_rng(parts)
    n = 3000
    ids = rng.choice(10**12, size=n, replace=False).astype(np.int64)  # sparse, gidx-like ids
    perm = ids[rng.permutation(n)]
    graphs = {
        "sorted path": (ids[1:], ids[:-1]),
        "shuffled path": (perm[1:], perm[:-1]),
        "random tree": (ids[1:], ids[rng.integers(0, np.arange(1, n))]),
        "stars": (ids[100:], ids[rng.integers(0, 100, n - 100)]),
        "sparse random": (ids[rng.integers(0, n, n // 2)], ids[rng.integers(0, n, n // 2)]),
        "dense random": (ids[rng.integers(0, n, 4 * n)], ids[rng.integers(0, n, 4 * n)]),
    }
    for u, v in graphs.values():
        rounds = _check(u, v, parts)
        assert rounds <= 2 * np.log2(n)  # the bound is O(log^2 n); in practice about log n


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=80),
    st.integers(1, 4),
)
def test_any_small_graph(edges: list[tuple[int, int]], parts: int) -> None:
    u = np.array([a for a, _ in edges], dtype=np.int64)
    v = np.array([b for _, b in edges], dtype=np.int64)
    _check(u, v, parts)


def test_the_steps_keep_components_and_the_fixed_point_is_stars() -> None:
    # 5-4-3-2-1 and 9-8: large-star hangs each node's larger neighbours on its smallest.
    key = np.array([1, 2, 2, 3, 3, 4, 4, 5, 8, 9], dtype=np.int64)
    other = np.array([2, 1, 3, 2, 4, 3, 5, 4, 9, 8], dtype=np.int64)
    a, b = large_star(key, other)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(2, 1), (3, 1), (4, 2), (5, 3), (9, 8)]
    # small-star on edges under their larger node: each node and its smaller ones to the smallest.
    a, b = small_star(np.array([4, 4, 9], dtype=np.int64), np.array([2, 1, 8], dtype=np.int64))
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(2, 1), (4, 1), (9, 8)]
    # A star is a fixed point of both.
    assert sorted(zip(*map(np.ndarray.tolist, large_star(np.array([1, 1, 7, 9]), np.array([7, 9, 1, 1]))),
                      strict=True)) == [(7, 1), (9, 1)]  # fmt: skip
    # The fingerprint ignores order and duplicates once deduped, and sees one changed edge.
    k, o = np.array([3, 5, 5, 9], dtype=np.int64), np.array([1, 2, 2, 4], dtype=np.int64)
    f = edge_fingerprint(*dedupe(k, o))
    assert f == edge_fingerprint(*dedupe(k[::-1].copy(), o[::-1].copy()))
    assert f[0] == 3 and f != edge_fingerprint(*dedupe(k, np.array([1, 2, 2, 3], dtype=np.int64)))
    assert len(set((spread(np.arange(0, 1000, 10)) % np.uint64(4)).tolist())) == 4

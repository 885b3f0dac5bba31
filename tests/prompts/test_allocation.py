"""Allocation: prompts from a token target, shares by subject weight, every topic before reuse."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phicorpus.prompts import allocate_topics, largest_remainder, prompts_for_tokens, topic_counts


def test_prompts_for_tokens() -> None:
    assert prompts_for_tokens(1_000_000, 800) == 1250
    assert prompts_for_tokens(1001, 1000) == 2
    assert prompts_for_tokens(0, 10) == 0
    with pytest.raises(ValueError):
        prompts_for_tokens(10, 0)


def test_largest_remainder_sums_and_is_proportional() -> None:
    assert largest_remainder([1, 1, 1], 10).tolist() == [4, 3, 3]
    assert largest_remainder([0.6, 0.25, 0.15], 100).tolist() == [60, 25, 15]
    assert largest_remainder([0, 0], 5).tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=5, max_size=5),
    n=st.integers(0, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_topic_before_any_twice(sizes: list[int], weights: list[float], n: int, seed: int) -> None:
    subjects = [f"s{i}" for i, size in enumerate(sizes) for _ in range(size)]
    subject_weights = {f"s{i}": w for i, w in enumerate(weights)}
    eligible = [i for i, s in enumerate(subjects) if subject_weights[s] > 0]
    if not eligible:
        if n:
            with pytest.raises(ValueError):
                allocate_topics(subjects, n, np.random.default_rng(seed), subject_weights)
        return
    order = allocate_topics(subjects, n, np.random.default_rng(seed), subject_weights).tolist()
    assert len(order) == n
    assert set(order) <= set(eligible)
    # no topic is used twice before every eligible topic is used once
    first_round = order[: len(eligible)]
    assert len(set(first_round)) == len(first_round)
    if n >= len(eligible):
        assert set(first_round) == set(eligible)
    if n and len(set(weights)) == 1:  # equal weights: as even as possible
        uses = Counter(order)
        assert max(uses.values()) - min(uses[e] for e in eligible) <= 1


def test_weights_shape_the_shares() -> None:
    subjects = ["a"] * 10 + ["b"] * 10
    counts = topic_counts(subjects, 400, {"a": 3.0, "b": 1.0})
    assert counts.sum() == 400
    assert counts[:10].sum() == 300 and counts[10:].sum() == 100
    order = allocate_topics(subjects, 400, np.random.default_rng(0), {"a": 3.0, "b": 1.0})
    assert Counter(subjects[i] for i in order) == {"a": 300, "b": 100}


def test_deterministic() -> None:
    subjects = ["a"] * 7 + ["b"] * 5
    a = allocate_topics(subjects, 30, np.random.default_rng(4))
    b = allocate_topics(subjects, 30, np.random.default_rng(4))
    assert a.tolist() == b.tolist()

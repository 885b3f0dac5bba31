"""How many prompts per topic: from a token target, with subject weights, every topic before reuse.

Example:
    >>> prompts_for_tokens(1_000_000, 800)
    1250
    >>> counts = topic_counts(["a", "a", "b"], 5, {"b": 2.0})
    >>> counts.tolist()
    [1, 1, 3]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["allocate_topics", "largest_remainder", "prompts_for_tokens", "topic_counts"]


def prompts_for_tokens(token_target: int, expected_tokens_per_response: float) -> int:
    """The number of prompts whose responses reach ``token_target`` tokens (rounded up)."""
    if token_target < 0 or expected_tokens_per_response <= 0:
        raise ValueError(
            f"token target must be >= 0 and tokens per response > 0, got {token_target}, "
            f"{expected_tokens_per_response}"
        )
    return math.ceil(token_target / expected_tokens_per_response)


def largest_remainder(shares: npt.ArrayLike, total: int) -> npt.NDArray[np.int64]:
    """Integer counts summing to ``total``, proportional to ``shares`` (Hamilton's method).

    Ties in the remainders go to the earlier entry, so the result is deterministic.
    """
    weights = np.asarray(shares, dtype=np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return np.asarray(counts, dtype=np.int64)


def topic_counts(
    subjects: Sequence[str], n: int, subject_weights: Mapping[str, float] | None = None
) -> npt.NDArray[np.int64]:
    """Prompts per topic for ``n`` prompts; ``subjects[i]`` is topic ``i``'s subject slug.

    Each topic's share is proportional to its subject's weight (default 1.0; 0 leaves the
    subject out), so with no weights every topic gets the same share and a subject's share of
    the prompts is its share of the topics. Every eligible topic gets one prompt before any gets
    two: with ``n`` at most the number of eligible topics the counts are 0 or 1 (the first ``n``
    eligible topics here; :func:`allocate_topics` draws them by weight instead); beyond it,
    every topic gets at least one and the rest follow the shares.
    """
    weights = subject_weights or {}
    for subject, w in weights.items():
        if w < 0:
            raise ValueError(f"subject weight of {subject!r} is negative ({w})")
    per_topic = np.array([float(weights.get(s, 1.0)) for s in subjects], dtype=np.float64)
    eligible = per_topic > 0
    n_eligible = int(eligible.sum())
    if n > 0 and n_eligible == 0:
        raise ValueError("every subject has weight 0: no topic to allocate prompts to")
    if n <= n_eligible:
        return (eligible & (np.cumsum(eligible) <= n)).astype(np.int64)
    # Beyond one round: each topic's target is n * share; everyone keeps at least one.
    target = per_topic / per_topic.sum() * n
    extra = np.where(eligible, np.maximum(target - 1.0, 0.0), 0.0)
    counts = eligible.astype(np.int64)
    counts += largest_remainder(extra if extra.sum() > 0 else eligible, n - n_eligible)
    return counts


def allocate_topics(
    subjects: Sequence[str],
    n: int,
    rng: np.random.Generator,
    subject_weights: Mapping[str, float] | None = None,
) -> npt.NDArray[np.int64]:
    """The topic index of each of ``n`` prompts, in order.

    The order goes round by round: round ``k`` holds, shuffled, every topic whose count is at
    least ``k``, so every topic appears once before any appears twice (and any prefix of the
    order is as even as possible). When ``n`` is below the number of eligible topics, the topics
    of the single round are drawn without replacement with probability proportional to their
    weight (Efraimidis-Spirakis keys).
    """
    weights = subject_weights or {}
    per_topic = np.array([float(weights.get(s, 1.0)) for s in subjects], dtype=np.float64)
    eligible = np.flatnonzero(per_topic > 0)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(eligible) == 0:
        raise ValueError("every subject has weight 0: no topic to allocate prompts to")
    if n <= len(eligible):
        keys = rng.random(len(eligible)) ** (1.0 / per_topic[eligible])
        chosen = eligible[np.argsort(-keys, kind="stable")[:n]]
        return chosen.astype(np.int64)
    counts = topic_counts(subjects, n, weights)
    rounds = []
    for k in range(1, int(counts.max()) + 1):
        members = np.flatnonzero(counts >= k)
        rounds.append(members[rng.permutation(len(members))])
    return np.concatenate(rounds).astype(np.int64)

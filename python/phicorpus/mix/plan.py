"""Token-exact mixture planning: which documents, how many times, in which order.

Each source's documents (their token counts, end-of-text included) are split into a held-out
validation set (by a hash of the document id and the seed) and a training pool. A source's
training target is its share of the total; the plan takes every pool document ``floor(epochs)``
times and, for the fractional last epoch, a seeded subset whose tokens add up to the remainder
(a seeded order's prefix, a largest-first fill of the gap, then add-or-swap steps, so the total
lands within a few tokens of the target). When whole documents cannot land within
:data:`SHARE_TOLERANCE` (a small target against long documents: a small LLM build), the partial
epoch is a seeded order's prefix plus the next document *cut*: its first tokens, ending with its
own end-of-text, so the source lands on its target to the token (one cut document per source at
most, never in the validation split).
The picks of all sources are then shuffled together with the seed.

Example:
    >>> shares = {"bios": 0.8, "code": 0.2}
    >>> plan = MixPlan.create(shares, pools, total_tokens=10_000_000, seed=0)  # doctest: +SKIP
    >>> plan.sources["code"].epochs  # doctest: +SKIP
    1.7
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from phicorpus.mix.spec import MixError

__all__ = ["SHARE_TOLERANCE", "MixPlan", "SourcePlan", "SourcePool", "valid_mask"]

#: A source's training tokens must be within this fraction of its target (issue 6).
SHARE_TOLERANCE = 0.005
#: The fill stops once it is this close (a fraction of the target): well inside the tolerance.
FILL_TOLERANCE = 0.0005


@dataclass(frozen=True, slots=True)
class SourcePool:
    """The tokenized, kept documents of one source, in cache order."""

    ids: Sequence[str]
    lengths: npt.NDArray[np.int64]  # tokens per document, end-of-text included


@dataclass(frozen=True, slots=True)
class SourcePlan:
    source: str
    share: float
    target: int  # training tokens wanted
    available: int  # training-pool tokens (one epoch)
    documents: int  # training-pool documents
    train_picks: npt.NDArray[np.int64] = field(repr=False)  # document indices, repeats included
    train_tokens: int
    valid_picks: npt.NDArray[np.int64] = field(repr=False)
    valid_tokens: int
    #: Tokens taken of each train pick: 0 for the whole document, else a cut (see the module doc).
    train_take: npt.NDArray[np.int64] = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    @property
    def cut_tokens(self) -> int:
        """Tokens of the one cut document (0 when every pick is whole)."""
        return int(self.train_take.sum()) if self.train_take.size else 0

    @property
    def epochs(self) -> float:
        return self.train_tokens / self.available if self.available else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "target_tokens": self.target,
            "train_tokens": self.train_tokens,
            "train_documents": int(self.train_picks.size),
            "unique_documents": self.documents,
            "available_tokens": self.available,
            "epochs": round(self.epochs, 6),
            "valid_tokens": self.valid_tokens,
            "valid_documents": int(self.valid_picks.size),
            "cut_documents": int(np.count_nonzero(self.train_take)) if self.train_take.size else 0,
            "cut_tokens": self.cut_tokens,
        }


def _seed_for(seed: int, *parts: str) -> int:
    digest = hashlib.sha256("\x00".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def valid_mask(ids: Sequence[str], seed: int, fraction: float) -> npt.NDArray[np.bool_]:
    """Which documents are held out: ``blake2b(seed, id) < fraction`` of the hash range."""
    if fraction <= 0 or not ids:
        return np.zeros(len(ids), dtype=bool)
    limit = int(fraction * 2**64)
    prefix = f"{seed}\x00".encode()
    values = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "little") for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )
    mask: npt.NDArray[np.bool_] = values < np.uint64(min(limit, 2**64 - 1))
    return mask


def fill_tokens(
    lengths: npt.NDArray[np.int64], target: int, rng: np.random.Generator, attempts: int = 32
) -> npt.NDArray[np.int64]:
    """Indices of a seeded subset of ``lengths`` whose sum is as close to ``target`` as it
    allows: a seeded order's prefix, then the largest documents that still fit the gap, then up to
    four add-or-swap steps that each land closest to the target. When that misses by more than
    ``FILL_TOLERANCE`` (few, long documents), other seeded orders are tried and the closest kept."""
    n = lengths.size
    if target <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    tol = max(1, int(FILL_TOLERANCE * target))
    best: npt.NDArray[np.int64] | None = None
    best_miss = 0
    for _ in range(attempts):
        chosen = _fill_once(lengths, target, rng.permutation(n).astype(np.int64), tol)
        miss = abs(target - int(lengths[chosen].sum()))
        if best is None or miss < best_miss:
            best, best_miss = chosen, miss
        if miss <= tol:
            break
    assert best is not None
    return best


def _fill_once(
    lengths: npt.NDArray[np.int64], target: int, order: npt.NDArray[np.int64], tol: int
) -> npt.NDArray[np.int64]:
    cum = np.cumsum(lengths[order])
    k = int(np.searchsorted(cum, target, side="right"))
    picked = [order[:k]]
    gap = target - (int(cum[k - 1]) if k else 0)
    rest = order[k:]
    if gap > tol and rest.size:
        # Largest-first over the documents left: each fits the gap, so the gap only shrinks.
        by_size = rest[np.argsort(-lengths[rest], kind="stable")]
        sizes = lengths[by_size]
        chosen = []
        start = 0
        while gap > tol:
            j = start + int(np.searchsorted(-sizes[start:], -gap, side="left"))
            if j >= sizes.size:
                break
            chosen.append(by_size[j])
            gap -= int(sizes[j])
            start = j + 1
        picked.append(np.asarray(chosen, dtype=np.int64))
    return _swap_closer(lengths, np.concatenate(picked), target, tol)


def cut_fill(
    lengths: npt.NDArray[np.int64], target: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A seeded order's longest prefix that fits ``target``, then the next document cut to the
    tokens left (at least 2: some text and the end-of-text). Returns ``(picks, take)``: ``take``
    is 0 for a whole document and the cut's token count for the last pick.
    ``target`` must be below ``lengths.sum()``."""
    order = rng.permutation(lengths.size).astype(np.int64)
    cum = np.cumsum(lengths[order])
    k = int(np.searchsorted(cum, target, side="right"))
    gap = target - (int(cum[k - 1]) if k else 0)
    picks = order[: k + 1] if gap >= 2 and k < order.size else order[:k]
    take = np.zeros(picks.size, dtype=np.int64)
    if picks.size > k:
        take[k] = gap  # < lengths[order[k]]: the prefix up to k + 1 would pass the target
    return picks, take


def _swap_closer(
    lengths: npt.NDArray[np.int64], chosen: npt.NDArray[np.int64], target: int, tol: int
) -> npt.NDArray[np.int64]:
    """Move the chosen documents' tokens closer to ``target`` by adding one unchosen document or
    swapping one chosen for one unchosen, whichever lands closest (a few passes)."""
    for _ in range(4):
        gap = target - int(lengths[chosen].sum())
        if abs(gap) <= tol:
            break
        mask = np.ones(lengths.size, dtype=bool)
        mask[chosen] = False
        free = np.flatnonzero(mask)
        if free.size == 0:
            break
        free = free[np.argsort(lengths[free], kind="stable")]
        free_len = lengths[free]
        # Swapping chosen c (or nothing, the 0 in front) for free u leaves the gap at
        # gap + len(c) - len(u): the best u has length nearest gap + len(c).
        want = np.concatenate([[0], lengths[chosen]]) + gap
        pos = np.searchsorted(free_len, want)
        best_gap, best_k, best_u = abs(gap), -1, -1
        for cand in (np.clip(pos, 0, free.size - 1), np.clip(pos - 1, 0, free.size - 1)):
            miss = np.abs(want - free_len[cand])
            k = int(np.argmin(miss))
            if int(miss[k]) < best_gap:
                best_gap, best_k, best_u = int(miss[k]), k, int(free[cand[k]])
        if best_u < 0:
            break
        if best_k == 0:
            chosen = np.append(chosen, best_u)
        else:
            chosen = chosen.copy()
            chosen[best_k - 1] = best_u
    return chosen


@dataclass(frozen=True, slots=True)
class MixPlan:
    """Which documents of which source the training and validation shards hold, in order."""

    sources: dict[str, SourcePlan]
    order: tuple[str, ...]  # source index -> name (sorted)
    total_target: int
    seed: int
    train_source: npt.NDArray[np.int64] = field(repr=False)  # shuffled: source index per pick
    train_doc: npt.NDArray[np.int64] = field(repr=False)  # shuffled: document index per pick
    valid_source: npt.NDArray[np.int64] = field(repr=False)
    valid_doc: npt.NDArray[np.int64] = field(repr=False)
    #: Shuffled like ``train_doc``: tokens taken of each pick (0: whole); None when nothing is cut.
    train_take: npt.NDArray[np.int64] | None = field(repr=False, default=None)

    @classmethod
    def create(
        cls,
        shares: Mapping[str, float],
        pools: Mapping[str, SourcePool],
        *,
        total_tokens: int | None = None,
        seed: int = 0,
        valid_fraction: float = 0.0,
        max_epochs: float = 16.0,
    ) -> MixPlan:
        """Plan the mix.

        Args:
            shares: Source -> share of the training tokens (sums to 1; see ``MixSpec.shares``).
            pools: Source -> its tokenized documents.
            total_tokens: Training tokens wanted; None: as many as the sources allow with no
                source repeated (the source that runs out first at its share sets the total).
            seed: Seeds the validation split, the fractional-epoch subsets and the shuffle.
            valid_fraction: Fraction of each source's target held out as validation documents
                (drawn from documents never used for training).
            max_epochs: The most times a source may be repeated.

        Raises:
            MixError: a source has no documents, or needs more epochs than ``max_epochs``.
        """
        order = tuple(sorted(shares))
        held: dict[str, npt.NDArray[np.bool_]] = {}
        train_avail: dict[str, int] = {}
        for name in order:
            pool = pools[name]
            mask = valid_mask(pool.ids, seed, valid_fraction)
            if mask.all():  # a tiny source: train on it rather than hold everything out
                mask[:] = False
            held[name] = mask
            train_avail[name] = int(pool.lengths[~mask].sum())
            if train_avail[name] == 0:
                raise MixError(f"source {name!r} has no tokens to train on")
        if total_tokens is None:
            total = min(int(train_avail[s] / shares[s]) for s in order if shares[s] > 0)
        else:
            total = int(total_tokens)
        if total <= 0:
            raise MixError(f"the mix has no training tokens (total {total})")
        plans: dict[str, SourcePlan] = {}
        for name in order:
            pool, mask = pools[name], held[name]
            target = round(shares[name] * total)
            train_idx = np.flatnonzero(~mask).astype(np.int64)
            lengths = pool.lengths[train_idx]
            avail = train_avail[name]
            epochs = target / avail
            if epochs > max_epochs:
                raise MixError(
                    f"source {name!r} would be repeated {epochs:.2f} times to reach {target} tokens "
                    f"({avail} available), more than --max-epochs {max_epochs:g}; lower --tokens or "
                    "raise --max-epochs"
                )
            full = target // avail
            rng = np.random.default_rng(_seed_for(seed, "fill", name))
            part = fill_tokens(lengths, target - full * avail, rng)
            whole = np.tile(np.arange(lengths.size, dtype=np.int64), int(full))
            picks = np.concatenate([whole, part])
            take = np.zeros(picks.size, dtype=np.int64)
            got = int(lengths[picks].sum())
            if abs(got - target) > SHARE_TOLERANCE * target:
                # Whole documents cannot land close enough: cut one (a small target, long documents).
                part, part_take = cut_fill(lengths, target - full * avail, rng)
                picks = np.concatenate([whole, part])
                take = np.concatenate([np.zeros(whole.size, np.int64), part_take])
                got = int(np.where(take > 0, take, lengths[picks]).sum())
            # Validation: held-out documents in a seeded order, up to the source's share of it.
            valid_idx = np.flatnonzero(mask).astype(np.int64)
            valid_rng = np.random.default_rng(_seed_for(seed, "valid", name))
            valid_idx = valid_idx[valid_rng.permutation(valid_idx.size)]
            want = valid_fraction * target
            cum = np.cumsum(pool.lengths[valid_idx])
            valid_idx = (
                valid_idx[: int(np.searchsorted(cum, want, side="left")) + 1] if want else valid_idx[:0]
            )
            plans[name] = SourcePlan(
                source=name,
                share=float(shares[name]),
                target=target,
                available=avail,
                documents=int(lengths.size),
                train_picks=train_idx[picks],
                train_tokens=got,
                valid_picks=valid_idx,
                valid_tokens=int(pool.lengths[valid_idx].sum()),
                train_take=take,
            )
        rng = np.random.default_rng(_seed_for(seed, "shuffle"))
        ts, td, tt = _shuffled(order, {n: p.train_picks for n, p in plans.items()}, rng, plans)
        vs, vd, _ = _shuffled(order, {n: p.valid_picks for n, p in plans.items()}, rng)
        return cls(plans, order, total, seed, ts, td, vs, vd, tt if tt.any() else None)

    def summary(self) -> dict[str, Any]:
        return {name: plan.summary() for name, plan in self.sources.items()}


def _shuffled(
    order: Sequence[str],
    picks: Mapping[str, npt.NDArray[np.int64]],
    rng: np.random.Generator,
    plans: Mapping[str, SourcePlan] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    empty = [np.zeros(0, np.int64)]
    sources = np.concatenate(
        [np.full(picks[n].size, i, dtype=np.int64) for i, n in enumerate(order)] or empty
    )
    docs = np.concatenate([picks[n] for n in order] or empty)
    takes = (
        np.concatenate([plans[n].train_take for n in order] or empty)
        if plans is not None
        else np.zeros(docs.size, np.int64)
    )
    perm = rng.permutation(docs.size)
    return sources[perm], docs[perm], takes[perm]

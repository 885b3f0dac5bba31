"""MixPlan: token-exact shares (0.5%), epochs, held-out validation documents, seeded shuffles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phicorpus.mix import MixError, MixPlan, SourcePool, valid_mask
from phicorpus.mix.plan import fill_tokens


def pool(name: str, lengths: list[int]) -> SourcePool:
    return SourcePool([f"{name}/{i:016x}" for i in range(len(lengths))], np.asarray(lengths, dtype=np.int64))


def lognormal(n: int, seed: int, mean: float = 6.0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) + 2 for x in rng.lognormal(mean, 1.0, n)]


def test_shares_within_half_a_percent_with_repeats() -> None:
    pools = {"bios": pool("bios", lognormal(3000, 1, 5.0)), "code": pool("code", lognormal(800, 2, 7.0))}
    shares = {"bios": 0.8, "code": 0.2}
    plan = MixPlan.create(shares, pools, total_tokens=5_000_000, seed=3, valid_fraction=0.01)
    total = sum(p.train_tokens for p in plan.sources.values())
    for name, share in shares.items():
        sp = plan.sources[name]
        assert abs(sp.train_tokens - share * 5_000_000) <= 0.005 * share * 5_000_000
        assert abs(sp.train_tokens / total - share) <= 0.005 * share
        # Tokens by the shuffled pick arrays agree with the per-source plan.
        idx = plan.order.index(name)
        picked = plan.train_doc[plan.train_source == idx]
        assert int(pools[name].lengths[picked].sum()) == sp.train_tokens
        assert sp.epochs == pytest.approx(sp.train_tokens / sp.available)
    assert plan.sources["bios"].epochs > 1
    # Full epochs: every training document of bios appears floor(epochs) or more times.
    bios = plan.train_doc[plan.train_source == plan.order.index("bios")]
    counts = np.bincount(bios, minlength=3000)
    held = valid_mask(pools["bios"].ids, 3, 0.01)
    assert counts[held].sum() == 0
    assert counts[~held].min() >= int(plan.sources["bios"].epochs)


def test_validation_documents_are_never_trained_on() -> None:
    pools = {"a": pool("a", lognormal(2000, 5)), "b": pool("b", lognormal(2000, 6))}
    plan = MixPlan.create({"a": 0.5, "b": 0.5}, pools, seed=0, valid_fraction=0.05)
    for i in range(len(plan.order)):
        train = set(plan.train_doc[plan.train_source == i].tolist())
        valid = set(plan.valid_doc[plan.valid_source == i].tolist())
        assert valid and not train & valid
    # Without --tokens: the limiting source is used once, none repeated.
    assert max(p.epochs for p in plan.sources.values()) == pytest.approx(1.0, abs=0.005)


def test_seed_changes_order_not_counts() -> None:
    pools = {"a": pool("a", lognormal(500, 7)), "b": pool("b", lognormal(500, 8))}
    one = MixPlan.create({"a": 0.3, "b": 0.7}, pools, total_tokens=200_000, seed=1)
    same = MixPlan.create({"a": 0.3, "b": 0.7}, pools, total_tokens=200_000, seed=1)
    other = MixPlan.create({"a": 0.3, "b": 0.7}, pools, total_tokens=200_000, seed=2)
    assert np.array_equal(one.train_doc, same.train_doc) and np.array_equal(
        one.train_source, same.train_source
    )
    assert not np.array_equal(one.train_doc, other.train_doc)
    for name in ("a", "b"):
        assert (
            abs(other.sources[name].train_tokens - one.sources[name].train_tokens)
            <= 0.01 * one.sources[name].target
        )


def test_max_epochs_and_impossible_targets_are_clear_errors() -> None:
    pools = {"a": pool("a", [100] * 10), "b": pool("b", [100] * 1000)}
    with pytest.raises(MixError, match=r"'a' would be repeated 50.00 times .* --max-epochs 16"):
        MixPlan.create({"a": 0.5, "b": 0.5}, pools, total_tokens=100_000, max_epochs=16)


def test_long_documents_against_a_small_target_land_exactly_with_one_cut() -> None:
    # Whole 3,000-token documents cannot come within 0.5% of 5,000 tokens: one is cut.
    big = {"a": pool("a", [3_000, 3_000, 3_000]), "b": pool("b", [10] * 1000)}
    plan = MixPlan.create({"a": 0.5, "b": 0.5}, big, total_tokens=10_000, seed=4)
    a = plan.sources["a"]
    assert a.train_tokens == a.target == 5_000
    assert a.summary()["cut_documents"] == 1 and a.cut_tokens == 2_000
    assert plan.sources["b"].cut_tokens == 0  # 10-token documents land without a cut
    assert plan.train_take is not None and int(plan.train_take.sum()) == 2_000
    cut_pos = np.flatnonzero(plan.train_take)
    assert cut_pos.size == 1 and plan.order[int(plan.train_source[cut_pos[0]])] == "a"
    # a plan whose documents all fit has no take column at all (its fingerprint is unchanged)
    small = MixPlan.create({"a": 0.5, "b": 0.5}, {"a": pool("a", [10] * 1000), "b": pool("b", [10] * 1000)},
                           total_tokens=10_000)  # fmt: skip
    assert small.train_take is None


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 400), min_size=50, max_size=400),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_fill_lands_within_the_tolerance(lengths: list[int], fraction: float, seed: int) -> None:
    arr = np.asarray(lengths, dtype=np.int64)
    target = int(fraction * arr.sum())
    if target < 400 * 2 / 0.005:  # the bound holds once documents are small against the target
        target = min(int(arr.sum()), int(400 * 2 / 0.005))
    chosen = fill_tokens(arr, target, np.random.default_rng(seed))
    assert len(set(chosen.tolist())) == chosen.size  # no document twice within one partial epoch
    assert abs(int(arr[chosen].sum()) - target) <= max(1, 0.005 * target)

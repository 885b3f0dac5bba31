"""TokenDataset: packed samples equal to a bare np.memmap read of the stream, shifted labels,
deterministic per-epoch shuffles, disjoint ranks, exact resume from state_dict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phicorpus.loader import TokenDataset
from phicorpus.shard import write_shard


def make_build(root: Path, docs: list[list[int]], per_shard: int = 7) -> np.ndarray:
    """A build dir with train shards of ``docs`` (eos 0 appended) and its manifest; returns the
    whole token stream."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, start in enumerate(range(0, len(docs), per_shard)):
        part = docs[start : start + per_shard]
        ids = np.array([i for d in part for i in d], dtype=np.uint32)
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in part])]).astype(np.int64)
        info = write_shard(root / f"train-{k:05d}", lambda w, i=ids, o=offsets: w.add_ids(i, o), "uint16", 0)
        entries.append({"bin": info.bin_path.name, "idx": info.idx_path.name, "tokens": info.tokens})
    manifest = {
        "dtype": "uint16",
        "splits": {"train": {"shards": entries}, "valid": {"shards": []}},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return np.array([t for d in docs for t in [*d, 0]], dtype=np.int64)


@pytest.fixture()
def build(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 60_000, rng.integers(1, 90)).tolist() for _ in range(100)]
    stream = make_build(tmp_path / "build", docs)
    return tmp_path / "build", stream


def test_samples_are_windows_of_the_stream(build: tuple[Path, np.ndarray]) -> None:
    root, stream = build
    ds = TokenDataset(root, seq_len=33)
    assert ds.num_tokens == stream.size
    assert ds.num_samples == (stream.size - 1) // 33
    for i in range(ds.num_samples):  # crosses shard boundaries
        s = ds.sample(i)
        assert s["input_ids"].dtype == np.int64
        assert np.array_equal(s["input_ids"], stream[i * 33 : i * 33 + 33])
        assert np.array_equal(s["labels"], stream[i * 33 + 1 : i * 33 + 34])
    epoch0 = [int(x) for x in ds.order(0)]
    assert sorted(epoch0) == list(range(ds.num_samples))
    assert epoch0 != sorted(epoch0)
    assert list(ds.order(1)) != epoch0
    assert list(TokenDataset(root, 33).order(0)) == epoch0  # deterministic
    assert list(TokenDataset(root, 33, seed=5).order(0)) != epoch0


def test_ranks_are_disjoint_and_equal(build: tuple[Path, np.ndarray]) -> None:
    root, _ = build
    ranks = [TokenDataset(root, 16, rank=r, world_size=3, seed=2) for r in range(3)]
    orders = [set(r.order(0).tolist()) for r in ranks]
    assert len({len(r) for r in ranks}) == 1
    assert all(len(o) == len(ranks[0]) for o in orders)
    assert not (orders[0] & orders[1]) and not (orders[1] & orders[2]) and not (orders[0] & orders[2])
    with pytest.raises(ValueError, match="rank 3"):
        TokenDataset(root, 16, rank=3, world_size=3)


def test_state_dict_resumes_at_the_exact_sample(build: tuple[Path, np.ndarray]) -> None:
    root, _ = build
    ds = TokenDataset(root, 20, seed=1, rank=1, world_size=2)
    it = iter(ds)
    per_epoch = len(ds)
    first = [next(it)["input_ids"] for _ in range(per_epoch + 5)]  # into the second epoch
    state = ds.state_dict()
    assert state["epoch"] == 1 and state["position"] == 5
    rest = [next(it)["input_ids"] for _ in range(10)]
    resumed = TokenDataset(root, 20, seed=1, rank=1, world_size=2)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    again = [s["input_ids"] for _, s in zip(range(10), resumed, strict=False)]
    assert all(np.array_equal(a, b) for a, b in zip(rest, again, strict=True))
    # The first epoch covers this rank's samples once.
    assert len({a.tobytes() for a in first[:per_epoch]}) == per_epoch
    with pytest.raises(ValueError, match="seq_len"):
        TokenDataset(root, 21, seed=1, rank=1, world_size=2).load_state_dict(state)


@pytest.mark.torch
def test_torch_tensors_when_installed(build: tuple[Path, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    root, stream = build
    ds = TokenDataset(root, 8, return_tensors="pt")
    s = ds.sample(3)
    assert isinstance(s["input_ids"], torch.Tensor)
    assert s["input_ids"].tolist() == stream[24:32].tolist()
    batch = next(iter(torch.utils.data.DataLoader(TokenDataset(root, 8).torch(), batch_size=4)))
    assert batch["input_ids"].shape == (4, 8)


def test_missing_build_and_too_short_split(tmp_path: Path, build: tuple[Path, np.ndarray]) -> None:
    with pytest.raises(FileNotFoundError, match="no manifest"):
        TokenDataset(tmp_path / "nothing", 8)
    root, _ = build
    with pytest.raises(ValueError, match="fewer than one"):
        TokenDataset(root, 8, split="valid")
    with pytest.raises(ValueError, match="no split 'test'"):
        TokenDataset(root, 8, split="test")

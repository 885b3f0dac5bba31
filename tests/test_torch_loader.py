"""phicorpus.torch_loader with real CPU torch: windows equal to the token stream, int64 shapes,
shifted labels, the NumPy loader's order, finite epochs and len(DataLoader), disjoint ranks,
workers that read each window once, tiny pickles, and exact resume through 0 and 2 workers
under fork and spawn."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # scripts/test.sh installs it; see README "Tests"

from tests.test_loader import make_build  # noqa: E402

from phicorpus.loader import EpochSampler, PackedWindows, TokenDataLoader, TokenDataset  # noqa: E402

pytestmark = pytest.mark.torch
SEQ = 16


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 60_000, rng.integers(1, 90)).tolist() for _ in range(120)]
    root = tmp_path_factory.mktemp("torch") / "build"
    return root, make_build(root, docs, per_shard=9)


def rows(batches: list[dict[str, torch.Tensor]]) -> list[tuple[int, ...]]:
    return [tuple(r) for b in batches for r in b["input_ids"].tolist()]


def test_windows_shapes_labels_and_order(build: tuple[Path, np.ndarray]) -> None:
    root, stream = build
    ds = PackedWindows(root, SEQ)
    assert len(ds) == (stream.size - 1) // SEQ
    for i in range(len(ds)):  # windows crossing shard boundaries included
        item = ds[i]
        assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape == (SEQ,)
        assert item["input_ids"].tolist() == stream[i * SEQ : i * SEQ + SEQ].tolist()
        assert item["labels"].tolist() == stream[i * SEQ + 1 : i * SEQ + SEQ + 1].tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]
    # Same order as the NumPy TokenDataset, rank by rank.
    for r in range(3):
        assert (
            list(EpochSampler(ds, seed=4, rank=r, world_size=3))
            == TokenDataset(root, SEQ, seed=4, rank=r, world_size=3).order(0).tolist()
        )


def test_epochs_are_finite_and_len_is_right(build: tuple[Path, np.ndarray]) -> None:
    root, _ = build
    ds = PackedWindows(root, SEQ)
    loader = TokenDataLoader(ds, batch_size=5, seed=1)
    assert len(loader) == math.ceil(len(ds) / 5)
    first = list(loader)
    assert len(first) == len(loader)
    assert first[0]["input_ids"].shape == (5, SEQ) and first[0]["labels"].dtype == torch.int64
    assert sorted(rows(first)) == sorted(tuple(ds[i]["input_ids"].tolist()) for i in range(len(ds)))
    second = list(loader)  # the next epoch: the same samples, another order
    assert len(second) == len(first) and rows(second) != rows(first)
    assert sorted(rows(second)) == sorted(rows(first))
    assert loader.state_dict()["epoch"] == 2 and loader.state_dict()["position"] == 0
    # Contiguous halves: the usual `labels.view(-1)` of a training step works.
    assert first[0]["labels"].is_contiguous() and first[0]["labels"].view(-1).shape == (5 * SEQ,)
    # A plain DataLoader with the default collate gives the same batches in the sampler's order.
    plain = torch.utils.data.DataLoader(ds, batch_size=5, sampler=EpochSampler(ds, seed=1))
    assert rows(list(plain)) == rows(first)
    assert rows(list(plain)) == rows(second)  # a pass run to its end moves the sampler to the next epoch
    dropping = TokenDataLoader(ds, batch_size=5, seed=1, drop_last=True)
    assert len(list(dropping)) == len(dropping) == len(ds) // 5


def test_ranks_are_disjoint(build: tuple[Path, np.ndarray]) -> None:
    root, _ = build
    ds = PackedWindows(root, SEQ)
    seen = [set(rows(list(TokenDataLoader(ds, 4, seed=2, rank=r, world_size=3)))) for r in range(3)]
    assert all(len(s) == len(ds) // 3 for s in seen)
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    with pytest.raises(ValueError, match="rank 3"):
        EpochSampler(ds, rank=3, world_size=3)


def test_rank_from_torch_distributed(build: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        sampler = EpochSampler(PackedWindows(build[0], SEQ))
        assert (sampler.rank, sampler.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()


def test_pickle_is_tiny_and_reopens(build: tuple[Path, np.ndarray]) -> None:
    root, _ = build
    ds = PackedWindows(root, SEQ)
    ds[3]  # memmaps open in this process
    blob = pickle.dumps(ds)
    assert len(blob) < 2_000, len(blob)
    again = pickle.loads(blob)
    assert again._maps is None and again[3]["labels"].tolist() == ds[3]["labels"].tolist()


class CountingWindows(PackedWindows):
    """Appends each index it reads to a file, one line per read (workers append concurrently)."""

    log: str = ""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        with open(self.log, "a") as f:
            f.write(f"{index}\n")
        return super().__getitem__(index)

    def __getitems__(self, indices: list[int]) -> Any:
        with open(self.log, "a") as f:
            f.write("".join(f"{i}\n" for i in indices))
        return super().__getitems__(indices)


def test_workers_read_each_window_once(build: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    ds = CountingWindows(build[0], SEQ)
    ds.log = str(tmp_path / "reads")
    loader = TokenDataLoader(ds, 4, seed=3, num_workers=2, multiprocessing_context="fork")
    assert len(list(loader)) == len(loader)
    reads = [int(x) for x in Path(ds.log).read_text().split()]
    assert sorted(reads) == list(range(len(ds)))


@pytest.mark.parametrize(("workers", "context"), [(0, None), (2, "fork"), (2, "spawn")])
def test_exact_resume(build: tuple[Path, np.ndarray], workers: int, context: str | None) -> None:
    root, _ = build

    def make(workers: int) -> TokenDataLoader:
        kwargs = {"multiprocessing_context": context, "persistent_workers": True} if workers else {}
        return TokenDataLoader(PackedWindows(root, SEQ), 3, seed=7, num_workers=workers, **kwargs)

    reference = make(0)  # workers change nothing about the order
    expected = rows(list(reference)) + rows(list(reference)) + rows(list(reference))  # three epochs
    per_epoch = len(reference)
    # Stop mid-way through the second epoch (workers have prefetched beyond it).
    loader = make(workers)
    taken = rows(list(loader))
    it = iter(loader)
    taken += rows([next(it) for _ in range(per_epoch // 2)])
    state = json.loads(json.dumps(loader.state_dict()))
    del it, loader
    assert state["epoch"] == 1 and state["position"] == 3 * (per_epoch // 2)
    resumed = make(workers)
    resumed.load_state_dict(state)
    rest = rows(list(resumed))
    assert taken + rest == expected[: len(taken) + len(rest)]
    assert len(taken) + len(rest) == 2 * len(reference.dataset)  # two whole epochs
    assert rows(list(resumed)) == expected[len(taken) + len(rest) :]  # and on into the third epoch
    other = TokenDataLoader(PackedWindows(root, SEQ + 1), 3, seed=7)
    with pytest.raises(ValueError, match="num_samples"):
        other.load_state_dict(state)


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata 0.11 on torch 2.15
def test_sampler_resumes_exactly_under_torchdata_stateful_dataloader(build: tuple[Path, np.ndarray]) -> None:
    """The model protocol itself: torchdata's StatefulDataLoader over PackedWindows and an
    EpochSampler (2 workers, default collate) resumes at the same sample as TokenDataLoader."""
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    ds = PackedWindows(build[0], SEQ)

    def make() -> Any:
        return stateful.StatefulDataLoader(
            ds, batch_size=3, sampler=EpochSampler(ds, seed=7), num_workers=2, multiprocessing_context="fork"
        )

    expected = rows(list(TokenDataLoader(ds, 3, seed=7)))
    loader = make()
    it = iter(loader)
    taken = rows([next(it) for _ in range(5)])
    state = loader.state_dict()
    del it
    resumed = make()
    resumed.load_state_dict(state)
    assert taken + rows(list(resumed)) == expected

"""The PyTorch side of the dataloader: a map-style ``Dataset`` of packed windows, a seeded
per-epoch ``Sampler`` sharded by rank, and a ``DataLoader`` that resumes at the exact sample.

The windows are those of :class:`phicorpus.loader.TokenDataset` (sample ``i`` is tokens
``[i * seq_len, i * seq_len + seq_len + 1)`` of the split's stream; ``labels`` are ``input_ids``
shifted by one) and so is the order: epoch ``e`` is a permutation drawn from ``(seed, e)``, rank
``r`` of ``world_size`` takes every ``world_size``-th index of it. Because the sampler runs in the
main process and the ``DataLoader`` hands each index to one worker, workers never read a window
twice, and batches come back in sampler order whatever ``num_workers`` is: the number of batches
the training loop has taken is the whole state. :class:`TokenDataLoader` counts them, so its
``state_dict()`` (torchdata ``StatefulDataLoader``'s protocol) resumes at the exact next sample
with any number of workers under fork, spawn or forkserver. One ``for batch in loader`` is one
epoch; the next ``iter()`` starts the following epoch.

:class:`PackedWindows` pickles to a few hundred bytes (paths and offsets): workers reopen the
shards as memmaps on their first read, so nothing is copied into a worker under spawn.

Example:
    >>> ds = PackedWindows("corpus/build/main", seq_len=2048)  # doctest: +SKIP
    >>> loader = TokenDataLoader(ds, batch_size=8, seed=0, num_workers=2)  # doctest: +SKIP
    >>> for step, batch in enumerate(loader):  # doctest: +SKIP
    ...     batch["input_ids"].shape, batch["labels"].shape  # (8, 2048) int64 each
    ...     if step == 100:
    ...         torch.save(loader.state_dict(), "loader.pt")  # with the model's checkpoint
    >>> loader.load_state_dict(torch.load("loader.pt"))  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.utils.data

__all__ = [
    "EpochSampler",
    "PackedWindows",
    "TokenDataLoader",
    "WindowBatch",
    "collate_windows",
    "epoch_order",
]


def epoch_order(num_samples: int, seed: int, epoch: int, rank: int, world_size: int) -> npt.NDArray[np.int64]:
    """Rank ``rank``'s sample indices for ``epoch``: every ``world_size``-th index of the
    permutation drawn from ``(seed, epoch)``; every rank gets ``num_samples // world_size``."""
    perm = np.random.default_rng([seed, epoch]).permutation(num_samples).astype(np.int64)
    return perm[rank : (num_samples // world_size) * world_size : world_size]


def _read_manifest(build_dir: Path, split: str) -> dict[str, Any]:
    manifest_path = build_dir / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{manifest_path}: no manifest (is the build finished?)") from None
    if split not in manifest["splits"]:
        raise ValueError(f"{manifest_path}: no split {split!r} (have {', '.join(manifest['splits'])})")
    return manifest


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank``/``world_size`` as given, else from an initialized ``torch.distributed``, else 0/1."""
    if rank is None or world_size is None:
        dist = torch.distributed
        initialized = dist.is_available() and dist.is_initialized()
        if rank is None:
            rank = dist.get_rank() if initialized else 0
        if world_size is None:
            world_size = dist.get_world_size() if initialized else 1
    if world_size <= 0 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


class PackedWindows(torch.utils.data.Dataset):  # type: ignore[type-arg,misc,unused-ignore]
    """Map-style dataset: item ``i`` is ``{"input_ids", "labels"}``, two int64 tensors of
    ``seq_len`` tokens, window ``i`` of the split's token stream (shards in manifest order).

    Args:
        build_dir: ``corpus/build/<name>`` (holding ``manifest.json``).
        seq_len: Tokens per sample (labels are the next tokens).
        split: ``"train"`` or ``"valid"``.
    """

    def __init__(self, build_dir: str | Path, seq_len: int, split: str = "train") -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.build_dir = Path(build_dir)
        manifest = _read_manifest(self.build_dir, split)
        self.seq_len, self.split = seq_len, split
        self.dtype = np.dtype(manifest["dtype"])
        self._paths: list[str] = []
        starts = [0]
        for entry in manifest["splits"][split]["shards"]:
            path = self.build_dir / entry["bin"]
            size = path.stat().st_size // self.dtype.itemsize
            if size:
                self._paths.append(str(path))
                starts.append(starts[-1] + size)
        #: Token offset where each shard starts in the stream, plus the end (a list: bisect on it
        #: is faster than np.searchsorted for one scalar).
        self._starts = starts
        self.num_tokens = starts[-1]
        self.num_samples = max(0, (self.num_tokens - 1) // seq_len)
        if self.num_samples == 0:
            raise ValueError(
                f"{split} split of {self.build_dir} has {self.num_tokens} tokens: fewer than one "
                f"{seq_len}-token sample"
            )
        self._maps: list[npt.NDArray[Any]] | None = None  # opened on the first read, per process

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = None  # reopened in the worker: pickling never copies tokens
        return state

    def _shards(self) -> list[npt.NDArray[Any]]:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p in self._paths]
        return self._maps

    def window(self, index: int) -> npt.NDArray[np.int64]:
        """Tokens ``[index * seq_len, index * seq_len + seq_len + 1)`` as int64, across shards."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range ({self.num_samples})")
        maps = self._maps if self._maps is not None else self._shards()
        start = index * self.seq_len
        stop = start + self.seq_len + 1
        starts = self._starts
        shard = bisect.bisect_right(starts, start) - 1
        base = starts[shard]
        if stop <= starts[shard + 1]:  # the usual case: one shard
            return maps[shard][start - base : stop - base].astype(np.int64)
        out = np.empty(stop - start, dtype=np.int64)
        at = start
        while at < stop:
            base, end = starts[shard], min(stop, starts[shard + 1])
            out[at - start : end - start] = maps[shard][at - base : end - base]
            at, shard = end, shard + 1
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = torch.from_numpy(self.window(int(index)))
        return {"input_ids": window[:-1], "labels": window[1:]}

    def __getitems__(self, indices: list[int]) -> WindowBatch:
        """A batch read in one call (the ``DataLoader`` fetcher calls this when it exists).

        The batch is one int64 ``(2, n, seq_len)`` buffer (``input_ids``, then ``labels``) filled
        straight from the memmaps: no per-sample arrays and no stacking copy; in a
        ``DataLoader`` worker it is allocated in shared memory, so a batch crosses to the main
        process as one tensor. :class:`TokenDataLoader` collates it as it is; the default
        collate sees per-sample dicts (views of it) and stacks them as usual.
        """
        n, seq = len(indices), self.seq_len
        packed = torch.empty((2, n, seq), dtype=torch.int64)
        if torch.utils.data.get_worker_info() is not None:
            packed.share_memory_()  # type: ignore[no-untyped-call,unused-ignore]  # typed only with torch
        np_in, np_lab = packed.numpy()
        maps = self._maps if self._maps is not None else self._shards()
        starts = self._starts
        for row, index in enumerate(indices):
            index = int(index)
            if not 0 <= index < self.num_samples:
                raise IndexError(f"sample {index} out of range ({self.num_samples})")
            start = index * seq
            shard = bisect.bisect_right(starts, start) - 1
            base = starts[shard]
            if start + seq + 1 <= starts[shard + 1]:
                mm = maps[shard]
                np_in[row] = mm[start - base : start - base + seq]
                np_lab[row] = mm[start - base + 1 : start - base + seq + 1]
            else:
                window = self.window(index)
                np_in[row], np_lab[row] = window[:-1], window[1:]
        return WindowBatch(packed)


class WindowBatch(list):  # type: ignore[type-arg]
    """The per-sample dicts of a batch (what a collate function expects), carrying the batch
    already assembled as one ``(2, n, seq_len)`` tensor (``.packed``) for
    :func:`collate_windows`."""

    def __init__(self, packed: torch.Tensor) -> None:
        super().__init__({"input_ids": x, "labels": y} for x, y in zip(packed[0], packed[1], strict=True))
        self.packed = packed


def collate_windows(samples: Any) -> Any:
    """``DataLoader`` collate of :class:`TokenDataLoader`: a :class:`WindowBatch` as its packed
    ``(2, n, seq_len)`` tensor (one tensor to send from a worker; the loader splits it into
    ``input_ids`` and ``labels``), anything else by the default collate."""
    if isinstance(samples, WindowBatch):
        return samples.packed
    return torch.utils.data.default_collate(samples)


def _unpack(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor) and batch.dim() == 3 and batch.shape[0] == 2:
        return {"input_ids": batch[0], "labels": batch[1]}
    return batch


class EpochSampler(torch.utils.data.Sampler):  # type: ignore[type-arg,misc,unused-ignore]
    """This rank's indices of one epoch in the seeded order (:func:`epoch_order`); finite,
    ``len()`` is the whole epoch's count for this rank. An iteration that runs to its end moves
    the sampler to the next epoch, so a plain ``DataLoader`` gets a new order each pass
    (:meth:`set_epoch` also works, as with ``DistributedSampler``).

    Stateful as torchdata's ``StatefulDataLoader`` expects of a sampler: :meth:`state_dict` is the
    epoch and the number of indices handed out so far in it (that loader snapshots it when it
    dispatches a batch, so prefetching does not move a checkpoint); :meth:`load_state_dict` makes
    the next iteration start after them. :class:`TokenDataLoader` does the same counting itself.

    Args:
        dataset: The :class:`PackedWindows` (or its sample count).
        seed: Seeds the per-epoch order.
        rank: This process's rank; ``None``: ``torch.distributed``'s, or 0.
        world_size: Number of ranks; ``None``: ``torch.distributed``'s, or 1.
    """

    def __init__(
        self,
        dataset: PackedWindows | int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.num_samples = dataset if isinstance(dataset, int) else len(dataset)
        self.seed = seed
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        if self.num_samples < self.world_size:
            raise ValueError(f"{self.num_samples} samples: fewer than one per rank ({self.world_size})")
        self.epoch = 0
        self.start = 0  # where the next iteration starts in this epoch's order
        self.position = 0  # indices of this epoch handed out so far (ahead of the loop when prefetched)
        self._order_epoch = -1
        self._order: npt.NDArray[np.int64] = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self.num_samples // self.world_size

    def order(self, epoch: int) -> npt.NDArray[np.int64]:
        """This rank's indices for ``epoch``."""
        if self._order_epoch != epoch:
            self._order = epoch_order(self.num_samples, self.seed, epoch, self.rank, self.world_size)
            self._order_epoch = epoch
        return self._order

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Start the next iteration at sample ``start`` of ``epoch``."""
        self.epoch, self.start, self.position = epoch, start, start

    def __iter__(self) -> Iterator[int]:
        if self.start >= len(self):  # a state taken at the very end of an epoch
            self.set_epoch(self.epoch + 1)
        epoch, self.position = self.epoch, self.start
        for index in self.order(epoch)[self.start :].tolist():
            self.position += 1
            yield index
        if self.epoch == epoch:  # ran to the end (and nobody moved the epoch meanwhile)
            self.set_epoch(epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_samples": self.num_samples,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was taken; the split, ``seq_len`` and layout must be the same."""
        for key in ("seed", "rank", "world_size", "num_samples"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"loader state {key}={state.get(key)!r} does not match this loader "
                    f"({getattr(self, key)!r})"
                )
        self.set_epoch(int(state["epoch"]), int(state["position"]))


class TokenDataLoader(torch.utils.data.DataLoader):  # type: ignore[type-arg,misc,unused-ignore]
    """A ``DataLoader`` over :class:`PackedWindows` with an :class:`EpochSampler` and exact resume.

    Each ``iter()`` runs the rest of the current epoch, then moves to the next. ``state_dict()``
    says how far the training loop got (batches it took times ``batch_size``, not what workers
    prefetched); ``load_state_dict()`` makes the next ``iter()`` start at the next sample.

    Args:
        dataset: The windows.
        batch_size: Samples per batch.
        seed: Seeds the per-epoch order.
        rank: This process's rank; ``None``: ``torch.distributed``'s, or 0.
        world_size: Number of ranks; ``None``: ``torch.distributed``'s, or 1.
        **kwargs: Passed to ``torch.utils.data.DataLoader`` (``num_workers``,
            ``multiprocessing_context``, ``pin_memory``, ``drop_last``, ``prefetch_factor``, ...);
            not ``sampler``, ``batch_sampler`` or ``shuffle``.
    """

    def __init__(
        self,
        dataset: PackedWindows,
        batch_size: int = 1,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("sampler", "batch_sampler", "shuffle"):
            if kwargs.get(key):
                raise ValueError(f"TokenDataLoader makes its own sampler: {key} is not accepted")
        kwargs.setdefault("collate_fn", collate_windows)
        self._sampler = EpochSampler(dataset, seed, rank, world_size)
        self._batch = batch_size
        # The loop's place: its epoch, where this pass started, batches it has taken in this pass.
        self._epoch = self._start = self._taken = 0
        super().__init__(dataset, batch_size=batch_size, sampler=self._sampler, **kwargs)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override,unused-ignore]  # an override only with torch
        sampler = self._sampler
        # Where the loop is (a loop left early continues where it stopped), whatever the workers
        # made the sampler hand out ahead of it.
        sampler.set_epoch(self._epoch, self._position())
        remaining = len(sampler) - sampler.start
        if remaining <= 0 or (self.drop_last and remaining < self._batch):
            sampler.set_epoch(sampler.epoch + 1)
        self._epoch, self._start, self._taken = sampler.epoch, sampler.start, 0
        packed = self.collate_fn is collate_windows
        for batch in super().__iter__():
            self._taken += 1  # counted before the loop sees the batch: a checkpoint now skips it
            yield _unpack(batch) if packed else batch
        self._epoch, self._start, self._taken = self._epoch + 1, 0, 0

    def _position(self) -> int:
        return min(len(self._sampler), self._start + self._taken * self._batch)

    def state_dict(self) -> dict[str, Any]:
        """The position to resume at: JSON-serialisable, also for ``torch.save``."""
        state = self._sampler.state_dict()
        state["epoch"], state["position"] = self._epoch, self._position()
        state["batch_size"] = self.batch_size
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue where ``state`` was taken."""
        self._sampler.load_state_dict(state)
        self._epoch, self._start, self._taken = self._sampler.epoch, self._sampler.start, 0

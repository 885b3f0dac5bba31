"""The dataloader over built shards: packed fixed-length samples read through ``np.memmap``.

A split's shards (``manifest.json`` order) are one token stream; sample ``i`` is the window
``[i * seq_len, i * seq_len + seq_len + 1)``: ``input_ids`` its first ``seq_len`` tokens,
``labels`` the same shifted by one. Documents are packed back to back, separated by their
end-of-text tokens (the GPT/nanoGPT convention). Each epoch visits every sample once in an order
drawn from ``(seed, epoch)``; rank ``r`` of ``world_size`` takes every ``world_size``-th sample of
that order, so ranks see disjoint samples, the same number each (the few left over are dropped).
:meth:`TokenDataset.state_dict` / :meth:`TokenDataset.load_state_dict` resume at the exact sample.

NumPy arrays by default; with ``return_tensors="pt"`` (PyTorch installed) torch tensors. For a
``torch.utils.data.DataLoader`` (workers, exact resume) use :class:`PackedWindows` with
:class:`TokenDataLoader` (or :class:`EpochSampler`), from :mod:`phicorpus.torch_loader` and
importable from here: the same windows in the same order.

Example:
    >>> ds = TokenDataset("corpus/build/main", seq_len=2048, rank=0, world_size=8)  # doctest: +SKIP
    >>> sample = next(iter(ds))  # doctest: +SKIP
    >>> sample["input_ids"].shape, sample["labels"][0] == sample["input_ids"][1]  # doctest: +SKIP
    ((2048,), True)
    >>> state = ds.state_dict()  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TokenDataset"]


class TokenDataset:
    """Packed ``seq_len`` samples of one split of a build (see the module docstring).

    Args:
        build_dir: ``corpus/build/<name>`` (holding ``manifest.json``).
        seq_len: Tokens per sample (labels are the next tokens).
        split: ``"train"`` or ``"valid"``.
        seed: Seeds the per-epoch sample order.
        rank: This process's rank.
        world_size: Number of ranks.
        return_tensors: ``"np"`` (int64 NumPy arrays) or ``"pt"`` (torch tensors).
    """

    def __init__(
        self,
        build_dir: str | Path,
        seq_len: int,
        split: str = "train",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        return_tensors: str = "np",
    ) -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if return_tensors not in ("np", "pt"):
            raise ValueError(f"return_tensors must be 'np' or 'pt', not {return_tensors!r}")
        self.build_dir = Path(build_dir)
        manifest_path = self.build_dir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{manifest_path}: no manifest (is the build finished?)") from None
        if split not in manifest["splits"]:
            raise ValueError(f"{manifest_path}: no split {split!r} (have {', '.join(manifest['splits'])})")
        self.seq_len, self.split, self.seed = seq_len, split, seed
        self.rank, self.world_size, self.return_tensors = rank, world_size, return_tensors
        self.dtype = np.dtype(manifest["dtype"])
        self._shards: list[npt.NDArray[Any]] = []
        for entry in manifest["splits"][split]["shards"]:
            path = self.build_dir / entry["bin"]
            if path.stat().st_size:
                self._shards.append(np.memmap(path, dtype=self.dtype, mode="r"))
        sizes = np.array([s.size for s in self._shards], dtype=np.int64)
        #: Token offset where each shard starts in the split's stream (plus the end).
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_tokens = int(self._starts[-1])
        #: Samples in the split (every rank together).
        self.num_samples = max(0, (self.num_tokens - 1) // seq_len)
        if self.num_samples < world_size:
            raise ValueError(
                f"{split} split of {self.build_dir} has {self.num_tokens} tokens: fewer than one "
                f"{seq_len}-token sample per rank"
            )
        self.epoch = 0
        self.position = 0  # samples of this rank already returned in this epoch
        self._order_epoch = -1
        self._order: npt.NDArray[np.int64] = np.zeros(0, np.int64)

    # -- samples ----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Samples this rank sees per epoch."""
        return self.num_samples // self.world_size

    def tokens(self, start: int, stop: int) -> npt.NDArray[np.int64]:
        """Tokens ``[start, stop)`` of the split's stream, across shard boundaries."""
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts = []
        at = start
        shard = first
        while at < stop:
            base = int(self._starts[shard])
            end = min(stop, int(self._starts[shard + 1]))
            parts.append(self._shards[shard][at - base : end - base])
            at = end
            shard += 1
        out = parts[0].astype(np.int64) if len(parts) == 1 else np.concatenate(parts).astype(np.int64)
        return out

    def sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` of the split (unshuffled numbering)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range ({self.num_samples})")
        window = self.tokens(index * self.seq_len, index * self.seq_len + self.seq_len + 1)
        return self._wrap(window[:-1], window[1:])

    def _wrap(self, inputs: npt.NDArray[np.int64], labels: npt.NDArray[np.int64]) -> dict[str, Any]:
        if self.return_tensors == "pt":
            import torch

            return {"input_ids": torch.from_numpy(inputs.copy()), "labels": torch.from_numpy(labels.copy())}
        return {"input_ids": inputs, "labels": labels}

    def order(self, epoch: int) -> npt.NDArray[np.int64]:
        """This rank's sample indices for ``epoch``, in order."""
        if self._order_epoch != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples).astype(np.int64)
            # torch_loader.epoch_order draws the same order (kept here: the NumPy path needs no torch).
            self._order = perm[self.rank : len(self) * self.world_size : self.world_size]
            self._order_epoch = epoch
        return self._order

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rest of the current epoch, then the following epochs, without end; the state moves
        as samples are taken, so :meth:`state_dict` after ``k`` samples resumes at sample ``k``."""
        while True:
            order = self.order(self.epoch)
            while self.position < order.size:
                index = int(order[self.position])
                self.position += 1
                yield self.sample(index)
            self.epoch += 1
            self.position = 0

    # -- resume -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "split": self.split,
            "rank": self.rank,
            "world_size": self.world_size,
            "num_tokens": self.num_tokens,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was taken; the dataset must be the same build and layout."""
        for key in ("seed", "seq_len", "split", "rank", "world_size", "num_tokens"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"state {key}={state.get(key)!r} does not match this dataset ({getattr(self, key)!r})"
                )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])

    # -- torch --------------------------------------------------------------------------------

    def torch(self) -> Any:
        """The same windows as a map-style ``torch.utils.data.Dataset``
        (:class:`phicorpus.torch_loader.PackedWindows`); pair it with
        :class:`~phicorpus.torch_loader.TokenDataLoader` (or an
        :class:`~phicorpus.torch_loader.EpochSampler`) for this dataset's order and resume."""
        from phicorpus.torch_loader import PackedWindows

        return PackedWindows(self.build_dir, self.seq_len, self.split)


_TORCH_NAMES = ("EpochSampler", "PackedWindows", "TokenDataLoader")


def __getattr__(name: str) -> Any:
    """The torch classes (:mod:`phicorpus.torch_loader`), imported only when asked for, so the
    NumPy path needs no torch."""
    if name in _TORCH_NAMES:
        from phicorpus import torch_loader

        return getattr(torch_loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

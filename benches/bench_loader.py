"""The torch dataloader against a bare memmap map-style Dataset of the same windows.

Ours: :class:`phicorpus.torch_loader.TokenDataLoader` over :class:`PackedWindows` of a build with
several shards (windows cross shard boundaries; seeded per-epoch order, exact-resume counting).
Peer: a ``torch.utils.data.Dataset`` whose ``__getitem__`` slices one ``np.memmap`` of the same
token stream (the shards concatenated into one file) — the nanoGPT-style reader — through a plain
``DataLoader`` with the same sample order and the default collate. Both give
``{"input_ids", "labels"}`` int64 tensors of ``seq_len`` tokens (ours reads a batch in one
``__getitems__`` call into one buffer and sends it from a worker as one tensor). Throughput in
Mtok/s of ``input_ids`` delivered to the training loop after its first batch (worker start-up
excluded), best of 4 passes (alternating which goes first) over ``PHICORPUS_BENCH_BATCHES``
batches, with 0 and 2 workers (fork).

Usage: ``python benches/bench_loader.py`` (``PHICORPUS_BENCH_TOKENS``, default 64M tokens).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.utils.data

import common
from phicorpus.torch_loader import EpochSampler, PackedWindows, TokenDataLoader

SEQ = 2048
BATCH = 8


class BareMemmap(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The peer: one memmap of the whole stream, window ``i`` sliced out of it."""

    def __init__(self, path: str, seq_len: int) -> None:
        self.path, self.seq_len = path, seq_len
        self.mm = np.memmap(path, dtype=np.uint16, mode="r")

    def __len__(self) -> int:
        return (self.mm.size - 1) // self.seq_len

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        w = torch.from_numpy(self.mm[i * self.seq_len : i * self.seq_len + self.seq_len + 1].astype(np.int64))
        return {"input_ids": w[:-1], "labels": w[1:]}


def make_build(root: Path, tokens: int, shards: int) -> Path:
    """A build of random uint16 tokens in ``shards`` train shards, and the concatenated stream."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries, whole = [], root / "whole.bin"
    with whole.open("wb") as out:
        for k in range(shards):
            part = rng.integers(0, 50_000, tokens // shards, dtype=np.uint16)
            part.tofile(root / f"train-{k:05d}.bin")
            part.tofile(out)
            entries.append({"bin": f"train-{k:05d}.bin", "idx": f"train-{k:05d}.idx", "tokens": part.size})
    manifest = {"dtype": "uint16", "splits": {"train": {"shards": entries}, "valid": {"shards": []}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return whole


def drain(loader: Any, batches: int) -> float:
    """Seconds to take ``batches`` batches after the first (worker start-up is not counted)."""
    start = 0.0
    for n, batch in enumerate(loader):
        if n == 0:
            start = time.perf_counter()
        assert batch["input_ids"].shape == (BATCH, SEQ)
        if n == batches:
            break
    return time.perf_counter() - start


def main() -> None:
    tokens = int(float(os.environ.get("PHICORPUS_BENCH_TOKENS", 64e6)))
    batches = int(os.environ.get("PHICORPUS_BENCH_BATCHES", 1000))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "build"
        whole = make_build(root, tokens, shards=4)
        ours_ds = PackedWindows(root, SEQ)
        peer_ds = BareMemmap(str(whole), SEQ)
        assert len(ours_ds) == len(peer_ds)
        batches = min(batches, len(ours_ds) // BATCH - 1)
        print(f"# {tokens / 1e6:.0f}M tokens in 4 shards, seq_len {SEQ}, batch {BATCH}, {batches} batches")
        for workers in (0, 2):
            kwargs: dict[str, Any] = {"num_workers": workers}
            if workers:
                kwargs["multiprocessing_context"] = "fork"
            ours = TokenDataLoader(ours_ds, BATCH, seed=0, **kwargs)
            order = list(EpochSampler(ours_ds, seed=0, rank=0, world_size=1))
            peer = torch.utils.data.DataLoader(peer_ds, BATCH, sampler=order, **kwargs)
            t_ours = t_peer = float("inf")
            for round_ in range(4):  # interleaved, alternating who goes first: drift hits both
                for who in ("ours", "peer") if round_ % 2 == 0 else ("peer", "ours"):
                    if who == "ours":
                        ours.load_state_dict({**ours.state_dict(), "epoch": 0, "position": 0})
                        t_ours = min(t_ours, drain(ours, batches))
                    else:
                        t_peer = min(t_peer, drain(peer, batches))
            n_tok = batches * BATCH * SEQ
            common.report(
                f"loader: TokenDataLoader, {workers} workers",
                n_tok / t_ours / 1e6,
                n_tok / t_peer / 1e6,
                "bare memmap Dataset",
                "Mtok/s",
            )


if __name__ == "__main__":
    main()

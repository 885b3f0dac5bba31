"""Megatron-LM indexed token shards (``.bin`` + ``.idx``): writing them atomically and reading them.

The layout (DESIGN.md, "Token shards"; Megatron-LM ``megatron/core/datasets/indexed_dataset.py``):
``.bin`` holds every document's tokens back to back, little-endian uint16 when the vocabulary has
fewer than 65,500 ids, else int32, each document ending with the end-of-text token. ``.idx`` is a
34-byte header (``MMIDIDX\\x00\\x00``, u64 version 1, u8 dtype code, u64 sequence count N, u64
document-index count N + 1), then N int32 sequence lengths, N int64 byte offsets into ``.bin`` and
N + 1 int64 document indices ``0, 1, ..., N`` (one sequence per document).

The Rust core writes both files and hashes them as it goes; :func:`write_shard` publishes them
with :func:`phicorpus.corpus.atomic_path`, so a killed writer leaves no torn file under the final
name. :class:`IndexedDataset` reads a pair through ``np.memmap``.

Example:
    >>> fill = lambda w: w.add_texts(texts, tok.core)  # doctest: +SKIP
    >>> info = write_shard("out/train-00000", fill, "uint16", eos_id=0)  # doctest: +SKIP
    >>> IndexedDataset("out/train-00000")[0]  # doctest: +SKIP
    memmap([  464,  3797, ..., 0], dtype=uint16)
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from phicorpus import _core
from phicorpus.corpus import atomic_path

__all__ = [
    "DTYPE_CODES",
    "INDEX_HEADER",
    "IndexedDataset",
    "ShardInfo",
    "ShardReader",
    "ShardWriter",
    "dtype_for_vocab",
    "write_shard",
]

ShardWriter = _core.ShardWriter
ShardReader = _core.ShardReader

INDEX_HEADER = b"MMIDIDX\x00\x00"
#: Megatron's dtype codes.
DTYPE_CODES: dict[int, type[np.generic]] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}


def dtype_for_vocab(max_id: int) -> str:
    """``"uint16"`` when ids ``0..max_id`` number fewer than 65,500 (Megatron's rule), else ``"int32"``."""
    return "uint16" if max_id + 1 < 65_500 else "int32"


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One published ``.bin``/``.idx`` pair."""

    bin_path: Path
    idx_path: Path
    dtype: str
    documents: int
    tokens: int
    bin_sha256: str
    bin_bytes: int
    idx_sha256: str
    idx_bytes: int


def write_shard(
    prefix: str | Path,
    fill: Callable[[_core.ShardWriter], None],
    dtype: str,
    eos_id: int | None,
) -> ShardInfo:
    """Write ``<prefix>.bin`` and ``<prefix>.idx`` through temporary files, then publish both.

    Args:
        prefix: Path without the extension.
        fill: Called with the :class:`ShardWriter`; adds the documents (``add_texts``,
            ``add_ids``, ``add_from``).
        dtype: ``"uint16"`` or ``"int32"``.
        eos_id: Appended after every document added by ``add_texts``/``add_ids``; None: nothing.

    Returns:
        What was written, with the sha256 of each file (computed while writing).

    On any exception (a full disk included) both temporary files are removed and nothing is
    published under the final names; the ``.bin`` is renamed into place before the ``.idx``, so a
    crash between the two leaves a ``.bin`` without its ``.idx``, which readers refuse.
    """
    base = Path(prefix)
    bin_path, idx_path = base.with_name(base.name + ".bin"), base.with_name(base.name + ".idx")
    with atomic_path(idx_path) as idx_tmp, atomic_path(bin_path) as bin_tmp:
        writer = ShardWriter(str(bin_tmp), str(idx_tmp), dtype, eos_id)
        fill(writer)
        summary: dict[str, Any] = writer.finish()
    return ShardInfo(
        bin_path=bin_path,
        idx_path=idx_path,
        dtype=str(summary["dtype"]),
        documents=int(summary["documents"]),
        tokens=int(summary["tokens"]),
        bin_sha256=str(summary["bin_sha256"]),
        bin_bytes=int(summary["bin_bytes"]),
        idx_sha256=str(summary["idx_sha256"]),
        idx_bytes=int(summary["idx_bytes"]),
    )


class IndexedDataset:
    """A ``.bin``/``.idx`` pair read through ``np.memmap`` (no copy until a document is used).

    Example:
        >>> ds = IndexedDataset("corpus/build/main/train-00000")  # doctest: +SKIP
        >>> len(ds), ds.tokens.dtype, ds[0][-1] == eos  # doctest: +SKIP
        (1234, dtype('uint16'), True)
    """

    def __init__(self, prefix: str | Path) -> None:
        base = Path(prefix)
        if base.suffix in (".bin", ".idx"):
            base = base.with_suffix("")
        self.prefix = base
        idx_path = base.with_name(base.name + ".idx")
        bin_path = base.with_name(base.name + ".bin")
        raw = np.memmap(idx_path, dtype=np.uint8, mode="r")
        header = bytes(raw[:34])
        if len(header) < 34 or header[:9] != INDEX_HEADER:
            raise ValueError(f"{idx_path}: not a Megatron .idx file (bad header)")
        version, code, n, d = struct.unpack("<QBQQ", header[9:34])
        if version != 1:
            raise ValueError(f"{idx_path}: index version {version}, expected 1")
        if code not in DTYPE_CODES:
            raise ValueError(f"{idx_path}: unknown dtype code {code}")
        if raw.size < 34 + 12 * n + 8 * d:
            raise ValueError(f"{idx_path}: truncated ({raw.size} bytes for {n} sequences)")
        self.dtype = np.dtype(DTYPE_CODES[code])
        self.sequence_lengths: npt.NDArray[np.int32] = np.frombuffer(raw, np.int32, n, 34)
        self.sequence_pointers: npt.NDArray[np.int64] = np.frombuffer(raw, np.int64, n, 34 + 4 * n)
        self.document_indices: npt.NDArray[np.int64] = np.frombuffer(raw, np.int64, d, 34 + 12 * n)
        size = bin_path.stat().st_size
        if (
            n
            and int(self.sequence_pointers[-1]) + int(self.sequence_lengths[-1]) * self.dtype.itemsize > size
        ):
            raise ValueError(f"{bin_path}: shorter than its index says ({size} bytes)")
        #: Every token of the shard, flat (the nanoGPT/OLMo view of the same file).
        self.tokens: npt.NDArray[Any] = (
            np.memmap(bin_path, dtype=self.dtype, mode="r") if size else np.zeros(0, self.dtype)
        )

    def __len__(self) -> int:
        return int(self.sequence_lengths.size)

    def __getitem__(self, i: int) -> npt.NDArray[Any]:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.sequence_lengths[i])]

    @property
    def num_tokens(self) -> int:
        return int(self.sequence_lengths.sum(dtype=np.int64))


def remove_pair(prefix: str | Path) -> None:
    """Delete ``<prefix>.bin`` and ``<prefix>.idx`` if present."""
    base = Path(prefix)
    for ext in (".bin", ".idx"):
        with contextlib.suppress(FileNotFoundError):
            base.with_name(base.name + ext).unlink()

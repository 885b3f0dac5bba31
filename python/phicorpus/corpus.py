"""The corpus directory (DESIGN.md, "Corpus directory") and atomic file publishing.

Every file a stage writes goes through :func:`publish` (or :func:`atomic_path`): written under a
temporary name in the same directory, flushed and fsynced, renamed into place, and the directory
fsynced. A file is registered in the catalog only after it is in place, so a ``kill -9`` leaves
either the old state or the new one, never a torn file that the catalog points at.

Example:
    >>> corpus = Corpus.create("corpus/")  # doctest: +SKIP
    >>> with atomic_path(corpus.docs_dir("code") / "part-00000.parquet") as tmp:  # doctest: +SKIP
    ...     pq.write_table(table, tmp)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Corpus",
    "CorpusError",
    "atomic_path",
    "fsync_dir",
    "publish_bytes",
    "read_text_buffers",
    "read_texts",
    "sha256_file",
]

TMP_SUFFIX = ".tmp"


class CorpusError(Exception):
    """A corpus directory problem; the message names the path."""


@dataclass(frozen=True, slots=True)
class Corpus:
    """Paths of one corpus directory. Creating it does not open the catalog."""

    root: Path

    @classmethod
    def create(cls, root: str | Path) -> Corpus:
        """The corpus at ``root``, creating the directory if needed."""
        path = Path(root)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CorpusError(f"{path}: cannot create corpus directory ({exc.strerror})") from exc
        return cls(path.resolve())

    @classmethod
    def open(cls, root: str | Path) -> Corpus:
        """An existing corpus; raises :class:`CorpusError` if there is no catalog in ``root``."""
        path = Path(root)
        if not (path / "catalog.duckdb").is_file():
            raise CorpusError(f"{path}: not a phicorpus corpus (no catalog.duckdb)")
        return cls(path.resolve())

    @property
    def config_path(self) -> Path:
        return self.root / "phicorpus.toml"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def docs_dir(self, source: str) -> Path:
        """``docs/<source>/``: the Parquet shards of one source."""
        return self.root / "docs" / source

    def build_dir(self, name: str) -> Path:
        """``build/<name>/``: token shards, tokenizer and manifest of one build."""
        return self.root / "build" / name

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the corpus root, with ``/`` separators (how the catalog stores it)."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def absolute(self, relative: str) -> Path:
        return self.root / relative


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so a rename inside it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success publish it as ``path`` atomically.

    The caller writes the file at the yielded path (any writer: Parquet, NumPy, Rust). On normal
    exit it is fsynced, renamed over ``path`` and the directory fsynced; on an exception it is
    removed and ``path`` is untouched. Parent directories are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def publish_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def remove_stale_temporaries(directory: str | Path) -> int:
    """Delete ``.*.tmp`` files a killed process left under ``directory``; returns how many."""
    removed = 0
    root = Path(directory)
    if not root.exists():
        return 0
    for tmp in root.rglob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed += 1
    return removed


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_text_buffers(
    corpus: Corpus, file: str, rows: Sequence[int] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]] | None:
    """The ``text`` of rows ``rows`` of a document shard as Arrow buffers, no ``str`` per row:
    int64 offsets (``len + 1``) into UTF-8 data (a view of the Arrow buffer, which it keeps
    alive). None when the column has nulls or is not a string column (read it with
    :func:`read_texts`).

    Args:
        corpus: the corpus.
        file: the shard, relative to the corpus (``documents.file``).
        rows: row indexes (``documents.row``); all when ``None``.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pq.read_table(corpus.absolute(file), columns=["text"]).column("text")
    if rows is not None:
        column = column.take(list(rows))
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=width)[array.offset : array.offset + len(array) + 1]
    if data_buf is None:
        return offsets.astype(np.int64), np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), np.frombuffer(data_buf, dtype=np.uint8)


def read_texts(corpus: Corpus, file: str, rows: Sequence[int] | None = None) -> list[str]:
    """The ``text`` of rows ``rows`` (all when ``None``) of a document shard, in that order.

    Args:
        corpus: the corpus.
        file: the shard, relative to the corpus (``documents.file``).
        rows: row indexes (``documents.row``).
    """
    import pyarrow.parquet as pq

    column = pq.read_table(corpus.absolute(file), columns=["text"]).column("text")
    if rows is not None:
        column = column.take(list(rows))
    texts: list[str] = column.to_pylist()
    return texts

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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

    #: A string array's Arrow buffers: int64 offsets (``len + 1``) into UTF-8 data.
    TextBuffers: TypeAlias = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]
    #: What the Rust batch calls take: a sequence of str, or :data:`TextBuffers`.
    Texts: TypeAlias = Sequence[str] | TextBuffers

__all__ = [
    "DISTINCT_COLUMNS",
    "Corpus",
    "CorpusError",
    "atomic_path",
    "cheap_file_problem",
    "check_name",
    "file_kind_problem",
    "fsync_dir",
    "publish_bytes",
    "read_text_array",
    "read_text_buffers",
    "read_texts",
    "sha256_file",
    "stream_text_buffers",
    "utf8_buffers",
    "write_documents",
]

TMP_SUFFIX = ".tmp"
#: The writer's catalog, beside the published ``catalog.duckdb`` (hidden: readers never open it).
WRITER_CATALOG = ".catalog-writer.duckdb"


class CorpusError(Exception):
    """A corpus directory problem; the message names the path."""


_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is one path component of ``[A-Za-z0-9._-]`` (not ``.``/``..``), else an error.

    Build and source names become directories of the corpus (``build/<name>/``,
    ``docs/<source>/``), so a name with a separator, ``..`` or nothing at all would write outside
    its place (``--name ../../escape``) or over another's (``--name ""`` writes into ``build/``).

    Raises:
        CorpusError: naming the value and the rule.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise CorpusError(
            f"{what} {name!r} is not valid: one path component of letters, digits, '.', '_' and '-'"
        )
    return name


#: First and last bytes a file of each kind must have (Parquet: ``PAR1`` both ends; Megatron index).
_MAGIC = {".parquet": (b"PAR1", b"PAR1"), ".idx": (b"MMIDIDX\x00\x00", b"")}


def cheap_file_problem(path: str | Path, size: int | None = None) -> str | None:
    """What is wrong with a written file, by a check that reads a few bytes, or ``None``.

    Present; ``size`` bytes when given; for Parquet the ``PAR1`` magic at both ends (a truncated
    or torn file loses its footer), for a Megatron ``.idx`` its header. A stage runs this on its
    recorded outputs before skipping; ``phicorpus verify`` and the end of a build hash them.
    """
    target = Path(path)
    try:
        actual = target.stat().st_size
        if size is not None and actual != size:
            return f"size {actual}, expected {size}"
        head, tail = _MAGIC.get(target.suffix, (b"", b""))
        if head or tail:
            with open(target, "rb") as fh:
                if head and fh.read(len(head)) != head:
                    return "corrupt (bad header)"
                if tail:
                    fh.seek(max(0, actual - len(tail)))
                    if fh.read(len(tail)) != tail:
                        return "corrupt (no Parquet footer)"
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None


def file_kind_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or ``None`` for a regular file.

    ``no such file or directory`` only when nothing is there: a FIFO, socket or device is named
    as what it is (reading a FIFO would block, and a re-run could not read it again).
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file or directory"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not a regular file (write it to a file first)"


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
        if not (path / "catalog.duckdb").is_file() and not (path / WRITER_CATALOG).is_file():
            raise CorpusError(f"{path}: not a phicorpus corpus (no catalog.duckdb)")
        return cls(path.resolve())

    @property
    def config_path(self) -> Path:
        return self.root / "phicorpus.toml"

    @property
    def catalog_path(self) -> Path:
        """The published read snapshot of the catalog: what readers open (``phicorpus sql``,
        ``stats``, ``duckdb -readonly``); replaced atomically by the writer after it commits."""
        return self.root / "catalog.duckdb"

    @property
    def writer_catalog_path(self) -> Path:
        """The pipeline's own catalog file: only the one writer opens it (see :mod:`phicorpus.catalog`)."""
        return self.root / WRITER_CATALOG

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def docs_dir(self, source: str) -> Path:
        """``docs/<source>/``: the Parquet shards of one source (a valid name, see :func:`check_name`)."""
        return self.root / "docs" / check_name(source, "source name")

    def build_dir(self, name: str) -> Path:
        """``build/<name>/``: token shards, tokenizer and manifest of one build (a valid name)."""
        return self.root / "build" / check_name(name, "build name")

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


#: Document columns whose values are nearly all distinct: Parquet's dictionary encoding would hash
#: every value before giving up on them (a quarter of the write time of a text shard).
DISTINCT_COLUMNS = frozenset({"id", "text", "path", "url", "source_id"})


def write_documents(table: pa.Table, path: str | Path) -> None:
    """Write a document shard: zstd Parquet, dictionary encoding only for the columns that repeat
    (``source``, ``language``, ...). ``path`` is usually an :func:`atomic_path` temporary."""
    import pyarrow.parquet as pq

    repeating = [name for name in table.column_names if name not in DISTINCT_COLUMNS]
    pq.write_table(table, path, compression="zstd", use_dictionary=repeating)


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
        column = column.take(pa.array(np.asarray(rows, dtype=np.int64)))
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    return utf8_buffers(array)


def utf8_buffers(array: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """int64 offsets (``len + 1``) and the UTF-8 data of a string array without nulls (views of
    its Arrow buffers, except the offsets of a 32-bit array, which are widened)."""
    import numpy as np
    import pyarrow as pa

    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=width)[array.offset : array.offset + len(array) + 1]
    if data_buf is None:
        return offsets.astype(np.int64), np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), np.frombuffer(data_buf, dtype=np.uint8)


#: About how much text :func:`stream_text_buffers` hands over at a time.
PIECE_BYTES = 1 << 20


def stream_text_buffers(
    corpus: Corpus, file: str, rows: Sequence[int] | None = None, *, depth: int = 2
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]] | None:
    """:func:`read_text_buffers` in pieces, read ahead: a thread decodes the next Parquet pages
    while the caller works on the last ones (at most ``depth`` pieces waiting). The pieces, in
    order, hold the same rows as one :func:`read_text_buffers` call.

    None when the rows must be read whole instead: ``rows`` not increasing, a ``text`` column that
    is not a string column, or one whose statistics do not rule out nulls. Errors while reading
    are raised by the iterator, as ``OSError`` / ``pyarrow.ArrowException``.
    """
    import queue
    import threading

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(corpus.absolute(file))
    meta = pf.metadata
    names = pf.schema_arrow.names
    if "text" not in names:
        return None
    kind = pf.schema_arrow.field("text").type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    col = names.index("text")
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_null_count or stats.null_count:
            return None
    wanted = None if rows is None else np.asarray(rows, dtype=np.int64)
    if wanted is not None and wanted.size > 1 and not bool(np.all(wanted[1:] > wanted[:-1])):
        return None
    if wanted is not None and wanted.size and (wanted[0] < 0 or wanted[-1] >= meta.num_rows):
        return None  # the whole-read path reports it

    text_bytes = sum(
        meta.row_group(g).column(col).total_uncompressed_size for g in range(meta.num_row_groups)
    )
    batch_rows = max(1, int(meta.num_rows * PIECE_BYTES / max(1, text_bytes)))

    def pieces() -> Iterator[pa.Array]:
        start = 0
        for batch in pf.iter_batches(columns=["text"], batch_size=batch_rows, use_threads=False):
            array, n = batch.column(0), batch.num_rows
            if wanted is None:
                yield array
            else:
                lo, hi = np.searchsorted(wanted, [start, start + n])
                local = wanted[lo:hi] - start
                if len(local) == n:
                    yield array
                elif len(local):
                    yield array.take(pa.array(local))
            start += n

    slots: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for array in pieces():
                if not put(("piece", array)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
            return
        put(("end", None))

    def consume() -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]]:
        reader = threading.Thread(target=read, name="phicorpus-read-ahead", daemon=True)
        reader.start()
        try:
            while True:
                what, item = slots.get()
                if what == "end":
                    return
                if what == "error":
                    assert isinstance(item, BaseException)
                    raise item
                assert isinstance(item, pa.Array)
                yield utf8_buffers(item)
        finally:
            stop.set()
            reader.join()

    return consume()


def read_texts(corpus: Corpus, file: str, rows: Sequence[int] | None = None) -> list[str]:
    """The ``text`` of rows ``rows`` (all when ``None``) of a document shard, in that order.

    Args:
        corpus: the corpus.
        file: the shard, relative to the corpus (``documents.file``).
        rows: row indexes (``documents.row``).

    Raises:
        CorpusError: the file is missing or not Parquet (one line naming it).
    """
    texts: list[str] = read_text_array(corpus, file, rows).to_pylist()
    return texts


def read_text_array(
    corpus: Corpus, file: str, rows: Sequence[int] | npt.NDArray[np.int64] | None = None
) -> pa.Array:
    """:func:`read_texts` as one Arrow array (no Python object per row): hand it to the Rust
    calls as :func:`utf8_buffers`.

    Raises:
        CorpusError: the file is missing or not Parquet (one line naming it).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = corpus.absolute(file)
    try:
        column = pq.read_table(path, columns=["text"]).column("text")
    except (OSError, pa.ArrowException) as exc:
        if not path.exists():
            problem = "missing"
        else:
            problem = f"unreadable ({(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"
        raise CorpusError(
            f"{file}: document file {problem}; run phicorpus verify, and re-run the stage that wrote it"
        ) from exc
    if rows is not None:
        index = np.asarray(rows, dtype=np.int64)
        # Every row in order (a first run): no copy.
        if len(index) != len(column) or not np.array_equal(index, np.arange(len(index))):
            column = column.take(pa.array(index))
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)

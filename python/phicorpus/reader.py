"""Reading a corpus from Python: :func:`open_corpus` gives polars frames over its catalog.

Every call reads the published catalog snapshot (``catalog.duckdb``, see :mod:`phicorpus.catalog`),
so it works while a build runs, never slows it down, and sees the catalog as of the writer's last
publish: a finished stage, or a commit a few seconds old. Each call opens the snapshot afresh,
so a later call sees newer data (:meth:`CorpusReader.snapshot` holds one for a block of calls). The
catalog's rows are read when the method is called; the
document text stays in the corpus's Parquet files and is joined lazily (``scan_parquet``), so it
is read only when a query selects ``text``.

Paths come from the corpus directory given, never from the working directory, so a corpus that
was moved or copied reads the same from anywhere.

Example:
    >>> import polars as pl
    >>> corpus = open_corpus("corpus/")  # doctest: +SKIP
    >>> corpus.kept().group_by("source").agg(pl.len(), pl.col("tokens").sum()).collect()  # doctest: +SKIP
    >>> code = corpus.kept().filter(pl.col("source") == "code")  # doctest: +SKIP
    >>> code.select("id", "text").head(3).collect()  # doctest: +SKIP
    >>> corpus.sql("SELECT stage, reason, sum(count) AS n FROM drop_counts GROUP BY ALL")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from phicorpus.catalog import Catalog, CatalogError
from phicorpus.corpus import Corpus, CorpusError

__all__ = ["CorpusReader", "open_corpus"]

#: Catalog tables :meth:`CorpusReader.table` reads (identifiers cannot be query parameters).
TABLES = (
    "sources",
    "documents",
    "shards",
    "stage_runs",
    "drop_counts",
    "ingest_skips",
    "quality_signals",
    "dup_stats",
    "dup_cluster_sizes",
    "decontam_hits",
    "requests",
    "verifications",
    "pass_at_k",
    "scores",
)


def open_corpus(path: str | Path) -> CorpusReader:
    """The corpus at ``path`` for reading (it may be building right now).

    Raises:
        CatalogError: ``path`` is not a corpus, or nothing is published in it yet.
    """
    try:
        corpus = Corpus.open(path)
    except CorpusError as exc:
        raise CatalogError(str(exc)) from exc
    if not corpus.catalog_path.is_file():
        raise CatalogError(f"{corpus.catalog_path}: nothing published yet (the first stage is still running)")
    return CorpusReader(corpus)


class CorpusReader:
    """Polars views of one corpus's catalog. Make one with :func:`open_corpus`."""

    def __init__(self, corpus: Corpus, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.corpus = corpus
        self._con = con

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[CorpusReader]:
        """A reader whose every call reads one snapshot (one connection, held until the block
        ends): figures computed from several queries then agree with each other.

        Example:
            >>> with open_corpus("corpus/").snapshot() as snap:  # doctest: +SKIP
            ...     kept, drops = snap.kept().collect(), snap.drop_counts().collect()
        """
        if self._con is not None:
            yield self
            return
        con = self.connect()
        try:
            yield CorpusReader(self.corpus, con)
        finally:
            con.close()

    @property
    def root(self) -> Path:
        return self.corpus.root

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB connection to the snapshot, with the text views pointed at this corpus
        (``document_text``, ``kept_text``). Close it when done; holding it open is harmless."""
        return Catalog.open(self.corpus, read_only=True).con

    def sql(self, query: str, params: Any = None) -> pl.DataFrame:
        """Run one read-only query on the catalog and return its rows.

        Example:
            >>> open_corpus("corpus/").sql("SELECT count(*) AS n FROM kept_text")  # doctest: +SKIP
        """
        con = self._con or self.connect()
        try:
            table = con.sql(query, params=params).to_arrow_table()
        finally:
            if con is not self._con:
                con.close()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def table(self, name: str) -> pl.LazyFrame:
        """One catalog table, whole (an empty frame with its columns when it has no rows)."""
        if name not in TABLES:
            raise ValueError(f"{name}: not a catalog table (one of {', '.join(TABLES)})")
        return self.sql(f"SELECT * FROM {name}").lazy()

    def _texts(self, files: list[str]) -> pl.LazyFrame:
        paths = [str(self.corpus.absolute(f)) for f in files if self.corpus.absolute(f).is_file()]
        if not paths:
            return pl.LazyFrame(schema={"id": pl.String, "text": pl.String})
        return pl.scan_parquet(
            paths,
            schema={"id": pl.String, "text": pl.String},
            missing_columns="insert",
            extra_columns="ignore",
        )

    def documents(self, where: str = "TRUE") -> pl.LazyFrame:
        """Every document's catalog row, with its ``text`` joined lazily from its Parquet file.

        Args:
            where: a SQL condition on ``documents`` (no parameters; for a filter the catalog
                applies before anything reaches polars, e.g. ``"source = 'code'"``).
        """
        docs = self.sql(f'SELECT * FROM documents WHERE {where} ORDER BY file, "row"')
        files = sorted(set(docs.get_column("file").to_list())) if docs.height else []
        return docs.lazy().join(self._texts(files), on="id", how="left")

    def kept(self) -> pl.LazyFrame:
        """The documents no stage dropped (``drop_stage IS NULL``), with their text."""
        return self.documents("drop_stage IS NULL")

    def drops(self) -> pl.LazyFrame:
        """The dropped documents: ``drop_stage`` and ``drop_reason`` say which stage and why."""
        return self.documents("drop_stage IS NOT NULL")

    def drop_counts(self) -> pl.LazyFrame:
        """Documents dropped per stage, source and reason."""
        return self.table("drop_counts")

    def shards(self) -> pl.LazyFrame:
        """Every registered file: path (relative to the corpus), kind, sha256, bytes, rows, tokens."""
        return self.table("shards")

    def requests(self) -> pl.LazyFrame:
        """Every LLM request (generation and grading): status, tokens, cost, time."""
        return self.table("requests")

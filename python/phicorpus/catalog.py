"""The DuckDB catalog: every source, document, published file, stage run and drop decision.

One file, ``catalog.duckdb`` in the corpus directory, with one writer (the running pipeline).
The schema is versioned: :data:`MIGRATIONS` lists the SQL of each version in order, and opening
a catalog for writing applies the missing ones in a transaction. Every query the tool makes is
here or in a stage's own module, and every value goes in as a parameter, never into the SQL text.

Tables (version 1):

``sources``
    one row per document source (``code``, ``textbook``, ``bios``, ...) and its kind.
``documents``
    one row per document: id, source, kind, the Parquet file and row holding its text, sizes,
    provenance, topic/prompt metadata, and what each stage decided (quality drop reason, edu
    score, exact hash, duplicate cluster, decontamination hits, final drop stage/reason, tokens).
``shards``
    every published file (document Parquet, prompts, token shards, manifests): path relative to
    the corpus, kind, sha256, bytes, rows, tokens. ``phicorpus verify`` re-checks each one.
``stage_runs``
    each run of a stage with its parameters, status and statistics (JSON).
``drop_counts``
    documents dropped per stage, source and reason.

Version 2 adds ``ingest_skips`` (inputs skipped, with reason, file and line),
``quality_signals`` (per document), ``dup_stats`` and ``dup_cluster_sizes``, ``decontam_hits``;
the views ``document_text`` and ``kept_text`` join documents to their text in Parquet.

Readers and the writer (DuckDB lets one process write a file, and a reader's lock blocks it):
the pipeline never writes the file readers open. It writes its own file,
``.catalog-writer.duckdb``, which nothing else opens; after each write session (and after a commit
when :data:`PUBLISH_INTERVAL` seconds have passed since the last one) it checkpoints that file and
publishes a copy of it as ``catalog.duckdb`` by an atomic rename. Readers (``phicorpus sql``,
``stats``, ``report``, ``open_corpus``, ``duckdb -readonly catalog.duckdb``) open only that
snapshot, so however many there are and however long they hold it open, the build never waits for
them and never fails because of them. What a reader sees: the catalog as of the writer's last
publish (a finished stage, or a commit at most a few seconds before, never half a transaction);
a connection held open keeps the snapshot it opened (the renamed-over file lives on while it is
open) and sees newer data when it is opened again. Publishing copies the catalog file (about
50 ms for 30 MB) and is skipped when nothing changed.

Example:
    >>> with Catalog.open(Corpus.create("corpus/")) as catalog:  # doctest: +SKIP
    ...     catalog.exec("SELECT source, count(*) FROM documents GROUP BY ALL")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from phicorpus.corpus import TMP_SUFFIX, Corpus, CorpusError, atomic_path, cheap_file_problem, sha256_file

__all__ = [
    "MIGRATIONS",
    "Catalog",
    "CatalogError",
    "FileProblem",
    "ShardRecord",
    "interruptible",
    "kept_counts",
    "kept_documents",
    "open_sql_connection",
    "params_hash",
    "verify_catalog",
    "verify_files",
]


class CatalogError(Exception):
    """The catalog cannot be opened or is newer than this phicorpus."""


# Version N's statements turn a version N-1 catalog into a version N one. Append, never edit.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE sources (
            name VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,          -- code | synthetic | offline | web | benchmark
            origin VARCHAR,                 -- where the documents come from, for the plan and stats
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE documents (
            id VARCHAR PRIMARY KEY,         -- '<source>/<16 hex>', deterministic from provenance
            source VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,          -- code | textbook | exercises | stories | bios | rewrite | ...
            file VARCHAR NOT NULL,          -- Parquet shard holding the text, relative to the corpus
            "row" BIGINT NOT NULL,          -- row of the document in that shard
            provenance VARCHAR,             -- JSON: path/repo/license, request key, generator params
            chars BIGINT,
            bytes BIGINT,
            lines BIGINT,
            language VARCHAR,
            license VARCHAR,
            topic_id VARCHAR,
            subject VARCHAR,
            format VARCHAR,
            audience VARCHAR,
            prompt_id VARCHAR,
            quality_reason VARCHAR,         -- filter: first failing rule, NULL = passed
            edu_score DOUBLE,               -- educational-value classifier score (0-5)
            exact_hash UBIGINT,
            dup_cluster VARCHAR,            -- id of the kept document of its near-duplicate cluster
            decontam_hits INTEGER,
            drop_stage VARCHAR,             -- first stage that dropped it (NULL = kept)
            drop_reason VARCHAR,
            tokens BIGINT
        )""",
        "CREATE INDEX documents_source ON documents (source)",
        """CREATE TABLE shards (
            path VARCHAR PRIMARY KEY,       -- relative to the corpus root
            kind VARCHAR NOT NULL,          -- docs | prompts | requests | tokens-bin | tokens-idx | ...
            source VARCHAR,
            stage VARCHAR,
            sha256 VARCHAR NOT NULL,
            bytes BIGINT NOT NULL,
            rows BIGINT,
            tokens BIGINT,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        "CREATE SEQUENCE stage_run_ids START 1",
        """CREATE TABLE stage_runs (
            id BIGINT PRIMARY KEY DEFAULT nextval('stage_run_ids'),
            stage VARCHAR NOT NULL,
            params VARCHAR NOT NULL,        -- JSON of the parameters that define the output
            params_hash VARCHAR NOT NULL,
            status VARCHAR NOT NULL,        -- running | done | failed
            started_at TIMESTAMP DEFAULT current_timestamp,
            finished_at TIMESTAMP,
            stats VARCHAR                   -- JSON
        )""",
        """CREATE TABLE drop_counts (
            stage VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (stage, source, reason)
        )""",
    ],
    # Catalog/ingest/filter/dedup stream (issue 3).
    2: [
        # Inputs an ingest skipped or could not read, with the reason (and line, for bad JSON).
        """CREATE TABLE ingest_skips (
            source VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            line BIGINT NOT NULL,           -- 0 when the whole file is skipped
            reason VARCHAR NOT NULL,        -- binary | generated | vendored | minified | oversized | ...
            detail VARCHAR,
            PRIMARY KEY (source, path, line)
        )""",
        # Signals the filter computed, one row per document it scored.
        """CREATE TABLE quality_signals (
            id VARCHAR PRIMARY KEY,
            rule_set VARCHAR NOT NULL,      -- prose | code
            n_chars BIGINT,
            n_words BIGINT,
            mean_word_length DOUBLE,
            alpha_word_frac DOUBLE,
            stop_word_count BIGINT,
            dup_line_frac DOUBLE,
            code_lines BIGINT,
            code_max_line_len BIGINT,
            code_mean_line_len DOUBLE,
            code_alnum_frac DOUBLE,
            code_autogenerated BOOLEAN,
            edu_score DOUBLE,
            reason VARCHAR                  -- first failing rule, NULL = passed
        )""",
        # Duplicate statistics of the last dedup run, per source and per topic.
        """CREATE TABLE dup_stats (
            grouping VARCHAR NOT NULL,      -- source | topic
            key VARCHAR NOT NULL,
            documents BIGINT NOT NULL,
            exact_dups BIGINT NOT NULL,
            near_dups BIGINT NOT NULL,
            dup_rate DOUBLE NOT NULL,
            PRIMARY KEY (grouping, key)
        )""",
        """CREATE TABLE dup_cluster_sizes (
            size BIGINT PRIMARY KEY,        -- documents in a cluster (exact and near duplicates)
            clusters BIGINT NOT NULL
        )""",
        # Benchmark overlaps found by the last decontamination run.
        """CREATE TABLE decontam_hits (
            benchmark VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            documents BIGINT NOT NULL,      -- documents overlapping this benchmark
            ngram_hits BIGINT NOT NULL,
            PRIMARY KEY (benchmark, source)
        )""",
    ],
    # Generation stream: requests (mirrors the journal in requests/, which stays the source of truth
    # for "was this key paid"), verification verdicts, pass@k per prompt, judge scores.
    3: [
        """CREATE TABLE requests (
            key VARCHAR PRIMARY KEY,        -- sha256 of model, parameters, messages, sample index
            purpose VARCHAR NOT NULL,       -- generate | grade
            prompt_id VARCHAR,
            sample INTEGER,
            model VARCHAR,
            endpoint VARCHAR,               -- URL, or 'batch:<batch id>'
            status VARCHAR NOT NULL,        -- done | failed
            attempts INTEGER,
            finish_reason VARCHAR,
            prompt_tokens BIGINT,
            completion_tokens BIGINT,
            cost DOUBLE,                    -- USD from the response's usage
            error VARCHAR,                  -- reason of the last failure
            doc_id VARCHAR,
            updated_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE verifications (
            doc_id VARCHAR PRIMARY KEY,
            prompt_id VARCHAR,
            check_kind VARCHAR NOT NULL,    -- exercise-tests | story-words
            status VARCHAR NOT NULL,        -- passed | failed | unverified
            reason VARCHAR,
            seconds DOUBLE,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE pass_at_k (
            prompt_id VARCHAR PRIMARY KEY,
            n INTEGER NOT NULL,             -- samples verified
            c INTEGER NOT NULL,             -- samples passing
            pass_at_1 DOUBLE,
            pass_at_k DOUBLE,               -- k = n (any sample passes)
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE scores (
            doc_id VARCHAR NOT NULL,
            rubric VARCHAR NOT NULL,        -- tinystories | edu
            metric VARCHAR NOT NULL,        -- grammar | creativity | consistency | educational_value
            value DOUBLE NOT NULL,
            judge VARCHAR,                  -- judge model
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (doc_id, rubric, metric)
        )""",
    ],
    # Rephrasing (issue 16): each rephrased document and the source chunk it rewrites.
    8: [
        """CREATE TABLE IF NOT EXISTS rephrases (
            doc_id VARCHAR PRIMARY KEY,     -- the rephrased document (documents.id)
            source_id VARCHAR NOT NULL,     -- the original document it rewrites (documents.id)
            format VARCHAR NOT NULL,        -- wrap_easy | nemo_qa | fp_table | rewire | ...
            chunk INTEGER NOT NULL,         -- which chunk of the original (0-based) ...
            chunks INTEGER NOT NULL,        -- ... of how many (paragraph-boundary split)
            chunk_start BIGINT NOT NULL,    -- character span of the chunk in the original's text
            chunk_end BIGINT NOT NULL,
            route VARCHAR,                  -- paraphrase | knowledge (by quality) | weights
            quality DOUBLE,                 -- the classifier score that routed it
            reasoning VARCHAR,              -- REWIRE: the reasoning before the rewrite
            structure_items INTEGER,        -- QA pairs / list items / steps / problems found
            fact_retention DOUBLE,          -- share of the chunk's numbers, names, rare words kept
            copy_overlap DOUBLE,            -- share of the output's word n-grams copied from the chunk
            gate_reason VARCHAR             -- why the quality gates dropped it (NULL = passed)
        )""",
        "CREATE INDEX IF NOT EXISTS rephrases_source ON rephrases (source_id)",
    ],
}

#: The view joining ``documents`` to their text in Parquet. The glob is a session variable
#: (set with a parameter by :meth:`Catalog.open` and by ``phicorpus sql``), falling back to a
#: path relative to the working directory, so ``duckdb catalog.duckdb`` run inside the corpus
#: directory reads it too.
DOCUMENT_TEXT_VIEW = """CREATE OR REPLACE VIEW document_text AS
    SELECT d.*, t.text
    FROM documents d
    JOIN read_parquet(coalesce(getvariable('phicorpus_docs'), 'docs/*/*.parquet'), union_by_name = true) t
      ON t.id = d.id"""
KEPT_TEXT_VIEW = """CREATE OR REPLACE VIEW kept_text AS
    SELECT * FROM document_text WHERE drop_stage IS NULL"""

SCHEMA_VERSION = max(MIGRATIONS)

#: Seconds between snapshot publishes after commits inside one write session, at least (and at
#: least ten times what the last copy took); every session publishes when it closes, so a reader
#: is at most one stage behind.
PUBLISH_INTERVAL = 2.0
#: How long an open waits for a conflicting lock to go away: readers (a ``duckdb`` session that
#: opened the snapshot read-write holds it exclusively until the next publish replaces it) and
#: the writer (another phicorpus process writing the same corpus).
READ_LOCK_WAIT = 2.0
WRITE_LOCK_WAIT = 10.0
#: The oldest DuckDB that can read a catalog this phicorpus creates (the 1.4 LTS line): the
#: ``duckdb`` command line people have installed opens the snapshot, not only DuckDB 2.
STORAGE_VERSION = "v1.4.0"


def _is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def _connect(path: Path, *, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``, retrying with backoff while another process holds a conflicting
    lock.

    A reader gets a fresh in-memory database with the file attached read-only (``USE``d, so
    names need no prefix): ``duckdb.connect(path)`` would hand back a database this process
    already has open on that path, i.e. the snapshot as it was then, not the one published since.
    """
    deadline = time.monotonic() + wait
    delay = 0.02
    while True:
        try:
            if not read_only:
                return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})
            con = duckdb.connect()
            try:
                quoted = str(path).replace("'", "''")
                con.execute(f"ATTACH '{quoted}' AS catalog (READ_ONLY)").fetchall()
                con.execute("USE catalog").fetchall()
            except BaseException:
                con.close()
                raise
            return con
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc) and isinstance(
                exc, (duckdb.IOException, duckdb.SerializationException)
            ):
                raise  # the file itself is unreadable: Catalog.open says it is damaged
            if not _is_lock_conflict(exc) or time.monotonic() + delay > deadline:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CatalogError(f"{path}: cannot open catalog: {first}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


#: What to do about a catalog file DuckDB cannot read: the read snapshot, or the writer's file.
DAMAGED_ADVICE = (
    "the read snapshot is damaged; any stage run (e.g. phicorpus filter CORPUS) publishes it again "
    "from the writer's catalog"
)
WRITER_DAMAGED_ADVICE = (
    "the writer's catalog is damaged; put the last published snapshot in its place "
    "(cp catalog.duckdb .catalog-writer.duckdb) or restore a backup, then re-run (generated "
    "documents come back from requests/ without paying again)"
)


R = TypeVar("R")


def interruptible(con: duckdb.DuckDBPyConnection, query: Callable[[], R]) -> R:
    """Run ``query`` (a call on ``con``) so that Ctrl-C interrupts it and raises KeyboardInterrupt.

    Python only sees SIGINT between bytecodes, never inside a long DuckDB call, so on the main
    thread the call runs on a helper thread while the main thread waits; on Ctrl-C the query is
    interrupted (``con.interrupt()``), its thread is awaited, and ``KeyboardInterrupt`` raised.
    DuckDB's own interruption errors become ``KeyboardInterrupt`` too.
    """
    if threading.current_thread() is not threading.main_thread():
        return _translate_interrupt(query)
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, query()))
        except BaseException as exc:  # handed to the waiting thread
            box.append((False, exc))
        finally:
            done.set()

    worker = threading.Thread(target=run, name="phicorpus-query", daemon=True)
    worker.start()
    try:
        while not done.wait(0.25):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        done.wait()
        raise
    ok, value = box[0]
    if ok:
        result: R = value
        return result
    if _is_interrupt(value):
        raise KeyboardInterrupt from value
    raise value


def _is_interrupt(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "Query interrupted" in str(exc)
    )


def _translate_interrupt(query: Callable[[], R]) -> R:
    try:
        return query()
    except (duckdb.InterruptException, RuntimeError) as exc:
        if _is_interrupt(exc):
            raise KeyboardInterrupt from exc
        raise


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable hash of stage parameters (sorted-key JSON)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ShardRecord:
    path: str
    kind: str
    source: str | None
    stage: str | None
    sha256: str
    bytes: int
    rows: int | None
    tokens: int | None


class Catalog:
    """A connection to a corpus catalog. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, corpus: Corpus, read_only: bool) -> None:
        self.con = con
        self.corpus = corpus
        self.read_only = read_only
        self._published_at = time.monotonic()
        self._publish_seconds = 0.0

    @classmethod
    def open(cls, corpus: Corpus, *, read_only: bool = False) -> Catalog:
        """Open the catalog of ``corpus``: for reading, its published snapshot; for writing, the
        writer's file (created, or migrated, and published when the snapshot is behind it).

        Raises:
            CatalogError: no catalog yet (reading), another writer holds it for longer than
                :data:`WRITE_LOCK_WAIT`, the file is corrupt, or it is from a newer phicorpus.
        """
        try:
            if read_only:
                path = corpus.catalog_path
                if not path.is_file():
                    if corpus.writer_catalog_path.is_file():
                        raise CatalogError(
                            f"{path}: nothing published yet (the first stage is still running); try again"
                        )
                    raise CatalogError(f"{path}: no catalog (run a stage that creates the corpus first)")
                con = _connect(path, read_only=True, wait=READ_LOCK_WAIT)
            else:
                path = corpus.writer_catalog_path
                if not path.is_file() and corpus.catalog_path.is_file():
                    _adopt_snapshot(corpus)
                con = _connect(path, read_only=False, wait=WRITE_LOCK_WAIT)
                # Holding the write lock: a snapshot copy a killed writer left half-made is garbage.
                for name in (corpus.catalog_path.name, path.name):
                    for stale in corpus.root.glob(f".{name}.*{TMP_SUFFIX}"):
                        with contextlib.suppress(FileNotFoundError):
                            stale.unlink()
        except (duckdb.IOException, duckdb.SerializationException) as exc:
            # Not a lock (those _connect waits out or names): the file itself cannot be read.
            raise cls(None, corpus, read_only).damaged(exc, path) from exc  # type: ignore[arg-type]
        catalog = cls(con, corpus, read_only)
        try:
            catalog.exec("SET VARIABLE phicorpus_docs = ?", [catalog.docs_glob])
            catalog._migrate()
            if not read_only:
                catalog.refresh_views()
                # A snapshot behind this file (a writer killed before it published) is replaced,
                # but never by a writer's file that cannot be read whole (a truncated one).
                if not _same_database_state(corpus.writer_catalog_path, corpus.catalog_path):
                    catalog.read_every_block()
                    catalog.publish()
        except duckdb.Error as exc:
            con.close()
            raise catalog.damaged(exc, path) from exc
        except BaseException:
            con.close()
            raise
        return catalog

    @property
    def docs_glob(self) -> str:
        """Absolute glob of every document Parquet file of the corpus."""
        return str(self.corpus.root / "docs" / "*" / "*.parquet")

    def refresh_views(self) -> None:
        """Create the text views once there is a registered document file to bind them to
        (a view whose SQL is already the current one is left alone: nothing to publish)."""
        if self.read_only or not self.shards(kind="docs"):
            return
        # Each view carries a hash of the SQL that made it (DuckDB rewrites the stored SQL).
        wanted = {
            name: "phicorpus:" + hashlib.sha256(sql.encode()).hexdigest()[:16]
            for name, sql in (("document_text", DOCUMENT_TEXT_VIEW), ("kept_text", KEPT_TEXT_VIEW))
        }
        current = dict(
            self.exec(
                "SELECT view_name, comment FROM duckdb_views() "
                "WHERE view_name IN ('document_text', 'kept_text') AND database_name = current_database()"
            )
        )
        if current == wanted:
            return
        try:
            for name, sql in (("document_text", DOCUMENT_TEXT_VIEW), ("kept_text", KEPT_TEXT_VIEW)):
                self.exec(sql)
                self.exec(f"COMMENT ON VIEW {name} IS '{wanted[name]}'")
        except duckdb.Error:
            pass  # a missing or corrupt file: `phicorpus verify` names it; the old views stay

    def read_every_block(self) -> None:
        """Read every block of every table (DuckDB checksums them): a damaged file raises."""
        tables = self.exec(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary ORDER BY table_name"
        )
        for (table,) in tables:
            quoted = '"' + str(table).replace('"', '""') + '"'
            self.exec(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {quoted}")

    def publish(self, *, force: bool = False) -> bool:
        """Publish the writer's catalog as the read snapshot ``catalog.duckdb`` (atomic rename).

        The file is checkpointed first (the WAL folded in), then copied while this connection
        still holds the write lock, so the copy is one committed state. Skipped (returns False)
        when the snapshot already has this file's size and modification time and this session
        changed nothing, or when a transaction is open on this connection.
        """
        if self.read_only:
            return False
        writer = self.corpus.writer_catalog_path
        snapshot = self.corpus.catalog_path
        try:
            self.con.execute("CHECKPOINT").fetchall()
        except duckdb.Error:
            return False  # a transaction is open; the close publishes
        wal = writer.with_name(writer.name + ".wal")
        if wal.is_file() and wal.stat().st_size:
            return False  # not fully checkpointed: never publish half a state
        if not force and _same_database_state(writer, snapshot):
            return False
        start = time.monotonic()
        with atomic_path(snapshot) as tmp:
            shutil.copyfile(writer, tmp)
        # A WAL beside the snapshot would be a `duckdb` session's that opened it read-write.
        with contextlib.suppress(FileNotFoundError):
            snapshot.with_name(snapshot.name + ".wal").unlink()
        self._published_at = time.monotonic()
        self._publish_seconds = self._published_at - start
        return True

    def close(self) -> None:
        try:
            if not self.read_only:
                with contextlib.suppress(duckdb.Error, OSError):
                    self.publish()
        finally:
            self.con.close()

    def exec(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one parameterised statement and fetch its rows.

        DuckDB >= 2.0 refuses the next statement on a connection while a result is unread, so
        every statement whose rows are not wanted still goes through here.
        """
        try:
            return interruptible(self.con, lambda: self.con.execute(sql, params).fetchall())
        except (duckdb.IOException, duckdb.FatalException, duckdb.SerializationException) as exc:
            # Reading the catalog file itself failed (a Parquet file a view reads is not the catalog).
            if isinstance(exc, duckdb.FatalException) or str(self.path) in str(exc):
                raise self.damaged(exc) from exc
            raise

    @property
    def path(self) -> Path:
        """The file this connection reads: the snapshot (reading) or the writer's file."""
        return self.corpus.catalog_path if self.read_only else self.corpus.writer_catalog_path

    def damaged(self, exc: BaseException, path: Path | None = None) -> CatalogError:
        """The error for a catalog file DuckDB cannot read (truncated, overwritten, torn)."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = path or self.path
        advice = WRITER_DAMAGED_ADVICE if where == self.corpus.writer_catalog_path else DAMAGED_ADVICE
        return CatalogError(f"{where}: catalog damaged ({first}); {advice}")

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run one parameterised statement and fetch its rows as a ``pyarrow.Table`` (no Python
        object per value; see :meth:`exec`)."""
        return interruptible(self.con, lambda: self.con.sql(sql, params=params).to_arrow_table())

    def exec_one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        """The first row of a statement (all rows are fetched; see :meth:`exec`)."""
        rows = self.exec(sql, params)
        return rows[0] if rows else None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        # duckdb_tables() answers in a millisecond; information_schema costs tens (every open).
        exists = self.exec_one(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version' "
            "AND database_name = current_database()"
        )
        if not exists or not exists[0]:
            return 0
        row = self.exec_one("SELECT max(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.corpus.catalog_path}: schema version {current} is newer than this phicorpus "
                f"({SCHEMA_VERSION}); upgrade phicorpus"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise CatalogError(
                f"{self.corpus.catalog_path}: schema version {current}, expected {SCHEMA_VERSION}; "
                "open it once for writing (any stage) to migrate"
            )
        with self.transaction():
            self.exec(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            # in order; numbers may have gaps while branches that own them are not merged yet
            for version in sorted(v for v in MIGRATIONS if v > current):
                for statement in MIGRATIONS[version]:
                    self.exec(statement)
                self.exec("INSERT INTO schema_version (version) VALUES (?)", [version])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT, or ROLLBACK if the block raises."""
        self.exec("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.exec("ROLLBACK")
            raise
        self.exec("COMMIT")
        # At most every PUBLISH_INTERVAL seconds, and never more than a tenth of the time
        # (a large catalog takes a while to copy).
        interval = max(PUBLISH_INTERVAL, 10 * self._publish_seconds)
        if not self.read_only and time.monotonic() - self._published_at >= interval:
            with contextlib.suppress(duckdb.Error, OSError):
                self.publish()

    # -- sources and documents --------------------------------------------------------------------

    def ensure_source(self, name: str, kind: str, origin: str | None = None) -> None:
        self.exec(
            "INSERT INTO sources (name, kind, origin) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, origin = excluded.origin",
            [name, kind, origin],
        )

    def insert_documents(self, rows: Any, *, skip_existing: bool = False) -> int:
        """Insert document rows (an Arrow table or anything DuckDB can scan) by column name.

        Columns not given stay NULL. Call inside :meth:`transaction` together with
        :meth:`register_shard` of the Parquet file that holds their text. ``skip_existing``: rows
        whose id is already in the catalog are left out (a lost shard written again), and the
        count is of the rows inserted.
        """
        self.con.register("_phicorpus_new_documents", rows)
        try:
            where = " WHERE id NOT IN (SELECT id FROM documents)" if skip_existing else ""
            n = self.exec_one(f"SELECT count(*) FROM _phicorpus_new_documents{where}")
            self.exec(f"INSERT INTO documents BY NAME SELECT * FROM _phicorpus_new_documents{where}")
        finally:
            self.con.unregister("_phicorpus_new_documents")
        return int(n[0]) if n else 0

    def insert_skips(self, source: str, skips: Iterable[tuple[str, int, str, str | None]]) -> None:
        """Record skipped inputs ``(path, line, reason, detail)`` of ``source`` in ``ingest_skips``
        in one statement (a row-at-a-time upsert costs milliseconds each); a skip already recorded
        at the same place is replaced, the last one given wins."""
        import pyarrow as pa

        unique = {(path, line): (reason, detail) for path, line, reason, detail in skips}
        if not unique:
            return
        table = pa.table(
            {
                "source": pa.array([source] * len(unique), pa.string()),
                "path": pa.array([k[0] for k in unique], pa.string()),
                "line": pa.array([k[1] for k in unique], pa.int64()),
                "reason": pa.array([v[0] for v in unique.values()], pa.string()),
                "detail": pa.array([v[1] for v in unique.values()], pa.string()),
            }
        )
        self.con.register("_phicorpus_new_skips", table)
        try:
            self.exec("INSERT OR REPLACE INTO ingest_skips BY NAME SELECT * FROM _phicorpus_new_skips")
        finally:
            self.con.unregister("_phicorpus_new_skips")

    # -- published files ----------------------------------------------------------------------

    def register_shard(
        self,
        path: str | Path,
        kind: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
        rows: int | None = None,
        tokens: int | None = None,
        source: str | None = None,
        stage: str | None = None,
    ) -> None:
        """Record a file that is already in place (published with ``corpus.atomic_path``).

        ``sha256`` and ``size`` are read from the file when not given (a writer that hashed while
        writing passes its own).
        """
        if sha256 is None or size is None:
            on_disk = Path(path) if Path(path).is_absolute() else self.corpus.absolute(str(path))
            sha256 = sha256 if sha256 is not None else sha256_file(on_disk)
            size = size if size is not None else on_disk.stat().st_size
        rel = self.corpus.relative(path) if Path(path).is_absolute() else str(path)
        self.register_shards([ShardRecord(rel, kind, source, stage, sha256, size, rows, tokens)])

    def register_shards(self, records: Sequence[ShardRecord]) -> None:
        """Record files already in place, ``path`` relative to the corpus, in one statement (DuckDB
        takes milliseconds per ``INSERT OR REPLACE``, whatever its size); the last record of a
        path wins."""
        import pyarrow as pa

        last = {r.path: r for r in records}
        if not last:
            return
        rows = list(last.values())
        table = pa.table(
            {
                "path": pa.array([r.path for r in rows], pa.string()),
                "kind": pa.array([r.kind for r in rows], pa.string()),
                "source": pa.array([r.source for r in rows], pa.string()),
                "stage": pa.array([r.stage for r in rows], pa.string()),
                "sha256": pa.array([r.sha256 for r in rows], pa.string()),
                "bytes": pa.array([r.bytes for r in rows], pa.int64()),
                "rows": pa.array([r.rows for r in rows], pa.int64()),
                "tokens": pa.array([r.tokens for r in rows], pa.int64()),
            }
        )
        self.con.register("_phicorpus_new_shards", table)
        try:
            self.exec(
                "INSERT OR REPLACE INTO shards (path, kind, source, stage, sha256, bytes, rows, tokens) "
                "SELECT path, kind, source, stage, sha256, bytes, rows, tokens FROM _phicorpus_new_shards"
            )
        finally:
            self.con.unregister("_phicorpus_new_shards")

    def shards(self, kind: str | None = None, source: str | None = None) -> list[ShardRecord]:
        rows = self.exec(
            "SELECT path, kind, source, stage, sha256, bytes, rows, tokens FROM shards "
            "WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR source = ?) ORDER BY path",
            [kind, kind, source, source],
        )
        return [ShardRecord(*row) for row in rows]

    def shards_at(self, path: str | Path) -> list[ShardRecord]:
        """The record of one registered file (a list of at most one)."""
        rel = self.corpus.relative(path) if Path(path).is_absolute() else str(path)
        rows = self.exec(
            "SELECT path, kind, source, stage, sha256, bytes, rows, tokens FROM shards WHERE path = ?", [rel]
        )
        return [ShardRecord(*row) for row in rows]

    def unsound_files(self, *, source: str | None = None, stage: str | None = None) -> list[str]:
        """Registered files (of ``source`` / ``stage``) that fail the cheap check: missing, another
        size, or a broken Parquet footer / index header. A stage runs it before skipping itself."""
        return [
            record.path
            for record in self.shards(source=source)
            if (stage is None or record.stage == stage)
            and cheap_file_problem(self.corpus.absolute(record.path), record.bytes) is not None
        ]

    def is_registered(self, path: str | Path) -> bool:
        rel = self.corpus.relative(path) if Path(path).is_absolute() else str(path)
        row = self.exec_one("SELECT count(*) FROM shards WHERE path = ?", [rel])
        return bool(row and row[0])

    # -- stage runs and drops ---------------------------------------------------------------------

    def start_stage(self, stage: str, params: Mapping[str, Any]) -> int:
        row = self.exec_one(
            "INSERT INTO stage_runs (stage, params, params_hash, status) VALUES (?, ?, ?, 'running') "
            "RETURNING id",
            [stage, json.dumps(params, sort_keys=True, default=str), params_hash(params)],
        )
        assert row is not None
        return int(row[0])

    def finish_stage(self, run_id: int, stats: Mapping[str, Any], status: str = "done") -> None:
        self.exec(
            "UPDATE stage_runs SET status = ?, finished_at = current_timestamp, stats = ? WHERE id = ?",
            [status, json.dumps(stats, sort_keys=True, default=str), run_id],
        )

    def stage_done(self, stage: str, params: Mapping[str, Any]) -> bool:
        """Whether ``stage`` has finished with exactly these parameters."""
        row = self.exec_one(
            "SELECT count(*) FROM stage_runs WHERE stage = ? AND params_hash = ? AND status = 'done'",
            [stage, params_hash(params)],
        )
        return bool(row and row[0])

    def add_drop_counts(self, stage: str, source: str, counts: Mapping[str, int]) -> None:
        """Add to the drop counts of ``stage`` for ``source`` (one row per reason)."""
        for reason, count in counts.items():
            if count:
                self.exec(
                    "INSERT INTO drop_counts (stage, source, reason, count) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (stage, source, reason) DO UPDATE SET count = drop_counts.count + ?",
                    [stage, source, reason, int(count), int(count)],
                )

    def recount_drops(self, stage: str) -> None:
        """Replace every drop count of ``stage`` with a count of the documents it dropped."""
        self.exec("DELETE FROM drop_counts WHERE stage = ?", [stage])
        self.exec(
            "INSERT INTO drop_counts (stage, source, reason, count) "
            "SELECT ?, source, drop_reason, count(*) FROM documents WHERE drop_stage = ? GROUP BY ALL",
            [stage, stage],
        )

    def set_drop_counts(self, stage: str, source: str, counts: Mapping[str, int]) -> None:
        """Replace the drop counts of ``stage`` for ``source`` (a stage that recomputes them all)."""
        self.exec("DELETE FROM drop_counts WHERE stage = ? AND source = ?", [stage, source])
        self.add_drop_counts(stage, source, counts)


#: DuckDB's file header and its two alternating database headers (each checkpoint writes one,
#: with an incremented iteration count): equal bytes and size mean the same checkpointed state.
_HEADER_BYTES = 3 * 4096


def _same_database_state(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read(_HEADER_BYTES) == fb.read(_HEADER_BYTES)
    except FileNotFoundError:
        return False


def _adopt_snapshot(corpus: Corpus) -> None:
    """Make the writer's file from ``catalog.duckdb`` (a corpus from before the writer had its own
    file, or one copied without its hidden files); its WAL comes along so nothing is lost."""
    src = corpus.catalog_path
    dst = corpus.writer_catalog_path
    wal = src.with_name(src.name + ".wal")
    if wal.is_file():
        with atomic_path(dst.with_name(dst.name + ".wal")) as tmp:
            shutil.copyfile(wal, tmp)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A registered file that is missing or does not match its record."""

    path: str
    problem: str


def verify_catalog(catalog: Catalog) -> list[FileProblem]:
    """Read every block of every catalog table, and check the documents against their Parquet.

    DuckDB checksums each block, so reading all of them finds a truncated or overwritten catalog;
    then each document file the ``documents`` table points at must be registered and its Parquet
    footer must hold every row a document points at.

    Returns:
        the problems, each naming ``catalog.duckdb`` or the document file.
    """
    name = catalog.corpus.relative(catalog.corpus.catalog_path)
    try:
        tables = [
            row[0]
            for row in catalog.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND NOT temporary ORDER BY table_name"
            ).fetchall()
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            catalog.con.execute(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {quoted}").fetchall()
        pointed = catalog.con.execute(
            'SELECT file, count(*), max("row") FROM documents GROUP BY file ORDER BY file'
        ).fetchall()
    except duckdb.InterruptException as exc:
        raise KeyboardInterrupt from exc
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [FileProblem(name, f"damaged ({first}); {DAMAGED_ADVICE}")]
    import pyarrow as pa
    import pyarrow.parquet as pq

    registered = {record.path for record in catalog.shards()}
    problems: list[FileProblem] = []
    for file, documents, last_row in pointed:
        if file not in registered:
            problems.append(FileProblem(file, f"not registered, though {documents} documents point at it"))
            continue
        path = catalog.corpus.absolute(file)
        if not path.is_file():
            continue  # verify_files names it missing
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            problems.append(FileProblem(file, f"corrupt (Parquet footer unreadable: {exc})"))
            continue
        if last_row >= rows:
            problems.append(
                FileProblem(file, f"corrupt (Parquet has {rows} rows, a document points at row {last_row})")
            )
    return problems


def kept_documents(catalog: Catalog, source: str) -> list[tuple[str, str, int]]:
    """``(id, file, row)`` of the kept documents of ``source`` (``drop_stage IS NULL``), in file
    and row order: the order of a source's documents in its token caches and mix plan."""
    rows = catalog.exec(
        'SELECT id, file, "row" FROM documents WHERE source = ? AND drop_stage IS NULL ORDER BY file, "row"',
        [source],
    )
    return [(str(i), str(f), int(r)) for i, f, r in rows]


def kept_counts(catalog: Catalog) -> dict[str, tuple[int, int]]:
    """Source -> (kept documents, their tokens): counted tokens once every kept document of the
    source is tokenized, else characters / 4 (0 where unknown)."""
    rows = catalog.exec(
        "SELECT source, count(*), count(tokens), coalesce(sum(tokens), 0), coalesce(sum(chars), 0) "
        "FROM documents WHERE drop_stage IS NULL GROUP BY source ORDER BY source"
    )
    return {str(s): (int(n), int(t) if k == n else int(c) // 4) for s, n, k, t, c in rows}


def verify_files(catalog: Catalog) -> tuple[int, list[FileProblem]]:
    """Re-check every registered file: present, same size, same sha256.

    Returns:
        ``(files checked, problems)``; each problem names the file, relative to the corpus.
    """
    problems: list[FileProblem] = []
    records = catalog.shards()
    for record in records:
        path = catalog.corpus.absolute(record.path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(FileProblem(record.path, "missing"))
            continue
        except OSError as exc:
            problems.append(FileProblem(record.path, f"unreadable ({exc.strerror})"))
            continue
        if size != record.bytes:
            problems.append(FileProblem(record.path, f"corrupt (size {size}, expected {record.bytes})"))
            continue
        try:
            digest = sha256_file(path)
        except OSError as exc:
            problems.append(FileProblem(record.path, f"unreadable ({exc.strerror})"))
            continue
        if digest != record.sha256:
            problems.append(FileProblem(record.path, "corrupt (sha256 differs)"))
    return len(records), problems


def open_sql_connection(root: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection for user SQL: it reads the catalog and the corpus text, writes nothing.

    DuckDB's ``allowed_directories`` lets a writer (``COPY ... TO``, ``EXPORT DATABASE``) into an
    allowed directory as well as a reader, so no directory is allowed: external access is switched
    off entirely (and locked), and the text views read the registered document Parquet files
    through an Arrow dataset opened by phicorpus before the switch (temporary views shadowing the
    catalog's ``document_text`` / ``kept_text``). A registered file that is missing is left out of
    the views (``phicorpus verify`` names it).
    """
    try:
        corpus = Corpus.open(root)
    except CorpusError as exc:
        raise CatalogError(str(exc)) from exc
    catalog = Catalog.open(corpus, read_only=True)
    con = catalog.con
    try:
        con.register(SQL_DOCS_RELATION, _docs_dataset(catalog))
        con.execute("SET enable_external_access = false").fetchall()
        con.execute("SET autoinstall_known_extensions = false").fetchall()
        con.execute("SET autoload_known_extensions = false").fetchall()
        con.execute("SET enable_progress_bar = false").fetchall()
        con.execute("SET lock_configuration = true").fetchall()
        con.execute(SQL_DOCUMENT_TEXT_VIEW).fetchall()
        con.execute(SQL_KEPT_TEXT_VIEW).fetchall()
    except BaseException:
        con.close()
        raise
    return con


#: The Arrow dataset of document text registered on a ``phicorpus sql`` connection, and the
#: temporary views over it (same columns as :data:`DOCUMENT_TEXT_VIEW`).
SQL_DOCS_RELATION = "_phicorpus_docs"
SQL_DOCUMENT_TEXT_VIEW = f"""CREATE OR REPLACE TEMP VIEW document_text AS
    SELECT d.*, t.text FROM documents d JOIN {SQL_DOCS_RELATION} t ON t.id = d.id"""
SQL_KEPT_TEXT_VIEW = """CREATE OR REPLACE TEMP VIEW kept_text AS
    SELECT * FROM document_text WHERE drop_stage IS NULL"""


def _docs_dataset(catalog: Catalog) -> Any:
    """``(id, text)`` of every registered document Parquet file that is present, lazily read."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = [
        str(path)
        for record in catalog.shards(kind="docs")
        if (path := catalog.corpus.absolute(record.path)).is_file()
    ]
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    try:
        return ds.dataset(files, schema=schema, format="parquet")
    except (OSError, pa.ArrowInvalid) as exc:
        raise CatalogError(
            f"{catalog.corpus.root}: a document file is unreadable ({exc}); run phicorpus verify"
        ) from exc


def open_catalog(root: str | Path, *, read_only: bool = False, create: bool = False) -> Catalog:
    """Open the catalog of the corpus at ``root`` (creating the corpus when ``create``)."""
    try:
        corpus = Corpus.create(root) if create else Corpus.open(root)
    except CorpusError as exc:
        raise CatalogError(str(exc)) from exc
    return Catalog.open(corpus, read_only=read_only)

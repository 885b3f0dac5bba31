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

Example:
    >>> with Catalog.open(Corpus.create("corpus/")) as catalog:  # doctest: +SKIP
    ...     catalog.exec("SELECT source, count(*) FROM documents GROUP BY ALL")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from phicorpus.corpus import Corpus, CorpusError, sha256_file

__all__ = [
    "MIGRATIONS",
    "Catalog",
    "CatalogError",
    "FileProblem",
    "ShardRecord",
    "kept_counts",
    "kept_documents",
    "open_sql_connection",
    "params_hash",
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

    @classmethod
    def open(cls, corpus: Corpus, *, read_only: bool = False) -> Catalog:
        """Open (and for writing, create or migrate) the catalog of ``corpus``.

        Raises:
            CatalogError: the file is locked by another writer, corrupt, or from a newer phicorpus.
        """
        path = corpus.catalog_path
        if read_only and not path.is_file():
            raise CatalogError(f"{path}: no catalog (run a stage that creates the corpus first)")
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CatalogError(f"{path}: cannot open catalog: {first}") from exc
        catalog = cls(con, corpus, read_only)
        try:
            catalog.exec("SET VARIABLE phicorpus_docs = ?", [catalog.docs_glob])
            catalog._migrate()
            if not read_only:
                catalog.refresh_views()
        except BaseException:
            con.close()
            raise
        return catalog

    @property
    def docs_glob(self) -> str:
        """Absolute glob of every document Parquet file of the corpus."""
        return str(self.corpus.root / "docs" / "*" / "*.parquet")

    def refresh_views(self) -> None:
        """(Re)create the text views; they need at least one registered document file to bind."""
        if not self.read_only and self.shards(kind="docs"):
            try:
                self.exec(DOCUMENT_TEXT_VIEW)
                self.exec(KEPT_TEXT_VIEW)
            except duckdb.Error:
                pass  # a missing or corrupt file: `phicorpus verify` names it; the old views stay

    def close(self) -> None:
        self.con.close()

    def exec(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one parameterised statement and fetch its rows.

        DuckDB >= 2.0 refuses the next statement on a connection while a result is unread, so
        every statement whose rows are not wanted still goes through here.
        """
        return self.con.execute(sql, params).fetchall()

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
        exists = self.exec_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
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
            for version in range(current + 1, SCHEMA_VERSION + 1):
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

    # -- sources and documents --------------------------------------------------------------------

    def ensure_source(self, name: str, kind: str, origin: str | None = None) -> None:
        self.exec(
            "INSERT INTO sources (name, kind, origin) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, origin = excluded.origin",
            [name, kind, origin],
        )

    def insert_documents(self, rows: Any) -> int:
        """Insert document rows (an Arrow table or anything DuckDB can scan) by column name.

        Columns not given stay NULL. Call inside :meth:`transaction` together with
        :meth:`register_shard` of the Parquet file that holds their text.
        """
        self.con.register("_phicorpus_new_documents", rows)
        try:
            self.exec("INSERT INTO documents BY NAME SELECT * FROM _phicorpus_new_documents")
            n = self.exec_one("SELECT count(*) FROM _phicorpus_new_documents")
        finally:
            self.con.unregister("_phicorpus_new_documents")
        return int(n[0]) if n else 0

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
        self.exec(
            "INSERT OR REPLACE INTO shards (path, kind, source, stage, sha256, bytes, rows, tokens) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [rel, kind, source, stage, sha256, size, rows, tokens],
        )

    def shards(self, kind: str | None = None, source: str | None = None) -> list[ShardRecord]:
        rows = self.exec(
            "SELECT path, kind, source, stage, sha256, bytes, rows, tokens FROM shards "
            "WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR source = ?) ORDER BY path",
            [kind, kind, source, source],
        )
        return [ShardRecord(*row) for row in rows]

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


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A registered file that is missing or does not match its record."""

    path: str
    problem: str


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
    """A read-only connection for user SQL: no writes, file access only inside the corpus.

    External access is switched off after ``allowed_directories`` is set to the corpus root, so
    the text views still read the corpus's Parquet and nothing else; the switch cannot be turned
    back on in the session.
    """
    try:
        corpus = Corpus.open(root)
    except CorpusError as exc:
        raise CatalogError(str(exc)) from exc
    catalog = Catalog.open(corpus, read_only=True)
    con = catalog.con
    try:
        con.execute("SET allowed_directories = ?", [[str(corpus.root) + "/"]]).fetchall()
        con.execute("SET enable_external_access = false").fetchall()
        con.execute("SET autoinstall_known_extensions = false").fetchall()
        con.execute("SET lock_configuration = true").fetchall()
    except BaseException:
        con.close()
        raise
    return con


def open_catalog(root: str | Path, *, read_only: bool = False, create: bool = False) -> Catalog:
    """Open the catalog of the corpus at ``root`` (creating the corpus when ``create``)."""
    try:
        corpus = Corpus.create(root) if create else Corpus.open(root)
    except CorpusError as exc:
        raise CatalogError(str(exc)) from exc
    return Catalog.open(corpus, read_only=read_only)

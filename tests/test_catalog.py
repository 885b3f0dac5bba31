"""The catalog contract: schema, migrations, parameterised writes, atomic publishing."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from phicorpus.catalog import SCHEMA_VERSION, Catalog, CatalogError, open_catalog
from phicorpus.corpus import Corpus, atomic_path, sha256_file


def test_create_migrate_reopen(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "c")
    with Catalog.open(corpus) as cat:
        assert cat.version == SCHEMA_VERSION
        cat.ensure_source("code", "code", "stdlib")
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.version == SCHEMA_VERSION
        assert cat.exec("SELECT name, kind FROM sources") == [("code", "code")]


def test_text_that_looks_like_sql_round_trips(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path)
    evil = 'x\'); DROP TABLE documents; -- "$(rm -rf ~)" `ls` \x00 é'
    with Catalog.open(corpus) as cat, cat.transaction():
        cat.insert_documents(
            pa.table({"id": [evil], "source": ["s"], "kind": ["k"], "file": [evil], "row": [0]})
        )
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec("SELECT id, file FROM documents") == [(evil, evil)]


def test_transaction_rolls_back(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path)
    with Catalog.open(corpus) as cat:
        with pytest.raises(RuntimeError), cat.transaction():
            cat.ensure_source("a", "code")
            raise RuntimeError
        assert cat.exec("SELECT count(*) FROM sources") == [(0,)]


def test_atomic_path_publishes_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.bin"
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        1 / 0  # noqa: B018
    assert not target.exists() and os.listdir(tmp_path / "d") == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    corpus = Corpus.create(tmp_path)
    with Catalog.open(corpus) as cat:
        cat.register_shard(target, "docs", sha256=sha256_file(target), size=5, rows=1)
        assert cat.is_registered("d/f.bin")
        assert cat.shards("docs")[0].path == "d/f.bin"


def test_stage_runs_and_drop_counts(tmp_path: Path) -> None:
    with open_catalog(tmp_path, create=True) as cat:
        run = cat.start_stage("filter", {"a": 1})
        assert not cat.stage_done("filter", {"a": 1})
        cat.finish_stage(run, {"kept": 3})
        assert cat.stage_done("filter", {"a": 1}) and not cat.stage_done("filter", {"a": 2})
        cat.add_drop_counts("filter", "code", {"too_short": 2})
        cat.add_drop_counts("filter", "code", {"too_short": 3, "x": 0})
        assert cat.exec("SELECT reason, count FROM drop_counts") == [("too_short", 5)]


def test_missing_or_newer_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not a phicorpus corpus"):
        open_catalog(tmp_path / "nope")
    with open_catalog(tmp_path, create=True) as cat:
        cat.con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    with pytest.raises(CatalogError, match="newer than this phicorpus"):
        open_catalog(tmp_path)


def test_readers_open_a_published_snapshot_the_writer_never_waits_for(tmp_path: Path) -> None:
    import duckdb

    corpus = Corpus.create(tmp_path / "c")
    with Catalog.open(corpus) as cat:
        cat.ensure_source("a", "code")
        # Published when the session ends (or a commit PUBLISH_INTERVAL after the last publish):
        # a reader now sees the migrated, empty catalog.
        with Catalog.open(corpus, read_only=True) as reader:
            assert reader.exec("SELECT count(*) FROM sources") == [(0,)]
    assert corpus.writer_catalog_path.is_file() and corpus.catalog_path.is_file()
    held = duckdb.connect(str(corpus.catalog_path), read_only=True)  # a reader that never lets go
    assert held.execute("SELECT name FROM sources").fetchall() == [("a",)]
    with Catalog.open(corpus) as cat:  # the writer opens and commits regardless
        cat.ensure_source("b", "code")
    assert held.execute("SELECT count(*) FROM sources").fetchall() == [(1,)]  # its own snapshot
    with Catalog.open(corpus, read_only=True) as cat:  # a new reader sees the new state
        assert cat.exec("SELECT name FROM sources ORDER BY name") == [("a",), ("b",)]
    held.close()
    # Nothing changed: nothing republished.
    before = corpus.catalog_path.stat()
    with Catalog.open(corpus) as cat:
        cat.exec("SELECT count(*) FROM sources")
    after = corpus.catalog_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_old_layout_is_adopted_and_stale_copies_removed(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "c")
    with Catalog.open(corpus) as cat:
        cat.ensure_source("a", "code")
    # A corpus from before the writer had its own file (or copied without hidden files).
    corpus.writer_catalog_path.unlink()
    stale = corpus.root / ".catalog.duckdb.999.tmp"
    stale.write_bytes(b"half a copy")
    with Catalog.open(corpus) as cat:
        assert cat.exec("SELECT name FROM sources") == [("a",)]
    assert corpus.writer_catalog_path.is_file() and not stale.exists()


def test_nothing_published_yet_is_a_clear_error(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "c")
    cat = Catalog.open(corpus)
    try:
        corpus.catalog_path.unlink()  # as while the very first stage still runs
        with pytest.raises(CatalogError, match="nothing published yet"):
            Catalog.open(corpus, read_only=True)
    finally:
        cat.close()
    with Catalog.open(corpus, read_only=True) as reader:
        assert reader.version == SCHEMA_VERSION

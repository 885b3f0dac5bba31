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

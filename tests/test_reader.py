"""`phicorpus.open_corpus` (polars), the text views from anywhere and after a move, and
`phicorpus sql --format parquet` (issue 13)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from phicorpus import open_corpus
from phicorpus.catalog import CatalogError
from phicorpus.cli import main

CONFIG = """[build]
bios_people = 100
vocab_size = 600
tokenizer_sample_bytes = 100000
"""


def duckdb_cli() -> str:
    """The `duckdb` command line (the test extra installs it beside this Python)."""
    path = Path(sys.executable).with_name("duckdb")
    found = str(path) if path.is_file() else shutil.which("duckdb")
    assert found, "no duckdb command line: pip install duckdb-cli (in the test extra)"
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("reader")
    code = tmp / "code"
    shutil.copytree(
        Path(sysconfig.get_paths()["stdlib"]) / "json", code, ignore=shutil.ignore_patterns("__pycache__")
    )
    (code / "dup.py").write_text((code / "decoder.py").read_text())  # an exact duplicate for dedup
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / "phicorpus.toml").write_text(CONFIG)
    result = CliRunner().invoke(
        main, ["build", "--mix", "synthetic:0.7,code:0.3", "--out", str(corpus), "--code", str(code)]
    )
    assert result.exit_code == 0, result.output
    yield corpus


def test_open_corpus_frames_match_the_catalog(built: Path) -> None:
    corpus = open_corpus(built)
    documents = corpus.documents()
    assert isinstance(documents, pl.LazyFrame)
    all_docs = documents.collect()
    n = (
        duckdb.connect(str(built / "catalog.duckdb"), read_only=True)
        .execute("SELECT count(*) FROM documents")
        .fetchall()[0][0]
    )
    assert all_docs.height == n and all_docs.get_column("text").null_count() == 0
    kept = corpus.kept().collect()
    drops = corpus.drops().collect()
    assert kept.height + drops.height == n
    assert kept.get_column("drop_stage").null_count() == kept.height
    assert "exact_duplicate" in drops.get_column("drop_reason").to_list()
    # Text comes from the Parquet file each row names: the oracle is pyarrow reading that file.
    row = kept.filter(pl.col("source") == "code").row(0, named=True)
    oracle = pq.read_table(built / row["file"], columns=["text"]).column("text")[row["row"]].as_py()
    assert row["text"] == oracle
    # Lazy: a query that never selects text reads only the id column of the Parquet files.
    plan = corpus.kept().select("id", "source").explain()
    assert "Parquet SCAN" in plan and "PROJECT 1/2 COLUMNS" in plan
    by_source = corpus.kept().group_by("source").agg(pl.len().alias("n")).collect()
    assert dict(by_source.iter_rows()) == dict(
        corpus.sql("SELECT source, count(*) FROM documents WHERE drop_stage IS NULL GROUP BY ALL").iter_rows()
    )
    shards = corpus.shards().collect()
    assert {"docs", "tokens-bin", "manifest", "tokenizer"} <= set(shards.get_column("kind").to_list())
    assert corpus.requests().collect().height == 0  # offline build: no LLM requests, but the columns
    assert "cost" in corpus.requests().collect_schema()
    assert corpus.drop_counts().collect().get_column("count").sum() == drops.height
    frame = corpus.sql("SELECT count(*) AS n FROM kept_text WHERE source = ?", ["code"])
    assert isinstance(frame, pl.DataFrame)
    assert frame.item() == kept.filter(pl.col("source") == "code").height
    with pytest.raises(ValueError, match="not a catalog table"):
        corpus.table("documents; DROP TABLE documents")
    with pytest.raises(CatalogError, match="not a phicorpus corpus"):
        open_corpus(built / "nope")


def test_views_work_from_anywhere_and_after_a_move(built: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(built, moved)
    expected = open_corpus(built).sql("SELECT count(*) FROM kept_text").item()
    assert expected > 0
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    here = os.getcwd()
    os.chdir(elsewhere)
    try:
        # phicorpus sql, from an unrelated directory, on the copy (the original is then removed).
        shutil.move(str(built), str(tmp_path / "gone"))
        try:
            result = CliRunner().invoke(
                main, ["sql", str(moved), "SELECT count(*) AS n FROM kept_text", "--format", "csv"]
            )
            assert result.exit_code == 0, result.output
            assert result.output.splitlines() == ["n", str(expected)]
            # Python.
            assert open_corpus(moved).sql("SELECT count(*) FROM document_text").item() >= expected
            # Plain DuckDB, as the README says: point file_search_path at the corpus.
            con = duckdb.connect(str(moved / "catalog.duckdb"), read_only=True)
            con.execute("SET file_search_path = ?", [str(moved)])
            assert con.execute("SELECT count(*) FROM kept_text").fetchall() == [(expected,)]
            con.close()
            rel = os.path.relpath(moved, elsewhere)
            script = (
                "import duckdb, sys; con = duckdb.connect(sys.argv[1] + '/catalog.duckdb', read_only=True); "
                'con.execute("SET file_search_path = \'" + sys.argv[1] + "\'"); '
                "print(con.execute('SELECT count(*) FROM kept_text').fetchall()[0][0])"
            )
            cmd = [sys.executable, "-c", script, rel]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            assert out.stdout.strip() == str(expected)
            # The duckdb command line, as the README writes it.
            cli = [
                duckdb_cli(),
                "-readonly",
                "-csv",
                "-cmd",
                f"SET file_search_path = '{rel}'",
                f"{rel}/catalog.duckdb",
                "-c",
                "SELECT count(*) AS n FROM kept_text",
            ]
            out = subprocess.run(cli, capture_output=True, text=True, check=False)
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == ["n", str(expected)]
        finally:
            shutil.move(str(tmp_path / "gone"), str(built))
    finally:
        os.chdir(here)


def test_sql_to_parquet(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "q" / "kept.parquet"
    query = "SELECT id, source, text FROM kept_text ORDER BY id"
    result = CliRunner().invoke(main, ["sql", str(built), query, "--format", "parquet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["id", "source", "text"]
    oracle = open_corpus(built).kept().select("id", "source", "text").sort("id").collect()
    assert table.to_pydict() == oracle.to_dict(as_series=False)
    csv_out = tmp_path / "n.csv"
    result = CliRunner().invoke(
        main, ["sql", str(built), "SELECT 1 AS one", "--format", "csv", "--out", str(csv_out)]
    )
    assert result.exit_code == 0 and csv_out.read_text().splitlines() == ["one", "1"]
    missing = CliRunner().invoke(main, ["sql", str(built), "SELECT 1", "--format", "parquet"])
    assert missing.exit_code != 0 and "--format parquet needs --out FILE" in missing.output
    bad = CliRunner().invoke(main, ["sql", str(built), "SELEC 1", "--format", "parquet", "--out", str(out)])
    assert bad.exit_code == 1 and bad.output.startswith("Error: ")
    assert pq.read_table(out).num_rows == table.num_rows  # a failed query leaves the old file alone
    assert [p.name for p in out.parent.iterdir()] == ["kept.parquet"]
    # A reader cannot reach the writer's own catalog (holding it would block the build).
    attach = f"ATTACH '{built / '.catalog-writer.duckdb'}' AS w"
    refused = CliRunner().invoke(main, ["sql", str(built), attach])
    assert refused.exit_code == 1 and "disabled by configuration" in refused.output

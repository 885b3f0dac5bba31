"""Bad input, as a new user gives it (issue 14): one-line errors naming the input, no writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from phicorpus.cli import main


@pytest.fixture(scope="module")
def code_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ingested code corpus (3 documents); tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("corpus")
    src = root / "src"
    src.mkdir()
    for i in range(3):
        (src / f"m{i}.py").write_text(f'"""Module {i}."""\n\ndef f(x):\n    return x + {i}\n')
    out = root / "c"
    result = CliRunner().invoke(main, ["ingest", "code", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _copy(corpus: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "c"
    shutil.copytree(corpus, target)
    return target


def test_sql_reads_the_corpus_and_writes_nothing(code_corpus: Path, tmp_path: Path) -> None:
    out = _copy(code_corpus, tmp_path)
    runner = CliRunner()
    shard = out / "build" / "main" / "train-00000.bin"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"\x01\x02shard")
    docs = next((out / "docs" / "code").glob("*.parquet"))
    before = {p: p.read_bytes() for p in (shard, docs, out / "catalog.duckdb")}
    writers = [
        f"COPY (SELECT 1 AS a) TO '{shard}' (FORMAT csv)",
        "COPY (SELECT 1 AS a) TO 'build/main/train-00000.bin' (FORMAT csv)",
        f"COPY (SELECT 1 AS a) TO '{docs}' (FORMAT parquet)",
        f"COPY documents TO '{tmp_path}/x.csv'",
        f"EXPORT DATABASE '{out}/export'",
        f"ATTACH '{out}/other.duckdb' AS other",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        f"SELECT * FROM read_parquet('{docs}')",
        "SELECT * FROM read_text('/etc/hostname')",
        "DELETE FROM documents",
    ]
    for query in writers:
        result = runner.invoke(main, ["sql", str(out), query])
        assert result.exit_code == 1 and result.output.startswith("Error: "), (query, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        if "read_" in query:
            assert "document_text and kept_text views" in result.output
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "x.csv").exists() and not (out / "export").exists()
    assert not (out / "other.duckdb").exists()
    # Reading the text still works.
    result = runner.invoke(main, ["sql", str(out), "SELECT count(*) AS n FROM kept_text", "--format", "csv"])
    assert result.exit_code == 0 and result.output.splitlines() == ["n", "3"], result.output
    q = "SELECT text FROM document_text WHERE text LIKE '%Module 2%'"
    result = runner.invoke(main, ["sql", str(out), q, "--format", "json"])
    assert result.exit_code == 0 and "x + 2" in json.loads(result.output)["text"]


def test_sql_json_is_valid_json(code_corpus: Path) -> None:
    q = "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, 1.5 AS c, [1.0, 'nan'::DOUBLE] AS d, NULL AS e"
    result = CliRunner().invoke(main, ["sql", str(code_corpus), q, "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert record == {"a": None, "b": None, "c": 1.5, "d": [1.0, None], "e": None}
    assert not any(isinstance(v, float) and math.isnan(v) for v in record.values())


def _one_line_error(result: Result, *needles: str) -> None:
    """Exit 1, the last line ``Error: ...``, no traceback, each needle in the output."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: "), result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def test_truncated_catalog_is_named_by_verify_stats_and_ingest(code_corpus: Path, tmp_path: Path) -> None:
    out = _copy(code_corpus, tmp_path)
    catalog = out / "catalog.duckdb"
    with open(catalog, "r+b") as fh:
        fh.truncate(catalog.stat().st_size // 2)
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(out)])
    _one_line_error(result, "catalog.duckdb: damaged", "restore catalog.duckdb", "no file was checked")
    for args in (["stats", str(out)], ["ingest", "code", str(tmp_path), "--out", str(out)],
                 ["sql", str(out), "SELECT count(*) FROM documents"], ["filter", str(out)]):  # fmt: skip
        result = runner.invoke(main, args)
        _one_line_error(result, "catalog damaged", str(catalog))
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_verify_checks_documents_against_registered_parquet(code_corpus: Path, tmp_path: Path) -> None:
    import duckdb

    out = _copy(code_corpus, tmp_path)
    docs = next((out / "docs" / "code").glob("*.parquet"))
    con = duckdb.connect(str(out / "catalog.duckdb"))
    con.execute("DELETE FROM shards WHERE kind = 'docs'")
    con.close()
    result = CliRunner().invoke(main, ["verify", str(out)])
    _one_line_error(result, f"docs/code/{docs.name}: not registered, though 3 documents point at it")
    assert "re-run the command that wrote them" in result.output

"""Bad input, as a new user gives it (issue 14): one-line errors naming the input, no writes."""

from __future__ import annotations

import json
import math
import os
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
    for args in (["stats", str(out)], ["sql", str(out), "SELECT count(*) FROM documents"]):
        result = runner.invoke(main, args)
        _one_line_error(result, "catalog damaged", str(catalog))
        assert len(result.output.strip().splitlines()) == 1, result.output
    # catalog.duckdb is the readers' snapshot: the next writer republishes it from its own file.
    result = runner.invoke(main, ["filter", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["verify", str(out)]).exit_code == 0
    # The writer's own file damaged: every command that writes says so, in one line.
    writer = out / ".catalog-writer.duckdb"
    with open(writer, "r+b") as fh:
        fh.truncate(writer.stat().st_size // 2)
    for args in (["ingest", "code", str(tmp_path), "--out", str(out)], ["filter", str(out)]):
        result = runner.invoke(main, args)
        _one_line_error(result, "catalog damaged", str(writer))
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


def _links(fds: Path) -> list[str]:
    """Targets of a process's open file descriptors (those still open while listed)."""
    targets = []
    try:
        for fd in fds.iterdir():
            try:
                targets.append(os.readlink(fd))
            except OSError:
                continue
    except OSError:
        pass
    return targets


def test_sigint_during_a_catalog_query_exits_130(code_corpus: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    query = "SELECT count(*) FROM range(100000000000) a"  # minutes of work
    child = subprocess.Popen(
        [sys.executable, "-m", "phicorpus.cli", "sql", str(code_corpus), query],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ready once the catalog is open (imports done, inside the command); then the query runs.
        deadline = time.monotonic() + 60
        fds = Path(f"/proc/{child.pid}/fd")
        while time.monotonic() < deadline and not any("catalog.duckdb" in t for t in _links(fds)):
            time.sleep(0.05)
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip().splitlines() == [
        "interrupted: stopped cleanly (nothing half-written was registered); "
        "re-run the same command to resume"
    ]


def test_ctrl_c_in_a_stage_exits_130_and_unexpected_errors_are_one_line(
    code_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import phicorpus.filter.stage as filter_stage

    out = _copy(code_corpus, tmp_path)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(filter_stage, "run_filter", interrupted)
    result = CliRunner().invoke(main, ["filter", str(out)])
    assert result.exit_code == 130 and "interrupted: stopped cleanly" in result.output

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("quality_reason")

    monkeypatch.setattr(filter_stage, "run_filter", broken)
    result = CliRunner().invoke(main, ["filter", str(out)])
    _one_line_error(result, "internal error (KeyError: 'quality_reason'); re-run with --traceback")
    result = CliRunner().invoke(main, ["--traceback", "filter", str(out)])
    assert isinstance(result.exception, KeyError)


@pytest.mark.parametrize("name", ["../../escape", "", "a/b", "..", ".", "x y", "/abs"])
def test_build_and_source_names_are_one_path_component(name: str, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "c"
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--out", str(out), "--name", name, "--tokens", "1000"])
    assert result.exit_code == 2 and "Invalid value for '--name'" in result.output, result.output
    assert "one path component" in result.output
    result = runner.invoke(main, ["ingest", "code", str(tmp_path), "--out", str(out), "--source", name])
    assert result.exit_code == 2 and "Invalid value for '--source'" in result.output, result.output
    # Nothing written anywhere: no configuration saved, nothing beside or above the corpus.
    assert not (out / "phicorpus.toml").exists() and not (out / "catalog.duckdb").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) in ([], ["deep"], ["c", "deep"])


def test_names_from_the_configuration_file_are_checked_too(tmp_path: Path) -> None:
    from phicorpus.config import Config, ConfigError
    from phicorpus.corpus import Corpus, CorpusError

    toml = tmp_path / "phicorpus.toml"
    toml.write_text('[build]\nname = "../../escape"\n')
    with pytest.raises(ConfigError, match=r"phicorpus.toml: build: name '../../escape' is not valid"):
        Config.load(toml)
    with pytest.raises(CorpusError, match="source name 'a/b' is not valid"):
        Corpus.create(tmp_path / "c").docs_dir("a/b")


@pytest.mark.parametrize(
    "args",
    [
        ["build", "--out", "{tmp}/c", "--seed", "-1"],
        ["bios", "--corpus", "{tmp}/c", "--people", "2", "--seed", "-1"],
        ["prompts", "--n", "2", "--out", "{tmp}/p.parquet", "--seed", "-1"],
    ],
)
def test_a_negative_seed_names_the_flag(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--seed': -1 is not in the range x>=0" in result.output
    assert not (tmp_path / "c" / "phicorpus.toml").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_ingest_names_skip_reasons_and_fails_when_every_input_is_bad(tmp_path: Path) -> None:
    runner = CliRunner()
    good = _write(tmp_path / "mixed.jsonl", b'{"content": "def a():\\n    return 1\\n"}\n{bad json\n'
                  b'{"text": "no content"}\n\xff{"content": "x"}\n')  # fmt: skip
    big = _write(tmp_path / "big.jsonl", json.dumps({"content": "x = 1\n" * 200_000}).encode() + b"\n")
    result = runner.invoke(main, ["ingest", "code", str(good), str(big), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["documents", "1"] in lines
    assert ["bad_json", "1"] in lines and ["no_content", "1"] in lines
    assert ["invalid_utf8", "1"] in lines and ["oversized", "1"] in lines
    assert f"{good}:2: bad_json" in result.output and f"{good}:4: invalid_utf8" in result.output
    oversized = "oversized (record of 1,400,016 bytes > ingest.max_record_bytes 1,000,000)"
    assert f"{big}:1: {oversized}" in result.output
    # The cap is configurable; --json gives the raw statistics.
    args = ["ingest", "code", str(big), "--out", str(tmp_path / "c2"), "--max-record-bytes", "2000000"]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["documents"] == 1, result.output

    bad = _write(tmp_path / "bad.jsonl", b'{"x": 1}\nnot json\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    stack = tmp_path / "stack.parquet"
    pq.write_table(pa.table({"text": ["def f(): pass"]}), stack)
    for inputs, needles in [
        ([bad], [f"no documents from {bad}: skipped 2 (", "bad_json 1", "no_content 1", f"{bad}:2: bad_"]),
        ([stack], [f"{stack}:0: no_content (no column 'content')"]),
    ]:
        result = runner.invoke(main, ["ingest", "code", *map(str, inputs), "--out", str(tmp_path / "c3")])
        _one_line_error(result, *needles)
        assert len(result.output.strip().splitlines()) == 1


def test_a_fifo_is_named_as_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "code.py"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["ingest", "code", str(fifo), "--out", str(tmp_path / "c")])
    _one_line_error(result, f"{fifo}:0: unreadable (a FIFO, not a regular file")
    assert "no such file" not in result.output
    web = tmp_path / "web.jsonl"
    os.mkfifo(web)
    args = ["prompts", "--n", "2", "--out", str(tmp_path / "p.parquet"), "--web", str(web)]
    result = CliRunner().invoke(main, args)
    _one_line_error(result, f"{web}:0: web file: a FIFO, not a regular file")


def test_invalid_utf8_in_a_web_file_names_file_and_line(tmp_path: Path) -> None:
    web = _write(tmp_path / "web.jsonl", b'{"text": "fine words about rivers"}\n{"text": "caf\xe9"}\n')
    args = ["prompts", "--n", "2", "--out", str(tmp_path / "p.parquet"), "--web", str(web)]
    result = CliRunner().invoke(main, args)
    _one_line_error(result, f"{web}:2: invalid UTF-8 (byte 13 of the line)")


def _module(i: int) -> str:
    import random

    rng = random.Random(i)
    return "\n".join(f"def f{j}(x):\n    return x * {rng.randint(0, 99)} + {j}" for j in range(30)) + "\n"


def test_rerunning_dedup_and_filter_recomputes_their_decisions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"m{i}.py").write_text(_module(i))
    out = tmp_path / "c"
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", "code", str(src), "--out", str(out)]).exit_code == 0

    def kept() -> int:
        result = runner.invoke(main, ["sql", str(out), "SELECT count(*) FROM kept_text", "--format", "csv"])
        return int(result.output.splitlines()[1])

    result = runner.invoke(main, ["dedup", str(out), "--threshold", "0"])
    assert result.exit_code == 0 and kept() == 1
    assert "warning: dedup dropped 91.7% of source 'code' (11 of 12 documents)" in result.output
    result = runner.invoke(main, ["dedup", str(out), "--json"])  # the default threshold again
    assert result.exit_code == 0 and json.loads(result.output)["near_duplicates"] == 0
    assert kept() == 12 and "warnings" not in json.loads(result.output)
    again = json.loads(runner.invoke(main, ["dedup", str(out), "--json"]).output)
    assert again["skipped"] and kept() == 12  # same parameters, same inputs: nothing recomputed

    # The edu filter: a classifier trained on labels (modules 0-5 good, 6-11 poor).
    labels = tmp_path / "labels.jsonl"
    q = "SELECT id, provenance->>'path' AS path FROM documents"
    result = runner.invoke(main, ["sql", str(out), q, "--format", "json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    score = {r["id"]: 5 if int(Path(r["path"]).stem[1:]) < 6 else 0 for r in rows}
    labels.write_text("".join(json.dumps({"id": i, "score": s}) + "\n" for i, s in score.items()))
    assert runner.invoke(main, ["classifier", "annotate", str(out), "--labels", str(labels)]).exit_code == 0
    result = runner.invoke(main, ["classifier", "train", str(out), "--holdout", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["filter", str(out), "--min-edu", "100", "--json"])
    assert result.exit_code == 0 and kept() == 0, result.output
    stats = json.loads(result.output)
    assert stats["warnings"] == ["filter dropped 100.0% of source 'code' (12 of 12 documents)"]
    result = runner.invoke(main, ["filter", str(out), "--min-edu", "0", "--json"])
    assert result.exit_code == 0 and kept() == 12, result.output
    assert json.loads(result.output)["restored"] == 12
    q = "SELECT count(*) FROM drop_counts WHERE stage = 'filter' AND count > 0"
    assert runner.invoke(main, ["sql", str(out), q, "--format", "csv"]).output.splitlines()[1] == "0"


def test_a_deleted_docs_parquet_is_one_line_and_a_rerun_of_its_stage_rewrites_it(
    code_corpus: Path, tmp_path: Path
) -> None:
    out = _copy(code_corpus, tmp_path)
    runner = CliRunner()
    docs = next((out / "docs" / "code").glob("*.parquet"))
    original = docs.read_bytes()
    docs.unlink()
    result = runner.invoke(main, ["filter", str(out)])
    _one_line_error(result, f"docs/code/{docs.name}: document file missing; run phicorpus verify")
    assert len(result.output.strip().splitlines()) == 1
    # The ingest that wrote it re-checks its recorded outputs and writes it again.
    src = str(code_corpus.parent / "src")
    result = runner.invoke(main, ["ingest", "code", src, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["shards_written"] == 1 and docs.read_bytes() == original
    assert runner.invoke(main, ["filter", str(out)]).exit_code == 0
    assert runner.invoke(main, ["verify", str(out)]).exit_code == 0

    bios = tmp_path / "b"
    args = ["bios", "--corpus", str(bios), "--people", "30", "--json"]
    assert runner.invoke(main, args).exit_code == 0
    part = bios / "docs" / "bios" / "part-00000.parquet"
    kept = part.read_bytes()
    part.write_bytes(kept[: len(kept) // 2])  # torn: no Parquet footer
    assert runner.invoke(main, ["verify", str(bios)]).exit_code == 1
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert part.read_bytes() == kept and runner.invoke(main, ["verify", str(bios)]).exit_code == 0


def test_the_corpus_is_the_first_argument_everywhere_old_spellings_still_work(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def a():\n    return 1\n")
    runner = CliRunner()
    for args in (["ingest", "code", "{c}", str(src)], ["ingest", "code", str(src), "--out", "{c}"],
                 ["ingest", "code", str(src), "--corpus", "{c}"]):  # fmt: skip
        corpus = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(main, [a.replace("{c}", str(corpus)) for a in args] + ["--json"])
        assert result.exit_code == 0 and json.loads(result.output)["documents"] == 1, (args, result.output)
    for args in (["bios", "{c}", "--people", "3"], ["bios", "--corpus", "{c}", "--people", "3"]):
        corpus = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(main, [a.replace("{c}", str(corpus)) for a in args])
        assert result.exit_code == 0 and (corpus / "docs" / "bios").is_dir(), result.output
    help_text = runner.invoke(main, ["build", "--help"]).output
    assert "[CORPUS_DIR]" in help_text and "--out" not in help_text
    usage = runner.invoke(main, ["ingest", "code", "-h"]).output
    assert "Usage: main ingest code [OPTIONS] CORPUS [PATH]..." in usage
    result = runner.invoke(main, ["build", "--mix", "bios:1"])
    assert result.exit_code == 2 and "missing the corpus directory" in result.output
    result = runner.invoke(main, ["build", str(tmp_path / "x"), "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "two corpus directories given" in result.output


def test_filter_rules_changed_judge_every_document_again(code_corpus: Path, tmp_path: Path) -> None:
    out = _copy(code_corpus, tmp_path)
    runner = CliRunner()
    (out / "phicorpus.toml").write_text("[filter]\ncode_max_line_len = 5\n")
    result = runner.invoke(main, ["filter", str(out), "--json"])
    stats = json.loads(result.output)
    assert stats["dropped"] == {"code_max_line_len": 3} and stats["kept_total"] == 0, result.output
    assert stats["warnings"] == ["filter dropped 100.0% of source 'code' (3 of 3 documents)"]
    (out / "phicorpus.toml").unlink()
    stats = json.loads(runner.invoke(main, ["filter", str(out), "--json"]).output)
    assert stats["rules_changed"] and stats["kept_total"] == 3 and stats["dropped"] == {}
    stats = json.loads(runner.invoke(main, ["filter", str(out), "--json"]).output)
    assert not stats["rules_changed"] and stats["shards"] == 0 and stats["kept_total"] == 3

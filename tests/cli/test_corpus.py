"""The corpus commands end to end: ingest, filter, dedup, decontam, classifier, sql, verify."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from phicorpus.cli import main


def _corpus(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        body = "\n".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n" for j in range(20))
        (src / f"m{i}.py").write_text(f'"""Module {i}: arithmetic helpers for the lesson."""\n{body}')
    (src / "copy.py").write_text((src / "m0.py").read_text())
    (src / "sql.py").write_text('q = "\'; DROP TABLE documents; --"\n')
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["ingest", "code", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 8
    return out


def test_pipeline_sql_and_verify(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["filter", str(out)]).exit_code == 0
    result = runner.invoke(main, ["dedup", str(out)])
    assert result.exit_code == 0 and json.loads(result.output)["exact_duplicates"] == 1
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        json.dumps({"question": "def f3_4(x): return x * 4 + 3 def f3_5(x): return x * 5 + 3"}) + "\n"
    )
    result = runner.invoke(main, ["decontam", str(out), "--benchmarks", str(bench), "--ngram", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["benchmarks"]["bench"]["documents"] == 1

    q = "SELECT drop_stage, count(*) AS n FROM documents GROUP BY ALL ORDER BY 1 NULLS FIRST"
    result = runner.invoke(main, ["sql", str(out), q, "--format", "csv"])
    assert result.exit_code == 0 and result.output.splitlines() == [
        "drop_stage,n",
        ",6",
        "decontam,1",
        "dedup,1",
    ]
    result = runner.invoke(main, ["sql", str(out), "SELECT count(*) AS n FROM kept_text", "--format", "json"])
    assert json.loads(result.output) == {"n": 6}
    result = runner.invoke(main, ["sql", str(out), "SELECT text FROM document_text WHERE text LIKE '%DROP%'"])
    assert result.exit_code == 0 and "DROP TABLE documents" in result.output
    # Read-only, and no file outside the corpus.
    for bad in ("DELETE FROM documents", "SELECT * FROM read_text('/etc/hostname')",
                f"COPY documents TO '{tmp_path}/x.csv'", "SELEC 1"):  # fmt: skip
        result = runner.invoke(main, ["sql", str(out), bad])
        assert result.exit_code != 0 and "Error" in result.output, bad
    assert not (tmp_path / "x.csv").exists()

    result = runner.invoke(main, ["verify", str(out)])
    assert result.exit_code == 0 and "ok: 1 files verified" in result.output
    shard = next((out / "docs" / "code").glob("part-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = runner.invoke(main, ["verify", str(out)])
    assert result.exit_code == 1 and f"docs/code/{shard.name}: corrupt (sha256 differs)" in result.output
    shard.unlink()
    result = runner.invoke(main, ["verify", str(out)])
    assert result.exit_code == 1 and f"docs/code/{shard.name}: missing" in result.output


def test_classifier_annotate_train_and_filter(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["classifier", "annotate", str(out), "--sample", "5"])
    assert result.exit_code == 0, result.output
    sample = [json.loads(line) for line in (out / "models" / "edu_sample.jsonl").read_text().splitlines()]
    assert len(sample) == 5 and all("text" in s for s in sample)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": s["id"], "score": 4 if "Module" in s["text"] else 0}) + "\n"
                              for s in sample))  # fmt: skip
    assert runner.invoke(main, ["classifier", "annotate", str(out), "--labels", str(labels)]).exit_code == 0
    result = runner.invoke(main, ["classifier", "train", str(out), "--holdout", "0.2"])
    assert result.exit_code == 0 and "F1" in result.output, result.output
    result = runner.invoke(main, ["filter", str(out), "--min-edu", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["edu_scored"] == 8
    result = runner.invoke(main, ["sql", str(out), "SELECT count(*) FROM documents WHERE edu_score IS NULL"])
    assert result.output.splitlines()[-1].strip() == "0"
    missing = tmp_path / "nolabels.jsonl"
    missing.write_text('{"id": "code/nope", "score": 3}\n')
    result = runner.invoke(main, ["classifier", "annotate", str(out), "--labels", str(missing)])
    assert result.exit_code == 1 and "not in the corpus" in result.output

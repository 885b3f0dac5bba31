"""The corpus commands end to end: ingest, filter, dedup, decontam, classifier, sql, verify."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generate"))

from fake_server import Action, Call, FakeServer  # type: ignore[import-not-found]

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
    result = CliRunner().invoke(main, ["ingest", "code", str(src), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 8
    return out


def test_pipeline_sql_and_verify(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["filter", str(out)]).exit_code == 0
    result = runner.invoke(main, ["dedup", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["exact_duplicates"] == 1
    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        json.dumps({"question": "def f3_4(x): return x * 4 + 3 def f3_5(x): return x * 5 + 3"}) + "\n"
    )
    result = runner.invoke(main, ["decontam", str(out), "--benchmarks", str(bench), "--ngram", "8", "--json"])
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
    assert result.exit_code == 0 and "ok: catalog and 1 files verified" in result.output
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
    result = runner.invoke(main, ["filter", str(out), "--min-edu", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["edu_scored"] == 8
    result = runner.invoke(main, ["sql", str(out), "SELECT count(*) FROM documents WHERE edu_score IS NULL"])
    assert result.output.splitlines()[-1].strip() == "0"
    missing = tmp_path / "nolabels.jsonl"
    missing.write_text('{"id": "code/nope", "score": 3}\n')
    stored = (out / "models" / "edu_labels.jsonl").read_bytes()
    result = runner.invoke(main, ["classifier", "annotate", str(out), "--labels", str(missing)])
    assert result.exit_code == 1 and "not in the corpus" in result.output
    # Refused before anything is written: the stored labels and their registration still agree.
    assert (out / "models" / "edu_labels.jsonl").read_bytes() == stored
    assert runner.invoke(main, ["verify", str(out)]).exit_code == 0


def _judge(call: Call) -> Action:
    """Edu value by the module's number (even 5, odd 1), 0 for the SQL file; module 1 gets prose."""
    user = next(m["content"] for m in call.body["messages"] if m["role"] == "user")
    found = re.search(r"Module (\d+)", user)
    if found is None:
        return Action(text="Educational value: 0")
    if found.group(1) == "1":
        return Action(text="A fine module, I would say four out of five.")
    return Action(text=f"Educational value: {5 if int(found.group(1)) % 2 == 0 else 1}")


def test_classifier_annotate_with_an_llm_judge(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["sql", str(out), "SELECT id, text FROM document_text", "--format", "json"])
    texts = {r["id"]: r["text"] for r in map(json.loads, result.output.splitlines())}
    assert len(texts) == 8  # m0..m5, copy.py (the same text as m0.py) and sql.py
    with FakeServer(plan=_judge) as server:
        args = ["classifier", "annotate", str(out), "--model", "m", "--seed", "3", "--json"]
        result = runner.invoke(main, [*args, "--sample", "4", "--llm", server.url])
        assert result.exit_code == 0, result.output
        first = json.loads(result.output)
        assert first["sampled"] == 4 and 3 <= first["sent"] == len(server.calls) <= 4
        # The whole corpus: seven distinct texts (m0.py and its copy are asked about once), and the
        # first sample is a prefix of this one (same seed), so nothing is asked twice.
        args += ["--sample", "8"]
        result = runner.invoke(main, [*args, "--llm", server.url])
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        assert len(server.calls) == 7 and stats["sent"] == 7 - first["sent"]
        assert sorted(server.counts.values()) == [1] * 7
        assert stats["sampled"] == 8 and stats["scored"] == 7 and stats["unparsed"] == 1
        assert stats["labels"] == 7 and stats["labels_file"] == "models/edu_labels.jsonl"
        expected = {}
        for doc_id, text in texts.items():
            module = re.search(r"Module (\d+)", text)
            if module is None:
                expected[doc_id] = 0.0
            elif module.group(1) != "1":  # module 1's answer does not parse: left out
                expected[doc_id] = 5.0 if int(module.group(1)) % 2 == 0 else 1.0
        labels_file = out / "models" / "edu_labels.jsonl"
        stored = [json.loads(line) for line in labels_file.read_text().splitlines()]
        assert {r["id"]: r["score"] for r in stored} == expected
        assert [r["id"] for r in stored] == sorted(expected)

        # A re-run (endpoint from $OPENAI_BASE_URL) reads every answer back from the journal.
        result = runner.invoke(main, args, env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test"})
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["sent"] == 0 and len(server.calls) == 7
        assert [json.loads(line) for line in labels_file.read_text().splitlines()] == stored

        result = runner.invoke(main, ["sql", str(out), "SELECT count(*) FROM shards WHERE kind = 'labels'"])
        assert result.output.splitlines()[-1].strip() == "1"
    result = runner.invoke(main, ["classifier", "train", str(out), "--holdout", "0.3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"trained on 4, held out 3: accuracy [01]\.\d+ F1 [01]\.\d+", result.output)
    result = runner.invoke(main, ["verify", str(out)])
    assert result.exit_code == 0, result.output
    q = "SELECT count(*) FROM scores WHERE rubric = 'edu' AND judge = 'm'"
    assert runner.invoke(main, ["sql", str(out), q]).output.splitlines()[-1].strip() == "7"


def test_classifier_annotate_judge_usage_errors(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")
    for args, message in [
        (["--model", "m", "--labels", str(labels)], "either --labels or --model"),
        (["--llm", "http://127.0.0.1:9/v1"], "need --model"),
        (["--model", "m", "--out", str(tmp_path / "s.jsonl")], "--out is where the sample goes"),
    ]:
        result = runner.invoke(main, ["classifier", "annotate", str(out), *args])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(
        main, ["classifier", "annotate", str(out), "--model", "m"], env={"OPENAI_BASE_URL": ""}
    )
    assert result.exit_code == 2 and "no LLM endpoint" in result.output


def test_classifier_annotate_stores_nothing_when_no_answer_parses(tmp_path: Path) -> None:
    out = _corpus(tmp_path)
    runner = CliRunner()
    with FakeServer(plan=lambda call: Action(text="Educational value: high")) as server:
        args = ["classifier", "annotate", str(out), "--model", "m", "--sample", "3", "--llm", server.url]
        result = runner.invoke(main, args)
    assert result.exit_code == 1 and "scored none of 3 documents (3 answers did not parse" in result.output
    assert not (out / "models" / "edu_labels.jsonl").exists()

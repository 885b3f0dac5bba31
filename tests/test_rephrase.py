"""The rephrase stage end to end over real HTTP (the fake OpenAI-compatible server): every format,
chunked documents, REWIRE reasoning in the catalog, gates with reasons, decontamination before and
after, pay-once on a re-run, the SQL join of a rephrase to its source, and stats."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from tests.generate.fake_server import Action, Call, FakeServer

from phicorpus.catalog import Catalog, open_sql_connection
from phicorpus.config import Config, IngestConfig, RephraseConfig
from phicorpus.corpus import Corpus
from phicorpus.filter.classifier import train_classifier
from phicorpus.prompts.rephrase import REPHRASE_FORMATS, load_rephrase_templates
from phicorpus.rephrase import copy_overlap, fact_retention, plan_rephrase_prompts, run_rephrase
from phicorpus.sources.web import ingest_web
from phicorpus.stats import corpus_stats, format_stats

LICENSES = Path("/usr/share/common-licenses")
BENCHMARK_LINE = (
    "which of the following best describes the primary function of the mitochondria inside "
    "a eukaryotic cell according to the passage"
)
FORGETFUL = "FORGET-THE-FACTS"
COPYCAT = "COPY-THE-SOURCE"
SYSTEM_TO_FORMAT = {
    load_rephrase_templates().system[f].render({"document": ""}).strip(): f for f in REPHRASE_FORMATS
}


def _documents() -> list[dict[str, str]]:
    """Real prose (this machine's license texts), cut into documents, plus a few made for the gates."""
    docs = []
    for name in ("GPL-3", "Apache-2.0", "GFDL-1.3", "Artistic", "MPL-2.0", "LGPL-3"):
        path = LICENSES / name
        if path.is_file():
            text = path.read_text()
            docs.append({"id": name, "url": f"file://{path}", "text": text[:5000]})
    docs.append({"id": "forget", "text": f"{FORGETFUL}. The Zambezi river crosses 6 countries in 2,574 km."})
    docs.append(
        {"id": "copy", "text": f"{COPYCAT}. Victoria Falls lies on the Zambezi between Zambia and Zimbabwe."}
    )
    docs.append({"id": "bench", "text": "A quiz question: " + BENCHMARK_LINE + " and nothing else matters."})
    return docs


def _chunk_of(user: str) -> str:
    found = re.search(r"<text>\n(.*)\n</text>", user, re.DOTALL)
    assert found, user[:200]
    return found.group(1)


def _facts_prose(chunk: str) -> str:
    words = sorted(set(re.findall(r"[A-Za-z]{9,}|\d+(?:[.,]\d+)*|\b[A-Z][a-z]{2,}\b", chunk)))
    return (
        " ".join(f"The text mentions {w} here." for w in words) or "The text mentions nothing specific here."
    )


def answer(call: Call) -> Action:
    """A format-shaped answer that keeps the chunk's facts in new sentences (passes the gates),
    except for the documents made to fail them."""
    messages = call.body["messages"]
    fmt = SYSTEM_TO_FORMAT[messages[0]["content"]]
    chunk = _chunk_of(messages[1]["content"])
    if FORGETFUL in chunk:  # the format's layout, none of the facts
        prose = "This passage is about a place. Someone once visited it. It was long ago."
        words = prose.split(". ")
    elif COPYCAT in chunk:  # the format's layout around the source, copied
        prose = chunk
        words = [chunk]
    else:
        prose = _facts_prose(chunk)
        words = prose.split(". ")
    qa = "\n".join(f"Question: What is said about item {i}?\nAnswer: {w}." for i, w in enumerate(words))
    structure = REPHRASE_FORMATS[fmt].structure
    text = {
        "prose": prose,
        "qa": qa if fmt != "nemo_qa" or "GNU" not in chunk[:200] else "No questions today.",
        "list": "\n".join(f"- {w}." for w in words),
        "math": f"Problem: {prose} How many items are there?\nSolution: count them.\nAnswer: {len(words)}",
        "table": "| Item | Fact |\n| --- | --- |\n"
        + "\n".join(f"| {i} | {w} |" for i, w in enumerate(words))
        + "\n\n"
        + qa,
        "tutorial": "You will learn the facts.\n" + "\n".join(f"{i}. {w}." for i, w in enumerate(words, 1)),
        "rewire": f"<reasoning>The chunk has {len(words)} facts; it is dense.</reasoning>\n"
        f"<document>{prose}</document>",
    }[structure]
    return Action(text=text)


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    src = tmp_path / "web.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in _documents()))
    corpus = Corpus.create(tmp_path / "c")
    ingest_web(corpus, [src], config=IngestConfig())
    return corpus


def _config(**rephrase: object) -> Config:
    base = Config()
    rc = replace(RephraseConfig(), context_tokens=1024, max_chunks=3, **rephrase)  # type: ignore[arg-type]
    return replace(base, rephrase=rc, generate=replace(base.generate, min_chars=20, max_attempts=2))


def test_rephrase_end_to_end(corpus: Corpus, tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": BENCHMARK_LINE}) + "\n")
    config = _config(per_document=2)
    with FakeServer(plan=answer) as server:
        stats = run_rephrase(
            corpus, config, endpoints=[server.url], model="m", benchmarks=[bench], echo=lambda _: None
        )
        sent = len(server.calls)
        again = run_rephrase(
            corpus, config, endpoints=[server.url], model="m", benchmarks=[bench], echo=lambda _: None
        )
        assert len(server.calls) == sent  # pay once: nothing is sent again
    assert again["generate"]["already_answered"] == stats["generate"]["requests"]
    assert stats["decontam_sources"]["contaminated"] == 1
    with Catalog.open(corpus, read_only=True) as catalog:
        # the benchmark document was dropped before rephrasing: no prompt rewrites it
        bench_id = catalog.exec("SELECT id FROM documents WHERE drop_stage = 'decontam'")[0][0]
        assert not catalog.exec("SELECT 1 FROM rephrases WHERE source_id = ?", [bench_id])
        rows = catalog.exec(
            "SELECT r.source_id, r.format, r.chunk, r.chunks, r.chunk_start, r.chunk_end, r.reasoning, "
            "d.drop_stage, d.drop_reason, r.fact_retention, r.copy_overlap, r.gate_reason FROM rephrases r "
            "JOIN documents d ON d.id = r.doc_id ORDER BY r.source_id, r.format, r.chunk"
        )
        assert len(rows) == stats["prompts"] == sent
        by_doc: dict[tuple[str, str], list[tuple[object, ...]]] = {}
        for row in rows:
            by_doc.setdefault((row[0], row[1]), []).append(row)
        # long documents were chunked: ids 0..n-1 in order, spans increasing
        chunked = [v for v in by_doc.values() if v[0][3] > 1]
        assert chunked
        for group in chunked:
            assert [r[2] for r in group] == list(range(len(group))) and len(group) == min(3, group[0][3])
            assert all(a[5] <= b[4] for a, b in itertools.pairwise(group))
        # REWIRE: the reasoning is in the catalog, the document is only the rewrite
        rewire = [r for r in rows if r[1] == "rewire"]
        if rewire:
            assert all(r[6] and "facts" in r[6] for r in rewire)
        # the gates score every output; a document already dropped (bad structure) keeps that reason
        reasons = {(r[0], r[11]) for r in rows if r[11]}
        assert all(r[7] in ("rephrase", "generate") for r in rows if r[11])
        forget = catalog.exec("SELECT id FROM documents WHERE provenance LIKE '%\"forget\"%'")[0][0]
        copy = catalog.exec("SELECT id FROM documents WHERE provenance LIKE '%\"copy\"%'")[0][0]
        assert (forget, "low-fact-retention") in reasons and (copy, "verbatim-copy") in reasons
        kept = [r for r in rows if r[7] is None]
        assert kept and all(r[9] >= 0.3 or r[1] in config.rephrase.fact_retention_by_format for r in kept)
        drops = dict(
            catalog.exec("SELECT reason, sum(count) FROM drop_counts WHERE stage = 'rephrase' GROUP BY 1")
        )
        assert drops["low-fact-retention"] >= 1 and drops["verbatim-copy"] >= 1
    con = open_sql_connection(corpus.root)
    try:
        joined = con.execute(
            "SELECT r.format, r.chunk_start, r.chunk_end, o.text, d.text FROM rephrases r "
            "JOIN document_text d ON d.id = r.doc_id JOIN document_text o ON o.id = r.source_id "
            "WHERE r.format = 'rewire' OR r.chunk > 0"
        ).fetchall()
    finally:
        con.close()
    assert joined
    for _fmt, start, end, original, rephrased in joined:
        # the rephrase really is of that chunk of that original (its facts, recomputed here)
        assert fact_retention(original[start:end], rephrased) > 0.5
        assert "<reasoning>" not in rephrased and "<document>" not in rephrased
    data = corpus_stats(corpus)
    assert "rephrases by format" in format_stats(data)
    formats = {r["format"]: r for r in data["rephrase"]}
    assert formats and all(0.0 <= r["near_duplicate_rate"] <= 1.0 for r in formats.values())
    assert all(r["fact_retention_mean"] is not None for r in formats.values())


def test_routing_with_a_trained_classifier(corpus: Corpus) -> None:
    # an edu model that scores license text high and the short travel notes low
    docs = _documents()
    high = [d["text"] for d in docs[:-3]]
    low = [d["text"] for d in docs[-3:]] * 2
    model = train_classifier(high + low, [5.0] * len(high) + [0.0] * len(low))
    model.save(corpus.absolute(Config().filter.edu_model))
    table = plan_rephrase_prompts(corpus, _config())
    routes = {}
    for row in table.to_pylist():
        routes[row["source_id"]] = (row["route"], row["quality"], row["format"])
        assert row["route"] == ("paraphrase" if row["quality"] < 3.0 else "knowledge")
        fmt = REPHRASE_FORMATS[row["format"]]
        assert fmt.role == row["route"]
    assert {r[0] for r in routes.values()} == {"paraphrase", "knowledge"}
    # without a classifier: drawn by weight, only the weighted formats
    corpus.absolute(Config().filter.edu_model).unlink()
    table = plan_rephrase_prompts(
        corpus, _config(weights={f: 0.0 for f in REPHRASE_FORMATS} | {"fp_faq": 1.0})
    )
    assert set(table.column("route").to_pylist()) == {"weights"}
    assert set(table.column("format").to_pylist()) == {"fp_faq"}


def test_gate_metrics_known_answers() -> None:
    source = "In 1966 the Arno flooded Florence and damaged 14,000 artworks in the Uffizi."
    assert (
        fact_retention(source, "Florence was flooded by the Arno in 1966; 14000 artworks at the Uffizi.")
        == 1.0
    )
    assert fact_retention(source, "A river flooded a city.") == 0.0
    assert copy_overlap(source, source) == 1.0
    assert copy_overlap(source, "A river once flooded a famous city and many artworks were damaged.") == 0.0


def test_cost_cap_then_resume_through_faults_pays_once(corpus: Corpus) -> None:
    from tests.generate.conftest import fast_config

    config = replace(_config(), generate=fast_config(flush_every=1))
    flaky = {"on": False}

    def plan(call: Call) -> Action:
        if flaky["on"] and call.n == 1:  # the first attempt of every request now fails: retried
            return Action(kind="status", status=500)
        return answer(call)

    with FakeServer(plan=plan) as server:
        first = run_rephrase(
            corpus, config, endpoints=[server.url], model="m", max_cost=0.02, echo=lambda _: None
        )
        assert first["generate"]["stop_reason"] == "cost cap" and first["generate"]["spent_usd"] <= 0.02
        done_first = first["generate"]["done"]
        assert 0 < done_first < first["prompts"]
        flaky["on"] = True
        second = run_rephrase(corpus, config, endpoints=[server.url], model="m", echo=lambda _: None)
        ok = [c.key for c in server.calls if c.outcome == "ok"]
        failed = [c.key for c in server.calls if c.outcome == "500"]
    assert second["generate"]["already_answered"] == done_first and not second["generate"]["stop_reason"]
    assert len(ok) == len(set(ok)) == first["prompts"]  # every request answered, and paid, once
    assert failed and set(failed) <= set(ok)  # each failed attempt was retried to an answer
    with Catalog.open(corpus, read_only=True) as catalog:
        assert catalog.exec_one("SELECT count(*) FROM rephrases")[0] == first["prompts"]  # type: ignore[index]


KILL_TOML = """[generate]
concurrency = 4
max_concurrency = 4
flush_every = 3
flush_seconds = 0.2
max_tokens = 100
min_chars = 20
backoff_base = 0.01

[generate.prices.m]
input = 1.0
output = 10.0

[rephrase]
context_tokens = 1024
max_chunks = 3
per_document = 2
"""


def test_kill_9_mid_rephrase_then_rerun(corpus: Corpus) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from phicorpus.generate.journal import read_records

    corpus.config_path.write_text(KILL_TOML)
    journal = corpus.requests_dir / "generate.jsonl"
    exe = Path(sys.executable).parent / "phicorpus"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}

    def results() -> set[str]:
        return (
            {r["key"] for r in read_records(journal)[0] if r["t"] == "result"} if journal.is_file() else set()
        )

    with FakeServer(plan=answer, latency=0.05) as server:
        cmd = [str(exe), "rephrase", str(corpus.root), "--llm", server.url, "--model", "m", "--max-cost", "5"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(results()) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
        answered = results()
        calls_before = len(server.calls)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        resent = {c.key for c in server.calls[calls_before:]} & answered
        in_flight_at_kill = {c.key for c in server.calls[:calls_before] if c.outcome == "ok"} - answered
        ok = [c.key for c in server.calls if c.outcome == "ok"]
    with Catalog.open(corpus, read_only=True) as catalog:
        n = catalog.exec_one("SELECT count(*) FROM rephrases")[0]  # type: ignore[index]
        docs = catalog.exec_one(
            "SELECT count(*), count(DISTINCT id) FROM documents WHERE source IN (SELECT unnest(?))",
            [list(REPHRASE_FORMATS)],
        )
    # the re-run never sends a key the journal holds a result for; a key the server answered while
    # the client was being killed (no result journaled) is the only one that may be answered twice
    assert not resent, f"{len(resent)} answered keys sent again"
    assert len(ok) - len(set(ok)) <= len(in_flight_at_kill)
    assert len(set(ok)) == n == docs[0] == docs[1]  # type: ignore[index]

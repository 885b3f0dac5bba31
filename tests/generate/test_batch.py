"""Batch API: shuffled, partly failed and partly expired results reconcile; nothing submitted twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import fast_config, write_prompts
from fake_server import FakeServer

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.batch import export, run_batch_action
from phicorpus.generate.journal import RequestJournal, read_records
from phicorpus.generate.requests import build_requests, load_prompts


def test_batch_round_trip_with_failures_and_expiry(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 30)
    corpus = Corpus.create(tmp_path / "corpus")
    config = fast_config()
    params = GenerationParams.from_config(config)
    fates: dict[str, str] = {}

    def first_round(line: dict[str, Any]) -> str:
        h = int(line["custom_id"][:8], 16) % 5
        fate = "error" if h == 0 else "expired" if h == 1 else "ok"
        fates[line["custom_id"]] = fate
        return fate

    def act(action: str, url: str) -> dict[str, Any]:
        return run_batch_action(
            action,
            corpus,
            prompts,
            endpoints=[url],
            model="m",
            params=params,
            config=config,
            echo=lambda s: None,
        )

    with FakeServer(batch_plan=first_round) as server:
        assert act("export", server.url)["exported"] == 60 // 2
        act("submit", server.url)
        assert act("submit", server.url) == {"submitted": [], "adopted": []}  # nothing twice
        stats = act("import", server.url)
        ok = {k for k, f in fates.items() if f == "ok"}
        assert stats["results"] == len(ok) and stats["failed"] + stats["missing"] == 30 - len(ok)
        assert 0 < len(ok) < 30 and stats["documents"] == len(ok)
        # round two re-queues exactly what is missing or failed
        server.batch_plan = lambda line: "ok"
        second = act("export", server.url)
        assert second["exported"] == 30 - len(ok)
        act("submit", server.url)
        stats2 = act("import", server.url)
        assert stats2["results"] == 30 - len(ok) and stats2["pending"] == 0
        assert len(server.batch_inputs) == 2
        assert not set(server.batch_inputs[1]) & ok
        assert set(server.batch_inputs[1]) == set(fates) - ok
        assert act("export", server.url)["exported"] == 0
        assert not server.calls
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one("SELECT count(*), count(DISTINCT prompt_id) FROM documents") == (30, 30)
        (cost,) = cat.exec_one("SELECT sum(cost) FROM requests")  # type: ignore[misc]
    # batch pricing: half the live price of the same usage
    records = [r for r in read_records(corpus.requests_dir / "generate.jsonl")[0] if r["t"] == "result"]
    live = sum(
        (r["usage"]["prompt_tokens"] * 1.0 + r["usage"]["completion_tokens"] * 10.0) / 1e6 for r in records
    )
    assert abs(cost - live / 2) < 1e-9
    # and a live run afterwards sends nothing
    with FakeServer() as live_server:
        stats = run_generation(
            corpus,
            prompts,
            endpoints=[live_server.url],
            model="m",
            params=params,
            max_cost=0,
            config=config,
            echo=lambda s: None,
        )
        assert stats["sent"] == 0 and not live_server.calls


def test_export_splits_files_and_skips_running_batches(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 25)
    corpus = Corpus.create(tmp_path / "corpus")
    requests = build_requests(load_prompts(prompts), "m", GenerationParams(max_tokens=50))
    with RequestJournal.open(corpus.requests_dir / "generate.jsonl") as journal:
        stats = export(corpus, journal, requests, "m", max_lines=10)
        assert stats["exported"] == 25 and len(stats["files"]) == 3
        lines = [json.loads(x) for f in stats["files"] for x in corpus.absolute(f).read_text().splitlines()]
        assert sorted(x["custom_id"] for x in lines) == sorted(r.key for r in requests)
        assert lines[0]["body"]["max_tokens"] == 50 and lines[0]["url"] == "/v1/chat/completions"
        small = export(corpus, journal, requests, "m", max_bytes=2000)  # replaces the unsubmitted export
        assert len(small["files"]) > 3

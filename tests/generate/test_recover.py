"""Results already in the journal are written out first and never requested again; progress line."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner
from conftest import fast_config, write_prompts
from fake_server import Action, FakeServer

from phicorpus.catalog import Catalog
from phicorpus.cli import main
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.journal import RequestJournal
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import build_requests, load_prompts


def test_journal_results_missing_from_shards_are_recovered_without_sending(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.parquet", 6)
    corpus = Corpus.create(tmp_path / "corpus")
    config = fast_config()
    params = GenerationParams.from_config(config)
    requests = build_requests(load_prompts(prompts), "m", params)
    # a run that was killed after journaling four results and before any shard was published
    with RequestJournal.open(corpus.requests_dir / "generate.jsonl") as journal:
        journal.append_now(
            [{"t": "send", "key": r.key, "attempt": 1} for r in requests[:5]]
            + [
                {
                    "t": "result",
                    "key": r.key,
                    "text": f"Recovered text number {i}. " * 5,
                    "finish_reason": "stop",
                    "usage": {"prompt_tokens": 10, "completion_tokens": 20},
                    "cost": 0.0002,
                }
                for i, r in enumerate(requests[:4])
            ]
        )
    with FakeServer(plan=lambda c: Action()) as server:
        stats = run_generation(
            corpus,
            prompts,
            endpoints=[server.url],
            model="m",
            params=params,
            max_cost=0,
            config=config,
            echo=lambda s: None,
        )
        sent = {c.key for c in server.calls}
    assert stats["recovered"] == 4 and stats["done"] == 2
    assert sent == {r.key for r in requests[4:]}
    # the fifth was sent by the killed run with no outcome known: it counts as possibly billed
    assert stats["possibly_billed_usd"] > 0
    with Catalog.open(corpus, read_only=True) as cat:
        assert cat.exec_one("SELECT count(*) FROM documents") == (6,)
        assert cat.exec_one(
            "SELECT count(*) FROM documents WHERE provenance LIKE '%' || ? || '%'", [requests[0].key]
        ) == (1,)


def test_progress_line() -> None:
    stream = io.StringIO()
    bar = Progress(10, enabled=True, stream=stream)
    bar.update(done=3, tokens=300, dollars=0.5)
    bar.error("429")
    bar.close()
    line = bar.line()
    assert "3/10" in line and "req/s" in line and "tok/s" in line and "$0.5000" in line and "429:1" in line
    quiet = Progress(5, stream=io.StringIO())
    assert quiet.mode == "lines" and quiet.interval == Progress.every  # not a TTY: a line every 30 s
    assert Progress(5, enabled=False, stream=io.StringIO()).enabled is False


def test_cli_lists_the_commands() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for command in ("generate", "verify-exercises", "grade"):
        assert command in out
    help_text = CliRunner().invoke(main, ["generate", "--help"]).output
    for flag in ("--prompts", "--llm", "--model", "--samples", "--max-cost", "--batch", "--seed", "--top-p"):
        assert flag in help_text


def test_cli_generate_quota_exits_with_a_message(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.parquet", 3)
    quota = {"error": {"code": "insufficient_quota", "message": "quota"}}
    with FakeServer(plan=lambda c: Action("status", 429, body=quota)) as server:
        result = CliRunner().invoke(
            main,
            [
                "generate",
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "c"),
                "--llm",
                server.url,
                "--model",
                "m",
                "--concurrency",
                "1",
            ],
        )
        assert len(server.calls) == 1
    assert result.exit_code == 1 and "quota is exhausted" in result.output

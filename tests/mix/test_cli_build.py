"""``phicorpus build`` errors before any work, and ``phicorpus stats`` tables / --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from phicorpus.build import build_shards
from phicorpus.cli import main
from phicorpus.config import BuildConfig
from phicorpus.corpus import Corpus


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mix", "poems:1"], "unknown source 'poems' (available: bios, code, exercises"),
        (["--mix", "synthetic:0.9"], "weights sum to 0.9, not 1"),
        (["--mix", "synthetic:-1,code:2"], "weight of 'synthetic' must be >= 0"),
        (["--mix", "synthetic,code:1"], "'synthetic' has no weight"),
        (["--code", "/no/such/dir"], "/no/such/dir: no such file or directory (--code)"),
        (["--tokenizer", "/no/such/tokenizer.json"], "cannot read tokenizer"),
        (["--tokenizer", "{bad}"], "bad.json: cannot read tokenizer"),
    ],
)
def test_build_errors_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "corpus"
    (tmp_path / "bad.json").write_text('{"model": ', encoding="utf-8")
    args = [a.replace("{bad}", str(tmp_path / "bad.json")) for a in args]
    result = CliRunner().invoke(main, ["build", "--out", str(out), *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message in lines[0]
    assert not (out / "catalog.duckdb").exists()
    assert not list(out.rglob("*.bin"))


def test_stats_tables_and_json(corpus: Corpus) -> None:
    build_shards(
        corpus,
        BuildConfig(vocab_size=600, tokenizer_sample_bytes=100_000, shard_tokens=10_000, valid_fraction=0.05),
    )
    result = CliRunner().invoke(main, ["stats", str(corpus.root), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_source = {row["source"]: row for row in data["sources"]}
    assert by_source["bios"]["documents"] == 500 and by_source["bios"]["kept"] == 450
    assert by_source["bios"]["duplicate_rate"] == pytest.approx(0.1)
    kept = {row["source"]: row for row in data["by_source"]}
    assert kept["code"]["tokens"] > 0 and kept["bios"]["documents"] == 450
    assert {row["subject"] for row in data["by_subject"]} == {"biography", "programming"}
    assert data["llm"] == {"requests": 0, "cost_usd": 0.0}
    kinds = {row["kind"]: row for row in data["files"]}
    assert kinds["tokens-bin"]["files"] >= 2 and "manifest" in kinds and "tokenizer" in kinds
    table = CliRunner().invoke(main, ["stats", str(corpus.root)])
    assert table.exit_code == 0
    assert "kept documents and tokens by source" in table.output and "bios" in table.output
    missing = CliRunner().invoke(main, ["stats", str(corpus.root / "nope")])
    assert missing.exit_code == 1 and "not a phicorpus corpus" in missing.output


def test_build_command_runs_the_stages_then_writes_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: Any
) -> None:
    """The orchestration with stand-ins for the other streams' stages (bios, code, filter,
    dedup): the plan comes first and says the synthetic text is offline, stages are called in
    order, the shards meet the shares, and a re-run does no new work."""
    import phicorpus.build as build_mod

    calls: list[str] = []

    def fake(name: str) -> Any:
        def stage(corpus: Corpus, *args: object, **kwargs: object) -> dict[str, int]:
            calls.append(name)
            done = corpus.docs_dir("bios" if name == "write_bios" else "code").exists()
            if name == "write_bios" and not done:
                helpers.add_source(corpus, "bios", helpers.bios_texts(400))
            if name == "ingest_code" and not done:
                helpers.add_source(corpus, "code", helpers.code_texts(40))
            return {}

        return stage

    for func in ("write_bios", "ingest_code", "run_filter", "run_dedup"):
        monkeypatch.setattr(build_mod, func, fake(func))
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "phicorpus.toml").write_text(
        "[build]\nvocab_size = 600\ntokenizer_sample_bytes = 100000\nshard_tokens = 10000\n"
    )
    args = ["build", "--mix", "synthetic:0.8,code:0.2", "--out", str(tmp_path / "corpus"), "--seed", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "no LLM configured" in lines[1] and "not by LLM output" in lines[1]
    assert any(line.startswith("bios") and "offline bioS generator" in line for line in lines)
    assert any(line.startswith("code") and "standard library" in line for line in lines)
    assert lines.index(next(line for line in lines if line.startswith("LLM cost"))) < lines.index(
        next(line for line in lines if line.startswith("training a"))
    )
    assert calls == ["write_bios", "ingest_code", "run_filter", "run_dedup"]
    manifest = json.loads((tmp_path / "corpus" / "build" / "main" / "manifest.json").read_text())
    assert manifest["seed"] == 3
    for source, share in (("bios", 0.8), ("code", 0.2)):
        assert abs(manifest["sources"][source]["actual_share"] - share) <= 0.005 * share
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "wrote train" not in again.output and "tokenizing" not in again.output

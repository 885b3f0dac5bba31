"""``phicorpus topics ...``, ``phicorpus prompts ...`` and ``phicorpus prompts stats``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from phicorpus.catalog import Catalog
from phicorpus.cli import main
from phicorpus.corpus import Corpus


def test_topics_stats_and_sample(topics_dir: Path) -> None:
    result = CliRunner().invoke(main, ["topics", "stats", "--dir", str(topics_dir)])
    assert result.exit_code == 0, result.output
    assert "90  leaves, 3 subjects" in result.output and "biology" in result.output
    result = CliRunner().invoke(
        main, ["topics", "sample", "-n", "4", "--dir", str(topics_dir), "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().split("\n")
    assert len(lines) == 4 and all(" \u203a " in line for line in lines)
    again = CliRunner().invoke(main, ["topics", "sample", "-n", "4", "--dir", str(topics_dir), "--seed", "2"])
    assert again.output == result.output


def test_topics_check_reports_problems(topics_dir: Path) -> None:
    result = CliRunner().invoke(main, ["topics", "check", str(topics_dir)])
    assert result.exit_code == 1  # 90 leaves is far below the 20,000 the real seeds need
    assert "leaf topics, expected at least 20000" in result.output


def test_topics_malformed_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_text("# Bad\n- leaf outside a unit here\n")
    result = CliRunner().invoke(main, ["topics", "stats", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.md:2: leaf topic outside" in result.output


def test_prompts_render_and_stats(topics_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    web = tmp_path / "web.jsonl"
    web.write_text(json.dumps({"text": "Biology leaf ideas are about quartz. Another sentence."}) + "\n")
    args = ["prompts", "--n", "120", "--out", str(out), "--topics", str(topics_dir), "--seed", "3"]
    result = CliRunner().invoke(main, [*args, "--formats", "textbook,stories", "--web", str(web)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 120 and set(table.column("format").to_pylist()) == {"textbook", "stories"}
    assert any(w is not None for w in table.column("web_id").to_pylist())
    config = tmp_path / "phicorpus.toml"
    config.write_text(f'[prompts]\ntopics_dir = "{topics_dir}"\n')
    result = CliRunner().invoke(main, ["prompts", "stats", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "topics covered     90 of 90" in result.output
    assert "near-duplicates" in result.output
    result = CliRunner().invoke(main, ["prompts", "stats", str(out), "--json", "--config", str(config)])
    assert json.loads(result.output)["prompts"] == 120


def test_prompts_token_target_into_corpus(topics_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    args = ["prompts", "--tokens", "100000", "--corpus", str(corpus), "--topics", str(topics_dir)]
    result = CliRunner().invoke(main, [*args, "--formats", "textbook"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("100 prompts (textbook 100)")  # 100,000 tokens / 1,000 per section
    with Catalog.open(Corpus.open(corpus), read_only=True) as catalog:
        assert [s.rows for s in catalog.shards("prompts")] == [100]


def test_prompts_usage_errors(topics_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["prompts", "--out", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2 and "exactly one of --n and --tokens" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[audiences\n")
    args = ["prompts", "--n", "3", "--out", str(tmp_path / "x.parquet"), "--templates", str(bad)]
    result = CliRunner().invoke(main, [*args, "--topics", str(topics_dir)])
    assert result.exit_code == 1 and "bad.toml:1:" in result.output

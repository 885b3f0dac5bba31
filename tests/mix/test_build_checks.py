"""``phicorpus build``: checks made at the plan, flags that do not stick after a failure, --reset,
lossy tokenizers, destructive-setting warnings (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tokenizers
from click.testing import CliRunner
from tokenizers import models, pre_tokenizers

from phicorpus.cli import main
from phicorpus.corpus import Corpus

SMALL = (
    "[build]\nvocab_size = 600\ntokenizer_sample_bytes = 100000\nshard_tokens = 10000\nbios_people = 200\n"
)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tokens", "10"], "less than one of its documents"),
        (["--tokens", "1000000000"], "epochs of 'bios' (estimated), more than --max-epochs 16"),
        (["--shard-tokens", "1"], "--shard-tokens 1 would write ~"),
    ],
)
def test_checks_the_plan_can_make_fail_before_anything_is_written(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["build", "--mix", "bios:1", "--out", str(out), *flags])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and message in last, result.output
    assert not (out / "phicorpus.toml").exists() and not (out / "catalog.duckdb").exists()


def _fake_stages(monkeypatch: pytest.MonkeyPatch, helpers: Any, fail: list[str]) -> None:
    """bioS and code as small stand-ins (the real stages are tested on their own); ``fail``
    non-empty: bioS raises its message (a stage failing after the plan was accepted)."""
    import phicorpus.build as build_mod

    def write_bios(corpus: Corpus, *args: object, **kwargs: object) -> dict[str, int]:
        if fail:
            raise ValueError(fail[0])
        if not corpus.docs_dir("bios").exists():
            helpers.add_source(corpus, "bios", helpers.bios_texts(300))
        return {}

    monkeypatch.setattr(build_mod, "write_bios", write_bios)


def test_a_failed_build_does_not_save_its_flags_and_reset_forgets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: Any
) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "phicorpus.toml").write_text(SMALL)
    fail: list[str] = []
    _fake_stages(monkeypatch, helpers, fail)
    runner = CliRunner()
    args = ["build", "--mix", "bios:1", "--out", str(out)]
    result = runner.invoke(main, [*args, "--seed", "5"])
    assert result.exit_code == 0, result.output
    saved = (out / "phicorpus.toml").read_text()
    assert "seed = 5" in saved
    fail.append("docs/bios: already holds a bioS corpus made with other parameters")
    result = runner.invoke(main, [*args, "--seed", "7", "--max-epochs", "3"])
    assert result.exit_code == 1 and "other parameters" in result.output
    assert (out / "phicorpus.toml").read_text() == saved  # the failed run's flags did not stick
    fail.clear()
    result = runner.invoke(main, args)  # plain re-run: the saved configuration, seed 5
    assert result.exit_code == 0, result.output
    assert json.loads((out / "build" / "main" / "manifest.json").read_text())["seed"] == 5
    # --reset: the defaults plus this command's flags (the saved vocab_size 600 is gone).
    result = runner.invoke(main, [*args, "--reset", "--tokens", "10"])
    assert result.exit_code == 1 and "less than one of its documents" in result.output
    assert (out / "phicorpus.toml").read_text() == saved


def _wordpiece(path: Path) -> Path:
    vocab = {"[UNK]": 0, "</s>": 1, "the": 2, "was": 3, "born": 4, "in": 5}
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_a_wordpiece_tokenizer_is_refused_unless_allowed_with_its_unk_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: Any
) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "phicorpus.toml").write_text(SMALL)
    _fake_stages(monkeypatch, helpers, [])
    tok = _wordpiece(tmp_path / "wp.json")
    args = ["build", "--mix", "bios:1", "--out", str(out), "--tokenizer", str(tok)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "a WordPiece tokenizer, not byte-level BPE: " in result.output
    assert "--allow-lossy-tokenizer" in result.output and not (out / "build").exists()
    assert (out / "phicorpus.toml").read_text() == SMALL
    result = CliRunner().invoke(main, [*args, "--allow-lossy-tokenizer"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("tokenizer "))
    assert "WordPiece, not byte-level BPE; " in line and "% of " in line and "are [UNK]" in line


def test_destructive_settings_warn_in_the_plan_and_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: Any
) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "phicorpus.toml").write_text(SMALL + "\n[dedup]\nthreshold = 0.0\n")
    _fake_stages(monkeypatch, helpers, [])
    result = CliRunner().invoke(main, ["build", "--mix", "bios:1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    plan_end = next(i for i, x in enumerate(lines) if x.startswith("LLM cost"))
    assert lines[plan_end + 1].startswith("warning: dedup threshold 0: ")
    summary = lines[plan_end + 2 :]
    assert any(x.startswith("warning: dedup dropped 9") and "of source 'bios'" in x for x in summary)
    assert any(x.startswith("warning: the build has ") and "its plan showed" in x for x in lines)


def test_a_later_code_input_says_the_earlier_documents_stay(tmp_path: Path) -> None:
    from phicorpus.build import plan_warnings
    from phicorpus.config import Config
    from phicorpus.mix.planning import BuildInputs

    first, other = tmp_path / "first", tmp_path / "other"
    for folder, n in ((first, 3), (other, 1)):
        folder.mkdir()
        for i in range(n):
            (folder / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    out = tmp_path / "c"
    assert CliRunner().invoke(main, ["ingest", "code", str(out), str(first)]).exit_code == 0
    corpus = Corpus.open(out)
    said = plan_warnings(corpus, Config(), BuildInputs(code=(other,)))
    assert said == [
        "'code' already holds 3 documents ingested from other inputs; they stay in the mix beside "
        "--code's (a source only grows; use a new corpus to replace it)"
    ]
    assert plan_warnings(corpus, Config(), BuildInputs(code=(first,))) == []

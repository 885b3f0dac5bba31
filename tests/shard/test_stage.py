"""The shard stage re-checks what it wrote: a deleted or corrupted shard is rewritten by the next
build (issue 14), and the build ends with verify's check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mix"))

from conftest import add_source, bios_texts, code_texts  # type: ignore[import-not-found]

from phicorpus.build import build_shards
from phicorpus.cli import main
from phicorpus.config import BuildConfig
from phicorpus.corpus import Corpus

CONFIG = BuildConfig(
    mix="bios:0.8,code:0.2", vocab_size=400, tokenizer_sample_bytes=50_000, shard_tokens=8_000,
    valid_fraction=0.05,
)  # fmt: skip


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    corpus = Corpus.create(tmp_path_factory.mktemp("built") / "c")
    add_source(corpus, "bios", bios_texts(150))
    add_source(corpus, "code", code_texts(10))
    return corpus.root, build_shards(corpus, CONFIG)


@pytest.fixture()
def built(built_once: tuple[Path, dict[str, object]], tmp_path: Path) -> tuple[Corpus, dict[str, object]]:
    """A copy of the built corpus to damage."""
    import shutil

    root, manifest = built_once
    shutil.copytree(root, tmp_path / "c")
    return Corpus.open(tmp_path / "c"), manifest


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["delete-bin", "flip-bin", "flip-idx", "truncate-bin", "flip-manifest"],
)
def test_a_rerun_rewrites_missing_or_corrupt_shards(
    built: tuple[Corpus, dict[str, object]], damage: str
) -> None:
    corpus, manifest = built
    out = corpus.build_dir("main")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "train-00001.bin" in before  # more than one shard: the others are kept as they are
    target = out / ("manifest.json" if damage == "flip-manifest" else f"train-00000.{damage[-3:]}")
    if damage.startswith("delete"):
        target.unlink()
    elif damage == "truncate-bin":
        target.write_bytes(target.read_bytes()[:-2])
    else:
        _flip(target, 40 if damage != "flip-manifest" else 5)
    assert CliRunner().invoke(main, ["verify", str(corpus.root)]).exit_code == 1
    lines: list[str] = []
    again = build_shards(corpus, CONFIG, echo=lines.append)
    assert again == manifest
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    if damage != "flip-manifest":
        said = "rewriting 1 shard(s) that fail verify's check: train-00000"
        assert any(line.startswith(said) for line in lines), lines
    result = CliRunner().invoke(main, ["verify", str(corpus.root)])
    assert result.exit_code == 0, result.output

"""Re-runs cost nothing (issue 13): a re-run with unchanged inputs does no stage again and writes
nothing (the readers' snapshot is not even republished); a build with another --seed or --name
over the same corpus re-uses its documents (the bioS seed is its own setting), skipping ingest,
filter and dedup, and gives other shards."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

from click.testing import CliRunner

from phicorpus import open_corpus
from phicorpus.cli import main
from phicorpus.corpus import sha256_file

CONFIG = """[build]
bios_people = 100
vocab_size = 600
tokenizer_sample_bytes = 100000
"""


def build(corpus: Path, code: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["build", "--mix", "synthetic:0.7,code:0.3", "--out", str(corpus), "--code", str(code), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def runs(corpus: Path) -> dict[str, int]:
    frame = open_corpus(corpus).sql("SELECT stage, count(*) AS n FROM stage_runs GROUP BY ALL")
    return {str(k): int(v) for k, v in frame.iter_rows()}


def train_shards(corpus: Path, name: str) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((corpus / "build" / name).glob("train-*.bin"))}


def test_rerun_does_nothing_and_other_seeds_and_names_reuse_the_documents(tmp_path: Path) -> None:
    code = tmp_path / "code"
    shutil.copytree(
        Path(sysconfig.get_paths()["stdlib"]) / "json", code, ignore=shutil.ignore_patterns("__pycache__")
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "phicorpus.toml").write_text(CONFIG)
    build(corpus, code)
    first = runs(corpus)
    shards = train_shards(corpus, "main")
    snapshot = (corpus / "catalog.duckdb").stat()
    writer = sha256_file(corpus / ".catalog-writer.duckdb")

    output = build(corpus, code)
    assert "nothing changed since this build finished" in output
    assert runs(corpus) == first
    assert train_shards(corpus, "main") == shards
    assert sha256_file(corpus / ".catalog-writer.duckdb") == writer
    again = (corpus / "catalog.duckdb").stat()
    assert (again.st_ino, again.st_mtime_ns) == (snapshot.st_ino, snapshot.st_mtime_ns)  # not republished

    # Another build seed over the same corpus: the same documents, another shuffle.
    bios_query = "SELECT id FROM documents WHERE source = 'bios' ORDER BY id"
    bios_ids = open_corpus(corpus).sql(bios_query)
    output = build(corpus, code, "--seed", "2")
    assert "nothing changed" not in output and "seed 2" in output
    assert "bioS generator (100 people, multi=5, permute, seed 0)" in output
    assert train_shards(corpus, "main") != shards
    seeded = runs(corpus)
    for stage in ("bios:bios", "ingest", "filter", "dedup"):
        assert seeded[stage] == first[stage], stage  # skipped, nothing recorded
    assert open_corpus(corpus).sql(bios_query).equals(bios_ids)

    # Another name and seed: a second build beside the first.
    build(corpus, code, "--name", "other", "--seed", "3")
    assert train_shards(corpus, "other") and train_shards(corpus, "main")
    assert runs(corpus)["dedup"] == first["dedup"]
    # Back to seed 0 (phicorpus.toml now says 3: flags given are kept for re-runs): the first
    # build's shards again, although files of the same size were written over them since.
    build(corpus, code, "--name", "main", "--seed", "0")
    assert train_shards(corpus, "main") == shards

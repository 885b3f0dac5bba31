"""phicorpus export: exactly the kept documents with their provenance, one schema for every
source, read back by Hugging Face ``datasets`` (plain glob and the card's per-source configs) and
by polars; JSONL too; bad arguments are one-line errors that write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.mix.conftest import kept_texts, make_corpus

from phicorpus.build import build_shards
from phicorpus.catalog import Catalog
from phicorpus.config import BuildConfig, IngestConfig
from phicorpus.corpus import Corpus, atomic_path
from phicorpus.export import EXPORT_SCHEMA, export_corpus
from phicorpus.prompts.engine import PROMPT_SCHEMA, write_prompts
from phicorpus.sources.code import ingest_code


def add_generated(corpus: Corpus) -> None:
    """Two LLM rewrites the way generation writes them: a registered prompt table (topic path,
    style, the document rewritten) and a docs shard with the model and prompt of each."""
    two = lambda x: [x, x]  # noqa: E731
    given = {
        "id": ["p-1", "p-2"], "format": two("rewrite"), "topic_path": ["Math > Algebra", "Math > Sets"],
        "style": ["socratic", "concise"], "source_id": ["bios/00000000000000aa", "bios/00000000000000bb"],
    }  # fmt: skip
    rows = [{f.name: given.get(f.name, [None, None])[i] for f in PROMPT_SCHEMA} for i in range(2)]
    write_prompts(corpus, pa.Table.from_pylist(rows, schema=PROMPT_SCHEMA))
    path = corpus.docs_dir("rewrite") / "part-00000.parquet"
    texts = ["An algebra lesson, rewritten.", "A lesson on sets, rewritten."]
    ids = ["rewrite/0000000000000001", "rewrite/0000000000000002"]
    text_table = pa.table({"id": ids, "text": texts, "model": two("m-7b"), "style": ["socratic", "concise"],
                           "prompt_id": ["p-1", "p-2"]})  # fmt: skip
    with atomic_path(path) as tmp:
        pq.write_table(text_table, tmp)
    with Catalog.open(corpus) as catalog, catalog.transaction():
        catalog.ensure_source("rewrite", "synthetic", "test")
        catalog.register_shard(path, "docs", rows=2, source="rewrite")
        catalog.insert_documents(pa.table({
            "id": ids, "source": two("rewrite"), "kind": two("rewrite"), "file": two(corpus.relative(path)),
            "row": [0, 1], "format": two("rewrite"), "audience": two("high school"),
            "prompt_id": ["p-1", "p-2"], "topic_id": ["t1", "t2"], "subject": two("Math"),
            "language": two("en"), "provenance": two('{"model": "m-7b", "request_key": "k"}'),
        }))  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("export")
    corpus = make_corpus(root / "corpus", n_bios=120, n_code=12)
    stack = root / "stack.jsonl"  # The-Stack-style records: license and repo travel with them
    stack.write_text(
        "".join(
            json.dumps({"content": f"def f{i}():\n    return {i}\n", "max_stars_repo_name": f"org/r{i}",
                        "max_stars_repo_path": f"src/f{i}.py", "max_stars_repo_licenses": ["MIT"],
                        "lang": "Python"})
            + "\n"
            for i in range(5)
        )
    )  # fmt: skip
    ingest_code(corpus, [stack], config=IngestConfig(), source="stack")
    add_generated(corpus)
    build_shards(corpus, BuildConfig(mix="bios:0.8,code:0.2", vocab_size=400, shard_tokens=8_000))
    return corpus


def test_parquet_export_reads_back_everywhere(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    stats = export_corpus(corpus, out, rows_per_file=40)
    kept = kept_texts(corpus)
    assert sorted(stats["sources"]) == ["bios", "code", "rewrite", "stack"]
    files = sorted(out.glob("*/train-*.parquet"))
    assert all(pq.read_schema(f).equals(EXPORT_SCHEMA) for f in files)
    assert len(list((out / "bios").glob("*.parquet"))) == 3  # 108 kept bios, 40 per file
    # Exactly the kept documents, once each, with their text.
    frame = pl.scan_parquet(str(out / "*" / "train-*.parquet")).collect()
    assert frame.height == len(kept) and frame["id"].n_unique() == len(kept)
    assert dict(zip(frame["id"], frame["text"], strict=True)) == kept
    with Catalog.open(corpus, read_only=True) as catalog:
        dropped = {r[0] for r in catalog.exec("SELECT id FROM documents WHERE drop_stage IS NOT NULL")}
        tokens = dict(catalog.exec("SELECT id, tokens FROM documents"))
    assert dropped and not dropped & set(frame["id"])
    assert dict(zip(frame["id"], frame["tokens"], strict=True)) == {i: tokens[i] for i in kept}
    assert frame.filter(pl.col("source") != "stack")["tokens"].min() > 0  # tokenized by the build
    stack = frame.filter(pl.col("source") == "stack").sort("path")
    assert stack["repo"].to_list() == [f"org/r{i}" for i in range(5)]
    assert stack["path"].to_list() == [f"src/f{i}.py" for i in range(5)]
    assert set(stack["license"]) == {"MIT"} and set(stack["language"]) == {"Python"}
    rewrite = frame.filter(pl.col("source") == "rewrite").sort("id").to_dicts()
    assert [(r["topic_path"], r["style"], r["model"], r["prompt_id"], r["original_id"]) for r in rewrite] == [
        ("Math > Algebra", "socratic", "m-7b", "p-1", "bios/00000000000000aa"),
        ("Math > Sets", "concise", "m-7b", "p-2", "bios/00000000000000bb"),
    ]
    assert {(r["format"], r["audience"], r["subject"], r["topic_id"]) for r in rewrite} == {
        ("rewrite", "high school", "Math", "t1"),
        ("rewrite", "high school", "Math", "t2"),
    }
    # Hugging Face datasets: the obvious glob, and one source by the card's configs.
    cache = str(tmp_path / "hf-cache")
    everything = datasets.load_dataset(
        "parquet", data_files=str(out / "*" / "train-*.parquet"), split="train", cache_dir=cache
    )
    assert everything.num_rows == len(kept) and set(everything.column_names) == set(EXPORT_SCHEMA.names)
    code = datasets.load_dataset(str(out), "code", split="train", cache_dir=cache)
    assert code.num_rows == stats["sources"]["code"]["documents"] == 12
    card = (out / "README.md").read_text()
    assert "config_name: stack" in card and "| bios |" in card and "MIT" in card
    assert "| dedup | bios | exact | 12 |" in card  # 120 bios, every 10th marked an exact duplicate
    assert "mix `bios:0.8,code:0.2`" in card and "| bios | 80.0" in card


def test_jsonl_and_one_source(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "jsonl"
    stats = export_corpus(corpus, out, fmt="jsonl", sources=["stack"])
    assert list(stats["sources"]) == ["stack"] and not (out / "bios").exists()
    ds = datasets.load_dataset(
        "json", data_files=str(out / "stack" / "*.jsonl"), split="train", cache_dir=str(tmp_path / "c")
    )
    assert ds.num_rows == 5 and sorted(ds["repo"]) == [f"org/r{i}" for i in range(5)]


def test_bad_arguments_are_one_line_errors(corpus: Corpus, tmp_path: Path) -> None:
    phicorpus = [sys.executable, "-m", "phicorpus.cli"]
    out = tmp_path / "x"
    r = subprocess.run([*phicorpus, "export", str(corpus.root), "--out", str(out), "--sources", "nope"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "source 'nope'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (out / "README.md").exists()
    out.mkdir(exist_ok=True)
    (out / "keep.txt").write_text("mine")
    r = subprocess.run([*phicorpus, "export", str(corpus.root), "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "not an empty directory" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

"""Code ingestion: directory walking with skip reasons, datasets with bad lines, exact text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import IngestConfig
from phicorpus.corpus import Corpus, read_texts
from phicorpus.sources.code import default_code_paths, document_id, ingest_code, root_license

EVIL = 'x\'); DROP TABLE documents; --\n$(rm -rf ~) `ls` && echo "$HOME" \\\\ %s ? $1 é\U0001f600\r\n\t'


def _tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "good.py").write_text("def f(x):\n    return x + 1\n")
    (root / "pkg" / "evil.py").write_text(EVIL, newline="")
    (root / "pkg" / "blob.py").write_bytes(b"abc\x00def\n")
    (root / "pkg" / "latin.py").write_bytes(b"# ok\nname = 'caf\xe9'\n")
    (root / "pkg" / "big.py").write_text("x = 1\n" * 400)
    (root / "pkg" / "app.min.js").write_text("var a=1;")
    (root / "pkg" / "msg_pb2.py").write_text("# protoc\n")
    (root / "pkg" / "wide.js").write_text("a" * 1500 + "\n")
    (root / "pkg" / "empty.py").write_text("\n\n")
    (root / "pkg" / "image.png").write_bytes(b"\x89PNG")
    (root / "pkg" / "vendor").mkdir()
    (root / "pkg" / "vendor" / "lib.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__").mkdir()


def test_directory_skips_with_reasons_and_text_round_trips(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    corpus = Corpus.create(tmp_path / "c")
    stats = ingest_code(corpus, [tmp_path / "src"], config=IngestConfig(max_file_bytes=2000))
    assert stats["documents"] == 2
    assert stats["skipped"] == {
        "binary": 1, "empty": 1, "generated": 1, "ignored_dir": 1, "invalid_utf8": 1, "minified": 2,
        "oversized": 1, "vendored": 1,
    }  # fmt: skip
    assert any("latin.py:2: invalid_utf8" in b for b in stats["bad"])
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec("SELECT id, file, row, language, bytes FROM documents ORDER BY id")
        skips = dict(cat.exec("SELECT reason, count(*) FROM ingest_skips GROUP BY ALL"))
        assert skips["oversized"] == 1
        path = str(tmp_path / "src" / "pkg" / "evil.py")
        evil_id = document_id("code", path, EVIL)
        (doc_file, doc_row) = cat.exec("SELECT file, row FROM documents WHERE id = ?", [evil_id])[0]
    assert {r[3] for r in rows} == {"Python"}
    # The text that looks like SQL and shell comes back byte for byte, from Parquet and SQL.
    assert read_texts(corpus, doc_file, [doc_row]) == [EVIL]
    from phicorpus.catalog import open_sql_connection

    con = open_sql_connection(corpus.root)
    try:
        assert con.execute("SELECT text FROM document_text WHERE id = ?", [evil_id]).fetchall() == [(EVIL,)]
    finally:
        con.close()


def test_rerun_is_a_no_op(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    corpus = Corpus.create(tmp_path / "c")
    config = IngestConfig(shard_files=2)
    first = ingest_code(corpus, [tmp_path / "src"], config=config)
    again = ingest_code(corpus, [tmp_path / "src"], config=config)
    assert first["shards_written"] > 1 and again["shards_written"] == 0
    assert again["shards_resumed"] == first["shards_written"] and again["documents"] == 0
    assert again["total_documents"] == first["total_documents"]


def test_datasets_keep_fields_and_report_bad_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "stack.jsonl"
    lines = [
        json.dumps({"content": "print(1)\n", "path": "a/b.py", "lang": "Python", "license": "MIT"}),
        "{not json",
        json.dumps({"text": "no content field"}),
        json.dumps({"content": "fn main() {}\n", "max_stars_repo_path": "m.rs", "language": "Rust",
                    "max_stars_repo_licenses": ["Apache-2.0", "MIT"]}),
    ]  # fmt: skip
    jsonl.write_bytes(
        ("\n".join(lines) + "\n").encode() + b'{"content": "\xff"}\n{"content": "x = \\udc80"}\n'
    )
    parquet = tmp_path / "stack.parquet"
    pq.write_table(pa.table({"content": ["int x;\n", None], "lang": ["C", "C"]}), parquet)
    nocontent = tmp_path / "other.parquet"
    pq.write_table(pa.table({"body": ["x"]}), nocontent)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    corpus = Corpus.create(tmp_path / "c")
    stats = ingest_code(corpus, [jsonl, parquet, nocontent, broken], config=IngestConfig())
    assert stats["documents"] == 3
    assert stats["skipped"] == {"bad_json": 1, "invalid_utf8": 2, "no_content": 3, "unreadable": 1}
    assert f"{jsonl}:2: bad_json" in "\n".join(stats["bad"])
    assert f"{jsonl}:5: invalid_utf8" in "\n".join(stats["bad"])
    assert f"{jsonl}:6: invalid_utf8 (character 4: surrogates not allowed)" in "\n".join(stats["bad"])
    with Catalog.open(corpus, read_only=True) as cat:
        got = cat.exec("SELECT language, license FROM documents ORDER BY language")
    assert got == [("C", None), ("Python", "MIT"), ("Rust", "Apache-2.0,MIT")]


MIT = """MIT License

Copyright (c) 2024 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy of this software...
"""


def test_directory_files_carry_relative_paths_repo_and_license(tmp_path: Path) -> None:
    repo = tmp_path / "checkouts" / "tinylib"
    (repo / "tinylib").mkdir(parents=True)
    (repo / "LICENSE").write_text(MIT)
    (repo / "tinylib" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    other = tmp_path / "loose.py"  # a file given alone: relative to its folder, no license file
    other.write_text("X = 1\n")
    corpus = Corpus.create(tmp_path / "c")
    ingest_code(corpus, [repo, other], config=IngestConfig())
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec("SELECT file, row, license, provenance FROM documents ORDER BY id")
    got = {}
    for file, row, license_, provenance in rows:
        table = pq.read_table(corpus.absolute(file)).to_pylist()[row]
        assert json.loads(provenance)["path"] == table["path"] and table["license"] == license_
        got[table["path"]] = (table["repo"], table["license"])
    assert got == {
        "tinylib/core.py": ("tinylib", "MIT"),
        "setup.py": ("tinylib", "MIT"),
        "loose.py": (tmp_path.name, None),
    }
    # The default input, the running Python's standard library, is PSF-licensed CPython.
    stdlib = default_code_paths()[0]
    if (stdlib / "LICENSE.txt").is_file():  # CPython's install puts it there (Debian's strips it)
        assert root_license(stdlib) == "PSF-2.0"

"""Readers never break a running build (issue 13): `phicorpus sql`, `phicorpus stats`, the
`duckdb` command line, a plain DuckDB read-only connection held open from before the build
starts, and fresh `open_corpus` reads in a loop, all while `phicorpus build` runs; the build
succeeds, its shards are byte-identical to a build nobody read, and every reader got an answer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import duckdb

from phicorpus import open_corpus
from phicorpus.corpus import sha256_file

CONFIG = """[build]
bios_people = 400
vocab_size = 800
tokenizer_sample_bytes = 300000
"""


def phicorpus() -> str:
    return str(Path(sys.executable).with_name("phicorpus"))


def build(corpus: Path, code: Path) -> subprocess.Popen[bytes]:
    """``ingest code`` first (so a catalog exists before the build starts), then the build."""
    corpus.mkdir()
    (corpus / "phicorpus.toml").write_text(CONFIG)
    ingest = subprocess.run(
        [phicorpus(), "ingest", "code", str(code), "--out", str(corpus)], capture_output=True, check=False
    )
    assert ingest.returncode == 0, ingest.stderr.decode()
    return subprocess.Popen(
        [phicorpus(), "build", "--mix", "synthetic:0.7,code:0.3", "--out", str(corpus), "--code", str(code)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def outputs(corpus: Path) -> dict[str, str]:
    build_dir = corpus / "build" / "main"
    return {p.name: sha256_file(p) for p in sorted(build_dir.iterdir()) if p.is_file()}


def test_readers_never_break_a_running_build(tmp_path: Path) -> None:
    code = tmp_path / "code"
    src = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json", "html", "urllib"):
        shutil.copytree(src / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))

    reference = tmp_path / "reference"
    quiet = build(reference, code)
    assert quiet.wait(300) == 0, quiet.stderr.read().decode() if quiet.stderr else ""
    expected = outputs(reference)
    assert {"manifest.json", "tokenizer.json", "train-00000.bin", "train-00000.idx"} <= set(expected)

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "phicorpus.toml").write_text(CONFIG)
    subprocess.run(
        [phicorpus(), "ingest", "code", str(code), "--out", str(victim)], check=True, capture_output=True
    )
    # A plain read-only connection, opened before the build starts and held open throughout.
    held = duckdb.connect(str(victim / "catalog.duckdb"), read_only=True)
    held_docs = held.execute("SELECT count(*) FROM documents").fetchall()[0][0]
    proc = subprocess.Popen(
        [phicorpus(), "build", "--mix", "synthetic:0.7,code:0.3", "--out", str(victim), "--code", str(code)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    stop = threading.Event()
    failures: list[str] = []
    python_latency: list[float] = []
    seen_runs: list[int] = []
    cli_calls = {"sql": 0, "stats": 0, "duckdb": 0}

    def python_readers() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                reader = open_corpus(victim)
                runs = reader.sql("SELECT count(*) AS n FROM stage_runs").item()
                kept = reader.kept().select("id").collect().height
                held.execute("SELECT count(*) FROM documents, stage_runs").fetchall()
            except Exception as exc:  # any failure of a reader is a test failure
                failures.append(f"python reader: {exc}")
                return
            python_latency.append(time.monotonic() - start)
            seen_runs.append(int(runs))
            assert kept >= 0
            time.sleep(0.05)

    duckdb_cli = str(Path(sys.executable).with_name("duckdb"))

    def cli_readers() -> None:
        k = 0
        while not stop.is_set():
            if k % 3 == 2:
                command = [phicorpus(), "stats", str(victim), "--json"]
                cli_calls["stats"] += 1
            elif k % 3 == 1:
                search = f"SET file_search_path = '{victim}'"
                query = "SELECT count(*) AS n FROM kept_text"
                command = [duckdb_cli, "-readonly", "-json", "-cmd", search, str(victim / "catalog.duckdb")]
                command += ["-c", query]
                cli_calls["duckdb"] += 1
            else:
                query = "SELECT count(*) AS n FROM kept_text"
                command = [phicorpus(), "sql", str(victim), query, "--format", "json"]
                cli_calls["sql"] += 1
            done = subprocess.run(command, capture_output=True, check=False)
            if done.returncode != 0:
                failures.append(f"{Path(command[0]).name} {command[1]}: {done.stderr.decode().strip()}")
                return
            json.loads(done.stdout.splitlines()[0] if "sql" in command else done.stdout)
            k += 1

    threads = [threading.Thread(target=python_readers), threading.Thread(target=cli_readers)]
    for t in threads:
        t.start()
    try:
        rc = proc.wait(300)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0, stderr
    assert not failures, failures
    assert outputs(victim) == expected

    # Every reader got answers, fast, and they moved forward with the build.
    assert cli_calls["sql"] >= 2 and cli_calls["stats"] >= 1 and cli_calls["duckdb"] >= 1, cli_calls
    # (The first read also starts polars' thread pool.)
    assert len(python_latency) >= 5 and max(python_latency[1:]) < 2.0, python_latency
    assert seen_runs == sorted(seen_runs) and seen_runs[-1] > seen_runs[0], seen_runs
    # The held connection still answers, from the snapshot it opened (before any bioS document).
    assert held.execute("SELECT count(*) FROM documents").fetchall()[0][0] == held_docs
    assert held.execute("SELECT count(*) FROM documents WHERE source = 'bios'").fetchall() == [(0,)]
    held.close()
    # After the build, a new reader sees the finished catalog.
    final = open_corpus(victim).sql("SELECT count(*) AS n FROM stage_runs WHERE status = 'done'").item()
    assert final >= seen_runs[-1]

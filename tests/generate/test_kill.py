"""kill -9 in the middle of ``phicorpus generate``, then re-run: nothing paid twice, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import write_prompts
from fake_server import FakeServer

from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus
from phicorpus.generate.journal import read_records

TOML = """[generate]
concurrency = 6
max_concurrency = 6
flush_every = 7
flush_seconds = 0.2
max_tokens = 100
min_chars = 20
backoff_base = 0.01

[generate.prices.m]
input = 1.0
output = 10.0
"""


def _cmd(prompts: Path, out: Path, url: str) -> list[str]:
    exe = Path(sys.executable).parent / "phicorpus"
    return [
        str(exe),
        "generate",
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--llm",
        url,
        "--model",
        "m",
        "--samples",
        "2",
        "--max-cost",
        "5",
    ]


def _results(journal: Path) -> set[str]:
    return {r["key"] for r in read_records(journal)[0] if r["t"] == "result"}


def test_kill_9_mid_run_then_rerun(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 40)
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "phicorpus.toml").write_text(TOML)
    journal = out / "requests" / "generate.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    with FakeServer(latency=0.03) as server:
        answered: set[str] = set()
        for kill_after in (6, 30):  # two kills: one before the first shard flush, one after several
            proc = subprocess.Popen(
                _cmd(prompts, out, server.url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 60
            while len(_results(journal)) < kill_after and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
            calls_before = len(server.calls)
            answered = _results(journal)
            assert len(answered) >= kill_after
            # the next run must never send a key the journal holds a result for
            proc = subprocess.Popen(
                _cmd(prompts, out, server.url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            if kill_after == 30:
                stdout, stderr = proc.communicate(timeout=120)
                assert proc.returncode == 0, stderr.decode()
                assert b"recovered" in stdout or b"already answered" in stdout
                resent = {c.key for c in server.calls[calls_before:]} & answered
                assert not resent, f"{len(resent)} answered keys sent again"
            else:
                # let it run a little, then kill it again before it finishes
                deadline = time.monotonic() + 60
                while len(_results(journal)) < 20 and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                resent = {c.key for c in server.calls[calls_before:]} & answered
                assert not resent
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
        total_calls = len(server.calls)
    corpus = Corpus.open(out)
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec("SELECT prompt_id, count(*) FROM documents GROUP BY prompt_id ORDER BY prompt_id")
        ndocs = cat.exec_one("SELECT count(*), count(DISTINCT id) FROM documents")
        files = cat.exec("SELECT DISTINCT file FROM documents")
    assert ndocs == (80, 80)
    assert len(rows) == 40 and all(n == 2 for _, n in rows)
    assert len(_results(journal)) == 80
    # each key answered once; only keys in flight at a kill (no result recorded) were sent again
    assert total_calls - 80 <= 2 * 6
    for (file,) in files:
        assert corpus.absolute(file).is_file()

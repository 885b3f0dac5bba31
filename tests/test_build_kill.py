"""`phicorpus build` killed with SIGKILL at arbitrary moments (bioS, ingest, filter, dedup,
tokenizer training, tokenize, shards), then re-run, gives shards and a manifest identical (sha256)
to an uninterrupted build, and `phicorpus verify` passes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from phicorpus.corpus import sha256_file

CONFIG = """[build]
bios_people = 3000
vocab_size = 2000
tokenizer_sample_bytes = 2000000
"""


def phicorpus() -> str:
    return str(Path(sys.executable).with_name("phicorpus"))


def build(corpus: Path, code: Path) -> subprocess.Popen[bytes]:
    corpus.mkdir(exist_ok=True)
    if not (corpus / "phicorpus.toml").exists():
        (corpus / "phicorpus.toml").write_text(CONFIG)
    return subprocess.Popen(
        [phicorpus(), "build", "--mix", "synthetic:0.7,code:0.3", "--out", str(corpus), "--code", str(code)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def outputs(corpus: Path) -> dict[str, str]:
    build_dir = corpus / "build" / "main"
    names = [p for p in sorted(build_dir.iterdir()) if p.is_file()]
    return {p.name: sha256_file(p) for p in names}


def test_kill_9_anywhere_then_rerun_gives_identical_build(tmp_path: Path) -> None:
    code = tmp_path / "code"
    src = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json", "email", "html", "http", "urllib", "xml"):
        shutil.copytree(src / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))

    reference = tmp_path / "reference"
    start = time.monotonic()
    done = build(reference, code)
    assert done.wait(300) == 0, done.stderr.read().decode() if done.stderr else ""
    took = time.monotonic() - start
    expected = outputs(reference)
    assert {"manifest.json", "tokenizer.json", "train-00000.bin", "train-00000.idx"} <= set(expected)

    victim = tmp_path / "victim"
    kills = 0
    for fraction in (0.15, 0.35, 0.55, 0.75, 0.9):
        proc = build(victim, code)
        try:
            proc.wait(timeout=took * fraction)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 2, "the build finished too fast to be interrupted"
    final = build(victim, code)
    assert final.wait(300) == 0, final.stderr.read().decode() if final.stderr else ""
    assert outputs(victim) == expected
    assert not list(victim.rglob(".*.tmp"))
    check = subprocess.run([phicorpus(), "verify", str(victim)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

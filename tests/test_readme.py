"""The README's main-job command runs as written, on the embedded defaults with no LLM, and writes
a build whose shares meet the 0.5% bound; then the README's Python examples run against it."""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def main_job_command() -> list[str]:
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1]
    line = next(ln for ln in setup.splitlines() if "phicorpus build" in ln and ln.startswith("    "))
    # "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/phicorpus build ..."
    steps = [s.strip() for s in line.split("&&")]
    assert steps[0].startswith("python3 -m venv") and "pip install ." in steps[1], line
    argv = shlex.split(steps[-1])
    assert argv[0].endswith("phicorpus") and argv[1] == "build", line
    # The package is installed in this interpreter's environment: run its `phicorpus`.
    return [str(Path(sys.executable).with_name("phicorpus")), *argv[1:]]


def read_idx_token_count(idx: Path) -> tuple[int, int]:
    """(documents, tokens) from a Megatron .idx, read from the documented layout."""
    data = idx.read_bytes()
    magic, version, dtype_code, n_seq, _n_doc = struct.unpack("<9sQBQQ", data[:34])
    assert magic == b"MMIDIDX\x00\x00" and version == 1 and dtype_code in (4, 8)
    lengths = np.frombuffer(data, dtype="<i4", count=n_seq, offset=34)
    return n_seq, int(lengths.sum())


def test_readme_main_job_then_python_examples(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}  # no LLM
    command = main_job_command()
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no LLM configured" in done.stdout and "not LLM output" in done.stdout

    build = tmp_path / "corpus" / "build" / "main"
    manifest = json.loads((build / "manifest.json").read_text())
    mix = command[command.index("--mix") + 1]  # e.g. synthetic:0.8,code:0.2
    weights = dict(item.split(":") for item in mix.split(","))
    train = manifest["sources"]
    total = sum(s["train_tokens"] for s in train.values())
    assert abs(train["bios"]["train_tokens"] / total - float(weights["synthetic"])) <= 0.005
    assert abs(train["code"]["train_tokens"] / total - float(weights["code"])) <= 0.005
    # The shards hold exactly the manifest's documents and tokens (eos included).
    docs = tokens = 0
    for idx in sorted(build.glob("train-*.idx")):
        d, t = read_idx_token_count(idx)
        docs, tokens = docs + d, tokens + t
        assert idx.with_suffix(".bin").stat().st_size == t * np.dtype(manifest["dtype"]).itemsize
    assert (docs, tokens) == (manifest["splits"]["train"]["documents"], total)

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2, "README.md lost its python examples"
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the examples read corpus/ and write tokenizer.json here
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "tokenizer.json").exists()

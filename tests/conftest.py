"""Session-wide fixtures: the real llama.cpp server (``tests/llama_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.llama_server import LlamaServer, run_llama_server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real OpenAI-compatible server (SmolLM2-135M on CPU, one slot) shared by every test."""
    with run_llama_server(tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server

"""Generation against a real OpenAI-compatible server: ``llama_cpp.server`` with SmolLM2-135M on CPU
(one slot: it answers one request at a time). Small on purpose: a few prompts, short answers."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import fast_config, write_prompts
from tests.llama_server import LlamaServer

from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.journal import iter_journal


def _generate(tmp: Path, server: LlamaServer, n: int, **cfg: object) -> tuple[Corpus, dict[str, object]]:
    tmp.mkdir(parents=True, exist_ok=True)
    corpus = Corpus.create(tmp / "corpus")
    prompts = write_prompts(tmp / "prompts.parquet", n)
    base: dict[str, object] = {
        "max_tokens": 24, "prices": {}, "max_continuations": 0, "request_timeout": 120.0,
    }  # fmt: skip
    base.update(cfg)
    config = fast_config(**base)
    stats = run_generation(
        corpus,
        prompts,
        endpoints=[server.url],
        model=server.model,
        params=GenerationParams.from_config(config, seed=1),
        max_cost=0.0,
        config=config,
        echo=print,
    )
    return corpus, stats


def test_a_queue_on_a_one_slot_server_is_not_a_timeout(tmp_path: Path, llama_server: LlamaServer) -> None:
    # Twelve requests at once on a server that runs one: the last waits for eleven answers, far
    # longer than the budget without progress; the others' answers are progress, so none times out.
    _generate(tmp_path / "cold", llama_server, 1, max_tokens=16)  # the first answer pages the model in
    warm = time.monotonic()
    _generate(tmp_path / "warm", llama_server, 2, max_tokens=16, concurrency=1, adaptive=False)
    latency = (time.monotonic() - warm) / 2  # one answer on this machine now
    budget = max(1.0, 4.0 * latency)  # room for a slower answer under a load spike
    start = time.monotonic()
    _, stats = _generate(
        tmp_path, llama_server, 12, max_tokens=16, concurrency=12, adaptive=False,
        request_timeout=budget, timeout_per_token=0.0,
    )  # fmt: skip
    assert stats["done"] == 12 and stats["failed"] == 0
    assert stats["errors"] == {} and stats["sent"] == 12, stats
    assert time.monotonic() - start > budget  # the queue did outlast one budget


def test_truncated_answers_are_continued(tmp_path: Path, llama_server: LlamaServer) -> None:
    corpus, stats = _generate(tmp_path, llama_server, 2, max_tokens=12, max_continuations=1)
    assert stats["done"] == 2 and stats["failed"] == 0
    journal = list(iter_journal(corpus.requests_dir / "generate.jsonl"))
    partials = [r for r in journal if r["t"] == "partial"]
    results = {r["key"]: r for r in journal if r["t"] == "result"}
    assert partials, "12 tokens cut every answer"
    for partial in partials:
        whole = results[partial["key"]]
        assert whole["parts"] == 2 and whole["text"].startswith(partial["text"].rstrip()[:20])
        assert whole["usage"]["completion_tokens"] > partial["usage"]["completion_tokens"]

"""The OpenAI Batch API: export, submit, status, import — joined to the same journal by request key.

- ``export`` writes every request without a result (and not in a batch still running) as JSONL
  lines ``{"custom_id": <request key>, "method": "POST", "url": "/v1/chat/completions", "body": ...}``
  under ``requests/batch/``, split at 50,000 lines or 200 MB per file.
- ``submit`` uploads each exported file not yet submitted and creates its batch, tagged with the
  file's sha256 in ``metadata``; a file whose tag is already on the server (a crash after creating
  the batch and before saving the state) is adopted, never submitted twice.
- ``status`` refreshes and prints each batch.
- ``import`` downloads the output and error files of finished batches (completed, expired,
  cancelled, failed), joins them by ``custom_id``, journals each result priced at the batch rate,
  journals the failed and the missing ones as transient failures, and writes the documents. The next
  ``export`` re-queues exactly what is missing or failed.

State lives in ``requests/batch/batches.json`` (written atomically after every change).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openai

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig
from phicorpus.corpus import Corpus, atomic_path, publish_bytes, sha256_file
from phicorpus.generate.cost import model_price, request_cost
from phicorpus.generate.journal import RequestJournal
from phicorpus.generate.requests import GenerationParams, Request, ShardWriter, build_requests, load_prompts
from phicorpus.generate.run import JOURNAL, pending_requests, recover

__all__ = ["MAX_BYTES", "MAX_LINES", "run_batch_action"]

MAX_LINES = 50_000
MAX_BYTES = 200 * 1000 * 1000
TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})


def _state_path(corpus: Corpus) -> Path:
    return corpus.requests_dir / "batch" / "batches.json"


def load_state(corpus: Corpus) -> dict[str, Any]:
    path = _state_path(corpus)
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state
    return {"files": []}


def save_state(corpus: Corpus, state: dict[str, Any]) -> None:
    publish_bytes(_state_path(corpus), json.dumps(state, indent=1, sort_keys=True).encode())


def _in_running_batches(state: dict[str, Any], corpus: Corpus) -> set[str]:
    """Keys of files submitted and not yet imported (their answers are still to come)."""
    keys: set[str] = set()
    for entry in state["files"]:
        if entry.get("batch_id") and not entry.get("imported"):
            for line in corpus.absolute(entry["path"]).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    keys.add(json.loads(line)["custom_id"])
    return keys


def export(
    corpus: Corpus,
    journal: RequestJournal,
    requests: Sequence[Request],
    model: str,
    *,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    state = load_state(corpus)
    # Files exported but never submitted are replaced by this export.
    for entry in [e for e in state["files"] if not e.get("batch_id")]:
        corpus.absolute(entry["path"]).unlink(missing_ok=True)
        state["files"].remove(entry)
    running = _in_running_batches(state, corpus)
    todo = [r for r in pending_requests(journal, requests, retry_failed=False) if r.key not in running]
    round_no = 1 + max((int(e["round"]) for e in state["files"]), default=0)
    chunks: list[list[bytes]] = [[]]
    size = 0
    for request in todo:
        line = (
            json.dumps(
                {
                    "custom_id": request.key,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": model, "messages": list(request.messages), **request.api},
                },
                ensure_ascii=False,
            ).encode()
            + b"\n"
        )
        if chunks[-1] and (len(chunks[-1]) >= max_lines or size + len(line) > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line)
    written = []
    for i, chunk in enumerate(c for c in chunks if c):
        path = corpus.requests_dir / "batch" / f"round-{round_no:03d}-part-{i:03d}.jsonl"
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"".join(chunk))
        entry = {
            "path": corpus.relative(path),
            "round": round_no,
            "lines": len(chunk),
            "sha256": sha256_file(path),
        }
        state["files"].append(entry)
        written.append(entry)
    save_state(corpus, state)
    return {"exported": len(todo), "files": [e["path"] for e in written], "in_running_batches": len(running)}


async def _submit(corpus: Corpus, client: openai.AsyncOpenAI, state: dict[str, Any]) -> dict[str, Any]:
    remote: dict[str, Any] = {}
    async for batch in client.batches.list(limit=100):
        tag = (batch.metadata or {}).get("phicorpus_sha256")
        if tag:
            remote[tag] = batch
    submitted, adopted = [], []
    for entry in state["files"]:
        if entry.get("batch_id"):
            continue
        if entry["sha256"] in remote:
            entry["batch_id"] = remote[entry["sha256"]].id
            adopted.append(entry["batch_id"])
        else:
            with open(corpus.absolute(entry["path"]), "rb") as fh:
                uploaded = await client.files.create(file=fh, purpose="batch")
            batch = await client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"phicorpus_sha256": entry["sha256"]},
            )
            entry["batch_id"] = batch.id
            submitted.append(batch.id)
        entry["status"] = "submitted"
        save_state(corpus, state)
    return {"submitted": submitted, "adopted": adopted}


async def _status(client: openai.AsyncOpenAI, state: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in state["files"]:
        if entry.get("batch_id") and not entry.get("imported"):
            batch = await client.batches.retrieve(entry["batch_id"])
            entry["status"] = batch.status
            entry["output_file_id"] = batch.output_file_id
            entry["error_file_id"] = batch.error_file_id
            counts = batch.request_counts.model_dump() if batch.request_counts else {}
            out.append({"batch": batch.id, "status": batch.status, **counts})
    return out


async def _download(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]


async def _import(
    corpus: Corpus,
    client: openai.AsyncOpenAI,
    state: dict[str, Any],
    journal: RequestJournal,
    by_key: dict[str, Request],
    config: GenerateConfig,
    model: str,
) -> dict[str, int]:
    price = model_price(model, config)
    counts = {"results": 0, "failed": 0, "missing": 0, "unknown": 0, "duplicates": 0}
    await _status(client, state)
    for entry in state["files"]:
        if not entry.get("batch_id") or entry.get("imported") or entry.get("status") not in TERMINAL:
            continue
        keys = [
            json.loads(x)["custom_id"] for x in corpus.absolute(entry["path"]).read_text().splitlines() if x
        ]
        seen: set[str] = set()
        records: list[dict[str, Any]] = []
        for line in await _download(client, entry.get("output_file_id")) + await _download(
            client, entry.get("error_file_id")
        ):
            key = line.get("custom_id")
            if key not in by_key:
                counts["unknown"] += 1
                continue
            if key in seen or key in journal.results:
                counts["duplicates"] += 1
                continue
            seen.add(key)
            response = line.get("response") or {}
            body = response.get("body") or {}
            status = int(response.get("status_code") or 0)
            endpoint = f"batch:{entry['batch_id']}"
            if status == 200 and body.get("choices"):
                choice = body["choices"][0]
                usage = body.get("usage") or {}
                records.append(
                    {
                        "t": "result",
                        "key": key,
                        "prompt_id": by_key[key].prompt_id,
                        "sample": by_key[key].sample,
                        "attempt": 1,
                        "endpoint": endpoint,
                        "model": body.get("model") or model,
                        "text": (choice.get("message") or {}).get("content") or "",
                        "finish_reason": choice.get("finish_reason"),
                        "usage": usage,
                        "cost": request_cost(price, usage, batch=True) if price else 0.0,
                        "batch": True,
                    }
                )
                counts["results"] += 1
            else:
                error = line.get("error") or body.get("error") or {}
                records.append(
                    {
                        "t": "fail",
                        "key": key,
                        "kind": "batch",
                        "endpoint": endpoint,
                        "reason": f"batch line status {status}: {json.dumps(error)[:300]}",
                        "billed": False,
                        "permanent": False,
                    }
                )
                counts["failed"] += 1
        for key in keys:
            if key not in seen and key not in journal.results:
                records.append(
                    {
                        "t": "fail",
                        "key": key,
                        "kind": "batch-missing",
                        "billed": False,
                        "endpoint": f"batch:{entry['batch_id']}",
                        "permanent": False,
                        "reason": f"no answer in batch ({entry['status']})",
                    }
                )
                counts["missing"] += 1
        journal.append_now(records)  # fsynced before the batch counts as imported
        entry["imported"] = True
        save_state(corpus, state)
    return counts


def run_batch_action(
    action: str,
    corpus: Corpus,
    prompts: Path,
    *,
    endpoints: Sequence[str],
    model: str,
    params: GenerationParams,
    config: GenerateConfig,
    api_key: str = "",
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run one Batch API action (``export``, ``submit``, ``status``, ``import``); returns its statistics."""
    requests = build_requests(load_prompts(prompts), model, params, where=str(prompts))
    with RequestJournal.open(corpus.requests_dir / JOURNAL) as journal:
        if action == "export":
            return export(corpus, journal, requests, model)
        if not endpoints:
            raise ValueError("no LLM endpoint: give --llm URL or set OPENAI_BASE_URL")
        state = load_state(corpus)

        async def main() -> dict[str, Any]:
            client = openai.AsyncOpenAI(base_url=endpoints[0], api_key=api_key or "none", max_retries=2)
            try:
                if action == "submit":
                    return await _submit(corpus, client, state)
                if action == "status":
                    rows = await _status(client, state)
                    save_state(corpus, state)
                    for row in rows:
                        echo(json.dumps(row, sort_keys=True))
                    return {"batches": len(rows)}
                if action == "import":
                    by_key = {r.key: r for r in requests}
                    return dict(await _import(corpus, client, state, journal, by_key, config, model))
                raise ValueError(f"unknown batch action {action!r}")
            finally:
                await client.close()

        stats = asyncio.run(main())
        if action == "import":
            with Catalog.open(corpus) as catalog:
                writer = ShardWriter(corpus, catalog, config, model)
                stats["documents"] = recover(writer, journal, requests)
                stats["pending"] = len(pending_requests(journal, requests, retry_failed=False))
        return stats

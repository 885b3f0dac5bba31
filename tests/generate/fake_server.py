"""A loopback OpenAI-compatible server for tests and benches: real HTTP/1.1, faults injected.

Speaks ``POST /v1/chat/completions``, ``POST /v1/files`` (multipart), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``. Every call is counted in :attr:`FakeServer.calls`
(and appended to ``--log`` as JSONL when run as a process). Behaviour per call comes from
``plan(call) -> Action``; the default answers every request after ``latency`` seconds.

Run in a thread (``with FakeServer(...) as server: server.url``) or as a process
(``python fake_server.py --latency 0.05 --log calls.jsonl`` prints ``PORT <n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Action:
    kind: str = "ok"  # ok | status | hang | malformed | drop
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0
    text: str | None = None
    finish_reason: str = "stop"
    completion_tokens: int | None = None


@dataclass
class Call:
    key: str
    n: int  # how many times this key has been seen, including this one
    index: int  # global call index
    start: float
    body: dict[str, Any]
    end: float = 0.0
    outcome: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def default_text(key: str, body: dict[str, Any]) -> str:
    user = next((m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"), "")
    if "EXERCISE" in user:
        return (
            "### Problem\nWrite add(a, b).\n\n"
            "### Solution\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
            "### Tests\n```python\nassert add(1, 2) == 3\n```\n"
        )
    seed = hashlib.sha256(key.encode()).hexdigest()
    rng = random.Random(seed)
    words = ("light", "water", "energy", "river", "number", "pattern", "market", "garden", "signal", "school")
    sentences = " ".join(
        f"The {rng.choice(words)} of the {rng.choice(words)} is {rng.choice(words)} and {rng.choice(words)}."
        for _ in range(12)
    )  # varied, so that it is not a degenerate loop
    return f"Sure! Here is the text:\n\nDocument {seed[:16]} about {user[:40]}. {sentences}"


class FakeServer:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        plan: Callable[[Call], Action] | None = None,
        completion_tokens: int = 50,
        log_path: str | None = None,
        headers: dict[str, str] | None = None,
        batch_plan: Callable[[dict[str, Any]], str] | None = None,
        record_calls: bool = True,
        slots: int = 0,
        token_seconds: float = 0.0,
        props: dict[str, Any] | None = None,
        models: list[dict[str, Any]] | None = None,
    ) -> None:
        self.latency = latency
        # A server that runs ``slots`` requests at once (0: unlimited), each taking ``latency`` plus
        # ``token_seconds`` per completion token; the rest wait in its queue, as a real one's do.
        self.slots = slots
        self.token_seconds = token_seconds
        self._slots_sem: asyncio.Semaphore | None = None
        self.props = props  # served at GET /props (llama.cpp server), 404 when None
        self.models = models  # served at GET /v1/models
        self.max_running = 0
        self._running = 0
        self.plan = plan or (lambda call: Action())
        self.completion_tokens = completion_tokens
        self.calls: list[Call] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self.extra_headers = headers or {}
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        # batch_plan(line) -> "ok" | "error" | "expired" for each line of a submitted batch.
        self.batch_plan = batch_plan or (lambda line: "ok")
        self.batch_inputs: list[list[str]] = []  # custom_ids of each submitted batch
        self.record_calls = record_calls
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeServer:
        self._thread = threading.Thread(target=self._run_thread, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    def _run_thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.start())
        self._ready.set()
        self._loop.run_forever()
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                keep = await self._dispatch(method, path, headers, body, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
        ctype: str = "application/json",
    ) -> None:
        head = [f"HTTP/1.1 {status} X", f"content-type: {ctype}", f"content-length: {len(payload)}"]
        for k, v in {**self.extra_headers, **(headers or {})}.items():
            head.append(f"{k}: {v}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "POST" and path.endswith("/chat/completions"):
            return await self._chat(headers, body, writer)
        if method == "GET" and path == "/props" and self.props is not None:
            await self._send(writer, 200, json.dumps(self.props).encode())
            return True
        if method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": self.models or [{"id": "m", "object": "model"}]}
            await self._send(writer, 200, json.dumps(data).encode())
            return True
        if method == "POST" and path.endswith("/files"):
            return await self._upload(headers, body, writer)
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            fid = path.split("/")[3]
            await self._send(writer, 200, self.files.get(fid, b""), ctype="application/octet-stream")
            return True
        if method == "POST" and path.endswith("/batches"):
            return await self._create_batch(json.loads(body), writer)
        if method == "GET" and path.startswith("/v1/batches/"):
            bid = path.split("/")[3]
            await self._send(writer, 200, json.dumps(self.batches[bid]).encode())
            return True
        if method == "GET" and path.startswith("/v1/batches"):
            data = {"object": "list", "data": list(self.batches.values()), "has_more": False}
            await self._send(writer, 200, json.dumps(data).encode())
            return True
        await self._send(writer, 404, b'{"error": {"message": "not found"}}')
        return True

    def completion(self, key: str, body: dict[str, Any], action: Action) -> tuple[dict[str, Any], int, int]:
        text = action.text if action.text is not None else default_text(key, body)
        prompt_tokens = (
            sum(len(str(m.get("content", "")).encode()) for m in body.get("messages", [])) // 4 + 7
        )
        ct = action.completion_tokens if action.completion_tokens is not None else self.completion_tokens
        ct = min(ct, int(body.get("max_tokens") or body.get("max_completion_tokens") or ct))
        return (
            {
                "id": "chatcmpl-" + key[:12],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "m"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": action.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": ct,
                    "total_tokens": prompt_tokens + ct,
                },
            },
            prompt_tokens,
            ct,
        )

    async def _chat(self, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter) -> bool:
        body = json.loads(raw)
        key = headers.get("x-client-request-id", "")
        with self.lock:
            n = self.counts.get(key, 0) + 1
            self.counts[key] = n
            call = Call(key, n, len(self.calls), time.monotonic(), body if self.record_calls else {})
            if self.record_calls:
                self.calls.append(call)
        action = self.plan(call)
        if self.slots:
            if self._slots_sem is None:
                self._slots_sem = asyncio.Semaphore(self.slots)
            async with self._slots_sem:
                self._running += 1
                self.max_running = max(self.max_running, self._running)
                try:
                    ct = action.completion_tokens
                    ct = min(ct or self.completion_tokens, int(body.get("max_tokens") or 1 << 30))
                    await asyncio.sleep(self.latency + ct * self.token_seconds)
                finally:
                    self._running -= 1
        elif self.latency:
            await asyncio.sleep(self.latency)
        keep = True
        if action.kind == "hang":
            await asyncio.sleep(action.seconds)
            call.outcome = "hang"
            keep = False
        elif action.kind == "drop":
            call.outcome = "drop"
            keep = False
        elif action.kind == "status":
            call.outcome = str(action.status)
            payload = json.dumps(action.body or {"error": {"message": f"injected {action.status}"}}).encode()
            await self._send(writer, action.status, payload, action.headers)
        elif action.kind == "malformed":
            call.outcome = "malformed"
            await self._send(writer, 200, b'{"id": "x", "choices": [ {"mess', action.headers)
        else:
            payload, call.prompt_tokens, call.completion_tokens = self.completion(key, body, action)
            call.outcome = "ok"
            await self._send(writer, 200, json.dumps(payload).encode(), action.headers)
        call.end = time.monotonic()
        if self.log:
            self.log.write(json.dumps({"key": key, "n": n, "outcome": call.outcome}) + "\n")
            self.log.flush()
        return keep

    async def _upload(self, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        boundary = headers["content-type"].split("boundary=", 1)[1].strip('"').encode()
        content = b""
        for part in body.split(b"--" + boundary):
            if b'name="file"' in part:
                content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        fid = "file-" + uuid.uuid4().hex[:12]
        self.files[fid] = content
        obj = {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }
        await self._send(writer, 200, json.dumps(obj).encode())
        return True

    async def _create_batch(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        lines = [json.loads(x) for x in self.files[req["input_file_id"]].decode().splitlines() if x.strip()]
        self.batch_inputs.append([x["custom_id"] for x in lines])
        out, err = [], []
        expired = False
        for line in lines:
            fate = self.batch_plan(line)
            if fate == "expired":
                expired = True
                continue
            if fate == "error":
                err.append(
                    {
                        "id": "r",
                        "custom_id": line["custom_id"],
                        "response": {
                            "status_code": 500,
                            "body": {"error": {"message": "injected", "type": "server_error"}},
                        },
                        "error": None,
                    }
                )
                continue
            payload, _, _ = self.completion(line["custom_id"], line["body"], Action())
            out.append(
                {
                    "id": "r",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": 200, "request_id": "q", "body": payload},
                    "error": None,
                }
            )
        random.shuffle(out)
        random.shuffle(err)
        bid = "batch_" + uuid.uuid4().hex[:12]
        ofid = efid = None
        if out:
            ofid = "file-" + uuid.uuid4().hex[:12]
            self.files[ofid] = "".join(json.dumps(x) + "\n" for x in out).encode()
        if err:
            efid = "file-" + uuid.uuid4().hex[:12]
            self.files[efid] = "".join(json.dumps(x) + "\n" for x in err).encode()
        self.batches[bid] = {
            "id": bid,
            "object": "batch",
            "endpoint": req["endpoint"],
            "input_file_id": req["input_file_id"],
            "completion_window": req["completion_window"],
            "status": "expired" if expired else "completed",
            "output_file_id": ofid,
            "error_file_id": efid,
            "created_at": int(time.time()),
            "metadata": req.get("metadata"),
            "request_counts": {"total": len(lines), "completed": len(out), "failed": len(err)},
        }
        await self._send(writer, 200, json.dumps(self.batches[bid]).encode())
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--log", default=None)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--p429", type=float, default=0.0, help="share of calls answered 429")
    parser.add_argument("--p500", type=float, default=0.0, help="share of calls answered 500")
    parser.add_argument("--retry-after", type=float, default=0.2, help="Retry-After of the 429s (s)")
    args = parser.parse_args()

    def faults(call: Call) -> Action:
        # Seeded by key and attempt, so a run is reproducible whatever the interleaving.
        r = random.Random(f"{call.key}:{call.n}").random()
        if r < args.p429:
            return Action("status", 429, headers={"retry-after": str(args.retry_after)})
        if r < args.p429 + args.p500:
            return Action("status", 500)
        return Action()

    server = FakeServer(
        latency=args.latency, log_path=args.log, record_calls=not args.no_record,
        plan=faults if args.p429 or args.p500 else None,
    )  # fmt: skip

    async def serve() -> None:
        await server.start()
        print(f"PORT {server.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

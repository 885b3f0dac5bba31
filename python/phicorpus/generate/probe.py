"""What a server says about itself: how many requests it runs at once, its context, whether it is up.

Asked once per endpoint before anything is sent (each probe a GET with a short timeout; a 404 is
just "not this kind of server"):

- llama.cpp's ``llama-server``: ``GET /props`` (``total_slots``,
  ``default_generation_settings.n_ctx``), else ``GET /slots`` (one entry per slot);
- SGLang: ``GET /get_server_info`` (``max_running_requests``, ``context_length``);
- vLLM: ``GET /v1/models`` (``max_model_len``) and ``GET /metrics`` (``vllm:`` series present:
  the limit is measured, starting high: vLLM's ``max_num_seqs`` defaults to 256);
- any server: ``GET /v1/models`` answering at all tells the endpoint is reachable.

A server that says nothing (llama-cpp-python's ``llama_cpp.server``, hosted APIs) gets its limit
measured by :class:`phicorpus.generate.limits.AdaptiveConcurrency`. A connection refused or a
name that does not resolve makes the endpoint *unreachable*: the run reports it within seconds.

Example:
    >>> info = asyncio.run(probe_server("http://127.0.0.1:8080/v1"))  # doctest: +SKIP
    >>> info.slots, info.context  # doctest: +SKIP
    (1, 4096)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

__all__ = ["ServerInfo", "is_local_url", "probe_server"]

PROBE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What one endpoint told about itself (``None``: it did not say)."""

    url: str
    reachable: bool
    error: str | None = None  # why it is unreachable
    kind: str | None = None  # "llama.cpp", "sglang", "vllm", None
    slots: int | None = None  # requests it runs at once
    context: int | None = None  # tokens of context (prompt + output)
    models: tuple[str, ...] = ()


def _root(url: str) -> str:
    base = url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        text = await response.text()
        if response.status != 200:
            return response.status, None
        if "json" in (response.headers.get("content-type") or "") or text[:1] in "{[":
            try:
                return 200, json.loads(text)
            except ValueError:
                return 200, text
        return 200, text


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


async def probe_server(url: str, *, api_key: str = "", timeout: float = PROBE_TIMEOUT) -> ServerInfo:
    """Ask the server at ``url`` (an OpenAI base URL) what it can run; never raises."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    root = _root(url)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout, headers=headers) as session:
            try:
                _, models = await _get(session, url.rstrip("/") + "/models")
            except aiohttp.ClientConnectorError as exc:
                return ServerInfo(url, False, f"{type(exc).__name__}: {exc}")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                # It accepted the connection (or timed out): up, but slow or odd.
                return ServerInfo(url, True, f"{type(exc).__name__}: {exc}")
            names: tuple[str, ...] = ()
            context: int | None = None
            if isinstance(models, dict) and isinstance(models.get("data"), list):
                entries = [m for m in models["data"] if isinstance(m, dict)]
                names = tuple(str(m.get("id")) for m in entries)
                lengths = [_int(m.get("max_model_len")) for m in entries]
                context = next((n for n in lengths if n), None)
            paths = ("/props", "/slots", "/get_server_info", "/metrics")
            results = await asyncio.gather(*(_safe_get(session, root + path) for path in paths))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return ServerInfo(url, True, f"{type(exc).__name__}: {exc}")
    props, slots_list, sglang, metrics = (body for _, body in results)
    if isinstance(props, dict) and ("total_slots" in props or "default_generation_settings" in props):
        settings = props.get("default_generation_settings") or {}
        n_ctx = _int(settings.get("n_ctx")) if isinstance(settings, dict) else None
        slots = _int(props.get("total_slots"))
        return ServerInfo(url, True, None, "llama.cpp", slots, n_ctx or context, names)
    if isinstance(slots_list, list) and slots_list and all(isinstance(s, dict) for s in slots_list):
        n_ctx = _int(slots_list[0].get("n_ctx"))
        return ServerInfo(url, True, None, "llama.cpp", len(slots_list), n_ctx or context, names)
    if isinstance(sglang, dict) and ("max_running_requests" in sglang or "context_length" in sglang):
        return ServerInfo(
            url, True, None, "sglang", _int(sglang.get("max_running_requests")),
            _int(sglang.get("context_length")) or context, names,
        )  # fmt: skip
    if isinstance(metrics, str) and "vllm:" in metrics:
        return ServerInfo(url, True, None, "vllm", None, context, names)
    return ServerInfo(url, True, None, None, None, context, names)


async def _safe_get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        return await _get(session, url)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return 0, None


def is_local_url(url: str) -> bool:
    """True for an endpoint on loopback or a private address (a model the operator runs: $0)."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            return False
    return address.is_loopback or address.is_private or address.is_link_local

"""The LLM client: one ``AsyncOpenAI`` per endpoint, SDK retries off, every attempt classified.

:meth:`LLMClient.complete` makes exactly one HTTP attempt and returns a :class:`Completion` or
raises :class:`AttemptFailed` carrying a :class:`~phicorpus.generate.retry.Failure`; retrying is
the caller's job (:mod:`phicorpus.generate.run`), so that each attempt is journaled and priced.
The request key travels as the ``X-Client-Request-Id`` header (OpenAI echoes it in its logs), so a
server can tell one logical request from another.

Example:
    >>> client = LLMClient("http://127.0.0.1:8000/v1", api_key="sk-...", timeout=60)  # doctest: +SKIP
    >>> done = await client.complete(key, "gpt-4o-mini", messages, {"top_p": 1.0})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from phicorpus.generate.retry import Failure, classify_status

__all__ = ["AttemptFailed", "Completion", "LLMClient"]


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str | None
    usage: dict[str, Any]
    headers: Mapping[str, str]
    model: str | None = None


class AttemptFailed(Exception):
    def __init__(self, failure: Failure, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.headers = headers


def _http_client(limits: Any) -> Any:
    """The SDK's aiohttp-backed client when aiohttp is installed (about half the CPU per request of
    the default transport), else its default one."""
    try:
        import aiohttp  # noqa: F401

        return openai.DefaultAioHttpClient(limits=limits)
    except (ImportError, RuntimeError, AttributeError):
        return openai.DefaultAsyncHttpxClient(limits=limits)


#: The SDK's telemetry headers, left off every request: each header costs CPU in the SDK's header
#: merging and the HTTP client's case-insensitive header handling on every request, and no
#: OpenAI-compatible server needs them (the SDK documents ``Omit`` as the way to remove one).
_OMITTED_DEFAULT = (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
    "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async",
)  # fmt: skip
_OMITTED_PER_REQUEST = ("x-stainless-retry-count", "x-stainless-read-timeout")

_UNREACHABLE = frozenset({"ConnectionRefusedError", "gaierror", "ClientConnectorDNSError"})
_UNSENT = _UNREACHABLE | {"ConnectError", "ConnectTimeout", "ClientConnectorError", "ConnectionTimeoutError"}


def _unsent(exc: BaseException) -> Failure | None:
    """The failure of an attempt that never reached the server (nothing billed), else None.

    A refused connection or a name that does not resolve is ``unreachable``; a connect timeout
    is a ``connection`` failure. The SDK's transports wrap these differently (the aiohttp one
    reports a refused connection as a connect *timeout*), so the whole cause chain is read.
    """
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {type(e).__name__ for e in chain}
    last = chain[-1]
    if _UNREACHABLE.intersection(names):
        return Failure("unreachable", f"unreachable: {type(last).__name__}: {last}", billed=False)
    if _UNSENT.intersection(names):
        return Failure("connection", f"could not connect: {type(last).__name__}: {last}", billed=False)
    return None


class LLMClient:
    """One OpenAI-compatible endpoint.

    Requests go through the SDK's own request path (``AsyncOpenAI.post``: its auth, headers, error
    types and timeouts) with the body built here and the JSON read here: the SDK's per-call
    parameter transformation and pydantic model building cost more CPU than the rest of a request.
    Connections are spread over several SDK clients of at most :data:`POOL_SIZE` connections each,
    because the HTTP pool scans all its connections for every request it assigns.
    """

    POOL_SIZE = 32

    def __init__(self, base_url: str, *, api_key: str, timeout: float, max_connections: int = 256) -> None:
        self.base_url = base_url
        # The SDK's own HTTP client class (httpx or its successor, whichever this SDK ships with).
        http_module = sys.modules[openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
        self._response_type = http_module.Response
        shards = max(1, -(-max_connections // self.POOL_SIZE))
        per = -(-max_connections // shards)
        limits = http_module.Limits(max_connections=per, max_keepalive_connections=per)
        # Connecting must be quick (an unreachable endpoint is reported within seconds); the answer
        # may take long (the engine times attempts out on lack of progress, not on this).
        timeouts = http_module.Timeout(timeout, connect=min(timeout, 10.0))
        omitted: dict[str, Any] = dict.fromkeys(_OMITTED_DEFAULT, openai.Omit())  # typed str, takes Omit
        self.sdks = [
            openai.AsyncOpenAI(
                base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeouts,
                http_client=_http_client(limits), default_headers=omitted,
            )
            for _ in range(shards)
        ]  # fmt: skip
        self._next = 0
        self._url = str(self.sdks[0].base_url).rstrip("/") + "/chat/completions"
        self._omit = dict.fromkeys(_OMITTED_PER_REQUEST, openai.Omit())

    @property
    def sdk(self) -> openai.AsyncOpenAI:
        return self.sdks[0]

    async def close(self) -> None:
        for sdk in self.sdks:
            await sdk.close()

    async def complete(
        self, key: str, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        """One attempt. Raises :class:`AttemptFailed` on any failure, classified."""
        sdk = self.sdks[self._next]
        self._next = (self._next + 1) % len(self.sdks)
        try:
            raw = await sdk.post(
                self._url,  # absolute: the SDK would join it to its base URL on every request
                cast_to=self._response_type,
                body={"model": model, "messages": list(messages), **params},
                options={"headers": {"X-Client-Request-Id": key, **self._omit}},
            )
        except openai.APITimeoutError as exc:
            unsent = _unsent(exc)
            if unsent is not None:
                raise AttemptFailed(unsent) from exc
            raise AttemptFailed(Failure("timeout", f"timed out: {exc}", billed=True)) from exc
        except openai.APIStatusError as exc:
            body: Any = exc.body
            headers = exc.response.headers
            raise AttemptFailed(classify_status(exc.status_code, body, headers), headers) from exc
        except openai.APIConnectionError as exc:
            # Refused before sending costs nothing; a connection dropped mid-response may have.
            unsent = _unsent(exc)
            if unsent is not None:
                raise AttemptFailed(unsent) from exc
            cause = exc.__cause__
            raise AttemptFailed(Failure("connection", f"connection: {cause or exc}", billed=True)) from exc
        headers = raw.headers
        try:
            data = json.loads(raw.content)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            if not isinstance(text, str) or not isinstance(usage, dict):
                raise TypeError("content or usage of the wrong type")
            return Completion(text, choice.get("finish_reason"), usage, headers, data.get("model"))
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            raise AttemptFailed(
                Failure("malformed", f"malformed response body: {type(exc).__name__}: {exc}", billed=True),
                headers,
            ) from exc

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


class LLMClient:
    """One OpenAI-compatible endpoint."""

    def __init__(self, base_url: str, *, api_key: str, timeout: float, max_connections: int = 1024) -> None:
        self.base_url = base_url
        # The SDK's own HTTP client class (httpx or its successor, whichever this SDK ships with),
        # with a pool as large as the concurrency can grow.
        http_module = sys.modules[openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
        limits_cls = http_module.Limits
        http = openai.DefaultAsyncHttpxClient(
            limits=limits_cls(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self.sdk = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout, http_client=http
        )

    async def close(self) -> None:
        await self.sdk.close()

    async def complete(
        self, key: str, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        """One attempt. Raises :class:`AttemptFailed` on any failure, classified."""
        try:
            raw = await self.sdk.chat.completions.with_raw_response.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                extra_headers={"X-Client-Request-Id": key},
                **params,
            )
        except openai.APITimeoutError as exc:
            raise AttemptFailed(Failure("timeout", f"timed out: {exc}", billed=True)) from exc
        except openai.APIStatusError as exc:
            body: Any = exc.body
            headers = exc.response.headers
            raise AttemptFailed(classify_status(exc.status_code, body, headers), headers) from exc
        except openai.APIConnectionError as exc:
            # Refused before sending costs nothing; a connection dropped mid-response may have.
            cause = exc.__cause__
            refused = type(cause).__name__ in ("ConnectError", "ConnectionRefusedError")
            raise AttemptFailed(
                Failure("connection", f"connection: {cause or exc}", billed=not refused)
            ) from exc
        headers = raw.headers
        try:
            response = raw.parse()
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = response.usage.model_dump() if response.usage else {}
            finish = choice.finish_reason
            model_name = response.model
        except (json.JSONDecodeError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            raise AttemptFailed(
                Failure("malformed", f"malformed response body: {type(exc).__name__}: {exc}", billed=True),
                headers,
            ) from exc
        except openai.APIResponseValidationError as exc:
            raise AttemptFailed(
                Failure("malformed", f"malformed response body: {exc}", billed=True), headers
            ) from exc
        if not isinstance(text, str) or not isinstance(response.choices, list):
            raise AttemptFailed(Failure("malformed", "malformed response body", billed=True), headers)
        return Completion(text, finish, usage, headers, model_name)

"""Prices, the cost estimate, and the hard cost cap.

Prices come from ``[generate.prices."<model>"]`` in ``phicorpus.toml`` over the shipped defaults
(:data:`phicorpus.config.DEFAULT_PRICES`, dated :data:`phicorpus.config.PRICES_DATE`). A model with
no price is an error when a cost cap is set: a cap that cannot be checked is no cap.

The cap (``--max-cost``) is checked before every send: a request may go out only if

    spent + possibly billed + worst case of everything in flight + worst case of this one <= cap

where the worst case of a request is its prompt at one token per byte (a byte-level BPE never
makes more tokens than bytes) plus the chat template's overhead, and ``max_tokens`` of output.
So the cap holds even if every response in flight comes back at full length and every timed-out
attempt was billed.

Example:
    >>> meter = CostMeter(price=ModelPrice(1.0, 2.0), cap=1.0)
    >>> meter.reserve(0.4) and meter.reserve(0.4) and not meter.reserve(0.4)
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phicorpus.config import DEFAULT_PRICES, GenerateConfig, ModelPrice

__all__ = ["CostMeter", "model_price", "prompt_tokens_upper", "request_cost"]

# Chat template tokens per message and per request (OpenAI's counting recipe uses 3-4 and 3).
PER_MESSAGE_TOKENS = 8
PER_REQUEST_TOKENS = 16


def model_price(model: str, config: GenerateConfig) -> ModelPrice | None:
    """The price of ``model``: the corpus's table, then the shipped one; a dated suffix matches its base.

    ``gpt-4o-2024-08-06`` falls back to ``gpt-4o`` when it has no row of its own.
    """
    table: dict[str, ModelPrice] = {**DEFAULT_PRICES, **config.prices}
    if model in table:
        return table[model]
    best = max((name for name in table if model.startswith(name + "-")), key=len, default=None)
    return table[best] if best else None


def prompt_tokens_upper(messages: Sequence[Mapping[str, Any]]) -> int:
    """An upper bound on the prompt tokens of ``messages`` (one token per UTF-8 byte + template)."""
    total = PER_REQUEST_TOKENS
    for message in messages:
        content = message.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content)
        total += len(content.encode()) + PER_MESSAGE_TOKENS
    return total


def prompt_tokens_guess(messages: Sequence[Mapping[str, Any]]) -> int:
    """A typical prompt token count (about 4 bytes per token of English), for the estimate."""
    return sum(len(str(m.get("content", "")).encode()) // 4 + 4 for m in messages) + 3


def request_cost(price: ModelPrice, usage: Mapping[str, Any] | None, *, batch: bool = False) -> float:
    """USD of one response from its ``usage`` (prompt, cached prompt and completion tokens)."""
    if not usage:
        return 0.0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
    cached_price = price.cached_input if price.cached_input >= 0 else price.input
    usd = ((prompt - cached) * price.input + cached * cached_price + completion * price.output) / 1e6
    return usd * (price.batch if batch else 1.0)


def worst_case_cost(price: ModelPrice, prompt_upper: int, max_tokens: int) -> float:
    return (prompt_upper * price.input + max_tokens * price.output) / 1e6


@dataclass
class CostMeter:
    """Money spent, possibly spent, and reserved for requests in flight; enforces the cap.

    ``cap <= 0`` means no cap (the meter still counts).
    """

    price: ModelPrice | None
    cap: float = 0.0
    spent: float = 0.0  # from the usage of responses received
    possibly: float = 0.0  # worst case of attempts whose outcome is unknown (timeouts, kills)
    in_flight: float = 0.0  # worst case of attempts on the wire now
    refused: int = 0
    by_model: dict[str, float] = field(default_factory=dict)

    @property
    def committed(self) -> float:
        return self.spent + self.possibly + self.in_flight

    def reserve(self, worst: float) -> bool:
        """Reserve ``worst`` USD for one attempt; False (and nothing reserved) if it could break the cap."""
        if self.cap > 0 and self.committed + worst > self.cap + 1e-12:
            self.refused += 1
            return False
        self.in_flight += worst
        return True

    def settle(self, worst: float, actual: float | None) -> None:
        """Release a reservation: ``actual`` USD known, or ``None`` (unknown: count the worst case)."""
        self.in_flight = max(0.0, self.in_flight - worst)
        if actual is None:
            self.possibly += worst
        else:
            self.spent += actual

"""Configuration: one typed object loaded from ``phicorpus.toml`` and overridden by CLI flags.

Each stage owns one section (a frozen dataclass below). Loading checks every key and type and
names the file and key of anything wrong; unknown keys are errors (a typo must not silently fall
back to a default). :meth:`Config.to_toml` writes the resolved configuration a corpus was built
with, which re-runs read back.

Example:
    >>> config = Config.load("corpus/phicorpus.toml")  # doctest: +SKIP
    >>> config = config.override(dedup={"threshold": 0.7})  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomllib

__all__ = [
    "BuildConfig",
    "Config",
    "ConfigError",
    "DecontamConfig",
    "DedupConfig",
    "FilterConfig",
    "GenerateConfig",
    "IngestConfig",
    "ModelPrice",
    "PromptsConfig",
]


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """``[ingest]``: code ingestion (issue 3)."""


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """``[filter]``: heuristic quality rules and the educational-value filter (issue 3)."""


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """``[dedup]``: exact and MinHash-LSH near-duplicate removal (issue 3)."""


@dataclass(frozen=True, slots=True)
class DecontamConfig:
    """``[decontam]``: benchmark n-gram decontamination (issue 3)."""


@dataclass(frozen=True, slots=True)
class PromptsConfig:
    """``[prompts]``: the prompt engine (issue 4)."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens of one model; ``batch`` multiplies both prices for the Batch API."""

    input: float
    output: float
    batch: float = 0.5
    cached_input: float = -1.0  # < 0: same as input


# Shipped list prices (USD per 1M tokens), as published by the providers on PRICES_DATE.
# A corpus overrides or extends them under [generate.prices."<model>"] in phicorpus.toml.
PRICES_DATE = "2026-11-01"
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
}


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    """``[generate]``: the LLM client, limits and prices (issue 5).

    Rates of 0 mean "unlimited unless the server's ``x-ratelimit-*`` headers say otherwise".
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    samples: int = 1
    seed: int = -1  # < 0: no seed sent
    request_timeout: float = 600.0  # seconds per attempt; a timed-out attempt counts as possibly billed
    max_attempts: int = 6  # per request key and run
    backoff_base: float = 1.0  # seconds; attempt n waits base * 2**(n-1) with full jitter
    backoff_max: float = 60.0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    concurrency: int = 64  # starting concurrency; adaptive between 1 and max_concurrency
    max_concurrency: int = 256
    adaptive: bool = True
    endpoint_failures: int = 5  # consecutive failures before an endpoint rests
    endpoint_rest: float = 30.0  # seconds
    flush_every: int = 1000  # results per Parquet shard flush
    flush_seconds: float = 60.0
    min_chars: int = 200  # shorter outputs are dropped ("too-short")
    expected_tokens: int = 800  # per request when the prompts give none (estimate only)
    tokens_per_second: float = 60.0  # per request, for the time estimate
    prices_date: str = PRICES_DATE
    prices: dict[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    sandbox_timeout: float = 10.0  # seconds per exercise run
    sandbox_memory_mb: int = 1024
    sandbox_processes: int = 64
    sandbox_file_mb: int = 16
    verify_workers: int = 2


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """``[build]``: mixing, tokenization and shards (issue 6)."""


@dataclass(frozen=True, slots=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    build: BuildConfig = field(default_factory=BuildConfig)

    @classmethod
    def load(cls, path: str | Path | None) -> Config:
        """Defaults, overridden by the TOML file at ``path`` if it exists (``None``: defaults)."""
        if path is None or not Path(path).is_file():
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return from_mapping(cls, data, str(path), "")

    def override(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some keys of some sections replaced (CLI flags); ``None`` values are ignored."""
        changes: dict[str, Any] = {}
        for name, values in sections.items():
            current = getattr(self, name)
            given = {k: v for k, v in values.items() if v is not None}
            if given:
                merged = {**_as_dict(current), **given}
                changes[name] = from_mapping(type(current), merged, "<command line>", f"{name}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _as_dict(self)
        return data

    def to_toml(self) -> str:
        """The resolved configuration as TOML (sections of scalars, lists and tables)."""
        return _toml(self.to_dict())


T = TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str, prefix: str) -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types; errors name ``source``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]} (known: {known})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, source, f"{prefix}{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: {exc}") from exc


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_mapping(hint, value, source, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{source}: {key}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, source, key) for v in value)
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key} must be a table, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{source}: {key} must be {hint.__name__}, got {value!r}")
    return value


def _as_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_as_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _as_dict(v) for k, v in obj.items()}
    return obj


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml(data: Mapping[str, Any], prefix: str = "") -> str:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping) and v is not None]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    out = []
    if prefix and (scalars or not tables):
        out.append(f"[{prefix}]")
    out.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars)
    if scalars or (prefix and not tables):
        out.append("")
    for k, v in tables:
        out.append(_toml(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k)))
    return "\n".join(out)

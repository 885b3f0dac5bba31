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

    topics_dir: str = ""
    """Directory of topic seed files; empty: the packaged seeds."""
    templates: str = ""
    """A template TOML file replacing the packaged one; empty: the packaged templates."""
    words: str = ""
    """A ``word<TAB>pos`` word list for stories; empty: the packaged list."""
    formats: tuple[str, ...] = ("textbook", "exercises", "stories")
    format_weights: dict[str, float] = field(
        default_factory=lambda: {"textbook": 0.6, "exercises": 0.25, "stories": 0.15, "rewrite": 0.2}
    )
    """Share of the prompts of each format (among the formats asked for; renormalised)."""
    subject_weights: dict[str, float] = field(default_factory=dict)
    """Per subject slug: a topic's share of prompts is proportional to it (default 1, 0 = none)."""
    programming_subjects: tuple[str, ...] = ("python-*", "*programming*", "algorithms", "data-structures")
    """Glob patterns of subject slugs whose exercises are Python functions with tests."""
    web_fraction: float = 0.25
    """Share of textbook and exercises prompts that carry a web excerpt (when --web is given)."""
    web_excerpt_chars: int = 800
    story_words: int = 3
    """Required words per story: a verb, a noun and an adjective, then random tags."""
    rewrite_m: int = 4
    """Rewrites per document (knowledge augmentation), each in a different style."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.web_fraction <= 1.0:
            raise ValueError(f"web_fraction must be in [0, 1], got {self.web_fraction}")
        if self.web_excerpt_chars < 100:
            raise ValueError(f"web_excerpt_chars must be >= 100, got {self.web_excerpt_chars}")
        if self.story_words < 1 or self.rewrite_m < 1:
            raise ValueError("story_words and rewrite_m must be >= 1")
        if any(w < 0 for w in (*self.format_weights.values(), *self.subject_weights.values())):
            raise ValueError("format_weights and subject_weights must be >= 0")


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    """``[generate]``: the LLM client, limits and prices (issue 5)."""


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

"""Prompt templates: a TOML data file, checked on load, compiled for fast safe substitution.

The packaged file is ``phicorpus/prompts/data/templates.toml``; a user's own file with the same
tables replaces it (``[prompts] templates = "my.toml"`` or ``--templates``). Placeholders are
``{{name}}``; substitution is one pass over the template's own text, so a value that itself
contains ``{{...}}`` (a topic, a web excerpt, a document) is inserted verbatim, never expanded.

Every problem raises :class:`TemplateFileError` whose message starts ``file:line:``.

Example:
    >>> templates = load_templates()
    >>> sorted(templates.formats)
    ['exercises', 'rewrite', 'stories', 'textbook']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import tomllib

__all__ = [
    "FORMATS",
    "PLACEHOLDERS",
    "FormatTemplates",
    "Template",
    "TemplateFileError",
    "Templates",
    "default_templates_path",
    "load_templates",
]

FORMATS = ("textbook", "exercises", "stories", "rewrite")

#: The placeholders each format's ``user`` templates may use (``system`` may use the same ones).
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "textbook": frozenset(
        {"topic", "subject", "course", "unit", "leaf", "audience", "style", "features", "web"}
    ),
    "exercises": frozenset(
        {"topic", "subject", "course", "unit", "leaf", "audience", "style", "features", "web", "layout"}
    ),
    "stories": frozenset({"words", "features", "audience", "style"}),
    "rewrite": frozenset({"document", "order", "style", "audience", "variant", "count"}),
}
_WEB_PLACEHOLDERS = frozenset({"excerpt"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


class TemplateFileError(ValueError):
    """A template file is malformed; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class Template:
    """One template compiled into literal text and placeholder names, alternating."""

    parts: tuple[str, ...]
    """``parts[0::2]`` are literal text, ``parts[1::2]`` placeholder names."""

    @classmethod
    def compile(cls, text: str) -> Template:
        pieces = _PLACEHOLDER.split(text)
        return cls(tuple(pieces))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.parts[1::2])

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute ``values`` in one pass (inserted text is never scanned for placeholders)."""
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(values[parts[i]])
            out.append(parts[i + 1])
        return "".join(out)


@dataclass(frozen=True, slots=True)
class FormatTemplates:
    """The templates and choices of one prompt format."""

    name: str
    system: Template
    user: tuple[Template, ...]
    """Variants; a prompt uses one at random (recorded as its ``template`` column)."""
    user_programming: tuple[Template, ...]
    """Exercises only: the variants used for programming topics (machine-checkable layout)."""
    audiences: tuple[str, ...]
    styles: tuple[str, ...]
    features: tuple[str, ...]
    min_features: int
    max_features: int
    expected_tokens: int


@dataclass(frozen=True, slots=True)
class Templates:
    """A whole template file: descriptions of audiences, styles and features, and the formats."""

    path: str
    audiences: dict[str, str]
    styles: dict[str, str]
    features: dict[str, dict[str, str]]
    """``features[format][name]``: the instruction text of each random feature of a format."""
    formats: dict[str, FormatTemplates]
    web: Template
    """Wraps a web excerpt (``{{excerpt}}``); the result fills ``{{web}}``."""


def default_templates_path() -> Path:
    return Path(str(files("phicorpus.prompts").joinpath("data").joinpath("templates.toml")))


def load_templates(path: str | Path | None = None) -> Templates:
    """Load and check a template file (default: the packaged one).

    Raises:
        TemplateFileError: TOML syntax, a missing or mistyped key, an unknown placeholder, or a
            reference to an audience/style/feature that is not defined; the message names the
            file and line.
    """
    path = Path(path) if path else default_templates_path()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateFileError(f"{path}:1: not valid UTF-8 ({exc.reason})") from exc
    except OSError as exc:
        raise TemplateFileError(f"{path}:0: cannot read template file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        line = found.group(1) if found else "1"
        raise TemplateFileError(f"{path}:{line}: {str(exc).split(' (at line')[0]}") from exc
    return _Checker(path, text).build(data)


class _Checker:
    """Turns the parsed TOML into :class:`Templates`, locating every error by line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.split("\n")

    def line_of(self, table: str, key: str | None = None) -> int:
        """The line of ``[table]`` (or of ``key`` inside it); 1 when neither is found."""
        header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]\s*(#.*)?$")
        start = next((i for i, line in enumerate(self.lines) if header.match(line)), None)
        if start is None:
            return 1
        if key is None:
            return start + 1
        key_re = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1

    def fail(self, table: str, key: str | None, message: str) -> TemplateFileError:
        return TemplateFileError(f"{self.path}:{self.line_of(table, key)}: {message}")

    def table(self, data: Mapping[str, Any], name: str, parent: str = "") -> Mapping[str, Any]:
        full = f"{parent}.{name}" if parent else name
        value = data.get(name)
        if not isinstance(value, Mapping):
            where = parent or full
            raise self.fail(where, None if not parent else name, f"missing table [{full}]")
        return value

    def text_table(self, data: Mapping[str, Any], name: str, parent: str = "") -> dict[str, str]:
        table = self.table(data, name, parent)
        full = f"{parent}.{name}" if parent else name
        if not table:
            raise self.fail(full, None, f"[{full}] is empty")
        out = {}
        for key, value in table.items():
            if not isinstance(value, str) or not value.strip():
                raise self.fail(full, key, f"{full}.{key} must be a non-empty string")
            out[key] = value.strip()
        return out

    def template(self, table: str, key: str, value: Any, allowed: frozenset[str]) -> Template:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(table, key, f"{table}.{key} must be a non-empty string")
        template = Template.compile(value.strip("\n"))
        unknown = sorted(template.names - allowed)
        if unknown:
            raise self.fail(
                table,
                key,
                f"unknown placeholder {{{{{unknown[0]}}}}} in {table}.{key} "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        return template

    def variants(self, table: str, key: str, value: Any, allowed: frozenset[str]) -> tuple[Template, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(table, key, f"{table}.{key} must be a string or a non-empty list of strings")
        return tuple(self.template(table, key, v, allowed) for v in value)

    def names(self, table: str, key: str, value: Any, known: Mapping[str, str], what: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, f"{table}.{key} must be a non-empty list of {what} names")
        for v in value:
            if v not in known:
                raise self.fail(
                    table, key, f"{table}.{key}: unknown {what} {v!r} (defined: {', '.join(known)})"
                )
        return tuple(value)

    def integer(self, table: str, key: str, value: Any, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(table, key, f"{table}.{key} must be an integer >= {low}, got {value!r}")
        return value

    def build(self, data: Mapping[str, Any]) -> Templates:
        audiences = self.text_table(data, "audiences")
        styles = self.text_table(data, "styles")
        features_root = self.table(data, "features")
        features = {
            name: self.text_table(features_root, name, "features")
            for name in features_root
            if isinstance(features_root[name], Mapping)
        }
        web_table = self.table(data, "web")
        web = self.template("web", "block", web_table.get("block"), _WEB_PLACEHOLDERS)
        formats_root = self.table(data, "formats")
        formats = {}
        for name in FORMATS:
            table = f"formats.{name}"
            fmt = self.table(formats_root, name, "formats")
            unknown = sorted(set(fmt) - _FORMAT_KEYS)
            if unknown:
                raise self.fail(table, unknown[0], f"unknown key {table}.{unknown[0]}")
            allowed = PLACEHOLDERS[name]
            feature_names = features.get(name, {})
            min_f = self.integer(table, "min_features", fmt.get("min_features", 0), 0)
            max_f = self.integer(table, "max_features", fmt.get("max_features", 0), min_f)
            if max_f > len(feature_names):
                raise self.fail(
                    table,
                    "max_features",
                    f"{table}.max_features is {max_f} but [features.{name}] has "
                    f"{len(feature_names)} features",
                )
            programming: tuple[Template, ...] = ()
            if name == "exercises":
                programming = self.variants(table, "user_programming", fmt.get("user_programming"), allowed)
                if not all("layout" in t.names for t in programming):
                    raise self.fail(
                        table, "user_programming", f"{table}.user_programming must use {{{{layout}}}}"
                    )
            formats[name] = FormatTemplates(
                name=name,
                system=self.template(table, "system", fmt.get("system"), allowed),
                user=self.variants(table, "user", fmt.get("user"), allowed),
                user_programming=programming,
                audiences=self.names(table, "audiences", fmt.get("audiences"), audiences, "audience"),
                styles=self.names(table, "styles", fmt.get("styles"), styles, "style"),
                features=tuple(feature_names),
                min_features=min_f,
                max_features=max_f,
                expected_tokens=self.integer(table, "expected_tokens", fmt.get("expected_tokens"), 1),
            )
        return Templates(
            path=str(self.path),
            audiences=audiences,
            styles=styles,
            features=features,
            formats=formats,
            web=web,
        )


_FORMAT_KEYS = frozenset(
    {
        "system",
        "user",
        "user_programming",
        "audiences",
        "styles",
        "min_features",
        "max_features",
        "expected_tokens",
    }
)

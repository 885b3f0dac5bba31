"""Post-processing of generated text: drop reasons, boilerplate openers, exercise parsing.

Every response becomes one document; the ones not fit for training keep a drop reason
(``truncated`` when ``finish_reason == "length"``, ``empty``, ``too-short``, ``content-filter``,
``unparsed-exercise``) so the catalog can count them.

The exercise layout is the prompt engine's: ``### Problem``, ``### Solution`` with one
```` ```python ```` block, ``### Tests`` with one ```` ```python ```` block of asserts.
:func:`parse_exercise` is the one place that knows it (the prompts stream exports its own
``phicorpus.prompts.parse_exercise``; swap it in here at merge).

Example:
    >>> strip_boilerplate("Sure! Here is a textbook section:\\n\\n# Fractions\\nA fraction ...")
    '# Fractions\\nA fraction ...'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Exercise", "Processed", "parse_exercise", "process_output", "strip_boilerplate"]

_OPENER = re.compile(
    r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|great|here(?:'s| is| are))\b[^\n]{0,160}"
    r"(?::|!|\.)\s*\n+",
    re.IGNORECASE,
)


def strip_boilerplate(text: str) -> str:
    """Remove an assistant's opener ("Sure! Here is ...:") from the start of ``text``."""
    stripped = text.strip()
    for _ in range(2):  # "Sure!\nHere is the story:\n..."
        new = _OPENER.sub("", stripped, count=1)
        if new == stripped:
            break
        stripped = new.lstrip()
    return stripped


@dataclass(frozen=True, slots=True)
class Exercise:
    problem: str
    solution: str
    tests: str


_SECTION = re.compile(r"^#{2,4}\s*(problem|solution|tests?)\s*:?\s*$", re.IGNORECASE | re.MULTILINE)
_CODE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def parse_exercise(text: str) -> Exercise | None:
    """Split an exercise answer into problem, solution code and test code; None if malformed."""
    marks = list(_SECTION.finditer(text))
    parts: dict[str, str] = {}
    for i, mark in enumerate(marks):
        name = mark.group(1).lower().rstrip("s") or "test"
        name = "tests" if name.startswith("test") else name
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        parts.setdefault(name, text[mark.end() : end].strip())
    if not {"problem", "solution", "tests"} <= parts.keys():
        return None
    solution = _CODE.search(parts["solution"])
    tests = _CODE.search(parts["tests"])
    if not solution or not tests or not parts["problem"]:
        return None
    if "assert" not in tests.group(1):
        return None
    return Exercise(parts["problem"], solution.group(1).strip() + "\n", tests.group(1).strip() + "\n")


@dataclass(frozen=True, slots=True)
class Processed:
    text: str
    drop_reason: str | None
    exercise: Exercise | None = None
    missing_words: tuple[str, ...] = ()


def missing_words(text: str, words: Sequence[str]) -> tuple[str, ...]:
    """The required words (TinyStories) that do not appear in ``text`` as words (any case/inflection
    is not guessed: the word itself, case-insensitive, on word boundaries)."""
    lower = text.lower()
    return tuple(w for w in words if w and not re.search(rf"\b{re.escape(w.lower())}", lower))


def process_output(
    text: str, finish_reason: str | None, fmt: str, *, min_chars: int, words: Sequence[str] = ()
) -> Processed:
    """Clean one response and decide whether it is kept (``drop_reason is None``)."""
    clean = strip_boilerplate(text or "")
    if finish_reason == "length":
        return Processed(clean, "truncated")
    if finish_reason == "content_filter":
        return Processed(clean, "content-filter")
    if not clean:
        return Processed(clean, "empty")
    if fmt == "exercises":
        exercise = parse_exercise(clean)
        if exercise is None:
            return Processed(clean, "unparsed-exercise")
        return Processed(clean, None, exercise)
    if len(clean) < min_chars:
        return Processed(clean, "too-short")
    if fmt == "stories" and words:
        missing = missing_words(clean, words)
        return Processed(clean, None, missing_words=missing)
    return Processed(clean, None)

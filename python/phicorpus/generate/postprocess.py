"""Post-processing of generated text: drop reasons, boilerplate openers, exercise parsing.

Every response becomes one document; the ones not fit for training keep a drop reason
(``truncated`` when ``finish_reason == "length"``, ``empty``, ``too-short``, ``content-filter``,
``unparsed-exercise``) so the catalog can count them.

Programming exercises (prompts with ``answer_format == "python-tests"``) follow the prompt
engine's layout, ``phicorpus.prompts.EXERCISE_LAYOUT``, and are split by the one parser that knows
it, :func:`phicorpus.prompts.parse_exercise`; other exercises (worked maths problems, ...) are text.

Example:
    >>> strip_boilerplate("Sure! Here is a textbook section:\\n\\n# Fractions\\nA fraction ...")
    '# Fractions\\nA fraction ...'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from phicorpus.prompts.exercise import ANSWER_PYTHON_TESTS, Exercise, parse_exercise
from phicorpus.prompts.rephrase import REPHRASE_FORMATS, parse_rephrase

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
class Processed:
    text: str
    drop_reason: str | None
    exercise: Exercise | None = None
    missing_words: tuple[str, ...] = ()
    reasoning: str | None = None  # REWIRE: the reasoning part (the text is only the rewrite)
    items: int | None = None  # rephrase formats: QA pairs / list items / steps found


def missing_words(text: str, words: Sequence[str]) -> tuple[str, ...]:
    """The required words (TinyStories) that do not appear in ``text`` as words (any case/inflection
    is not guessed: the word itself, case-insensitive, on word boundaries)."""
    lower = text.lower()
    return tuple(w for w in words if w and not re.search(rf"\b{re.escape(w.lower())}", lower))


def process_output(
    text: str,
    finish_reason: str | None,
    fmt: str,
    *,
    min_chars: int,
    words: Sequence[str] = (),
    answer_format: str | None = None,
) -> Processed:
    """Clean one response and decide whether it is kept (``drop_reason is None``).

    ``answer_format`` is the prompt's (``python-tests`` answers must parse as an exercise); prompt
    files without the column treat every ``exercises`` prompt as ``python-tests``.
    """
    clean = strip_boilerplate(text or "")
    if finish_reason == "length":
        return Processed(clean, "truncated")
    if finish_reason == "content_filter":
        return Processed(clean, "content-filter")
    if not clean:
        return Processed(clean, "empty")
    if answer_format == ANSWER_PYTHON_TESTS or (answer_format is None and fmt == "exercises"):
        exercise = parse_exercise(clean)
        if exercise is None:
            return Processed(clean, "unparsed-exercise")
        return Processed(clean, None, exercise)
    if fmt in REPHRASE_FORMATS:
        # the format's structure must parse; REWIRE keeps only the rewrite as the document
        parsed = parse_rephrase(fmt, clean)
        reason = parsed.problem or ("too-short" if len(parsed.document) < min_chars else None)
        return Processed(parsed.document, reason, reasoning=parsed.reasoning, items=parsed.items)
    if len(clean) < min_chars:
        return Processed(clean, "too-short")
    if fmt == "stories" and words:
        missing = missing_words(clean, words)
        return Processed(clean, None, missing_words=missing)
    return Processed(clean, None)

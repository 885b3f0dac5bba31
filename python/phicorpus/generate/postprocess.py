"""Post-processing of generated text: drop reasons, boilerplate openers, exercise parsing.

Every response becomes one document; the ones not fit for training keep a drop reason
(``truncated`` when ``finish_reason == "length"``, ``empty``, ``too-short``, ``content-filter``,
``unparsed-exercise``, and the quality gates for LLM text: ``restates-prompt`` when most of the
answer's word 6-grams are the prompt's, ``repetitive`` when its word 8-grams loop,
``wrong-language`` when an English answer has almost no English function words) so the catalog
can count them. Boilerplate openers ("Once upon a time", "In the realm of") are not dropped but
named (:func:`opener`) so ``phicorpus stats`` can count them per format.

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

__all__ = [
    "Exercise",
    "Processed",
    "english_share",
    "opener",
    "parse_exercise",
    "process_output",
    "repeated_share",
    "restated_share",
    "strip_boilerplate",
]

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


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
RESTATE_N = 6
RESTATE_SHARE = 0.5  # of the answer's 6-grams found in the prompt
REPEAT_N = 8
REPEAT_SHARE = 0.3  # of the answer's 8-grams that are repeats of an earlier one
ENGLISH = frozenset(
    {
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "it",
        "this",
        "that",
        "as",
        "by",
        "at",
        "from",
        "not",
        "but",
        "they",
        "he",
        "she",
        "we",
        "you",
        "i",
        "his",
        "her",
        "their",
        "its",
        "can",
        "will",
        "has",
        "have",
        "had",
        "which",
        "what",
        "when",
        "there",
    }
)
OPENERS = (
    "once upon a time", "in the realm of", "in the world of", "in today's", "imagine a world",
    "have you ever wondered", "welcome to", "title:", "in a world where", "in the heart of",
)  # fmt: skip


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _grams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n)), strict=False))


def restated_share(answer: str, prompt: str, n: int = RESTATE_N) -> float:
    """Share of the answer's word n-grams that are in the prompt (1.0: it only restates it)."""
    return _restated(_words(answer), prompt, n)


def _restated(words: Sequence[str], prompt: str, n: int = RESTATE_N) -> float:
    grams = _grams(words, n)
    if not grams:
        return 0.0
    source = set(_grams(_words(prompt), n))
    return sum(g in source for g in grams) / len(grams) if source else 0.0


def repeated_share(text: str, n: int = REPEAT_N) -> float:
    """Share of the word n-grams that repeat an earlier one (a degenerate loop is near 1)."""
    return _repeated(_words(text), n)


def _repeated(words: Sequence[str], n: int = REPEAT_N) -> float:
    grams = _grams(words, n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def english_share(text: str) -> float:
    """Share of the words that are common English function words (English prose: 0.3-0.5)."""
    return _english(_words(text))


def _english(words: Sequence[str]) -> float:
    return sum(w in ENGLISH for w in words) / len(words) if words else 0.0


def opener(text: str) -> str | None:
    """The boilerplate opener ``text`` starts with (:data:`OPENERS`), or None."""
    head = " ".join(text.lstrip().lstrip("#*").split())[:40].lower()
    return next((o for o in OPENERS if head.startswith(o)), None)


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
    prompt: str = "",
) -> Processed:
    """Clean one response and decide whether it is kept (``drop_reason is None``).

    ``answer_format`` is the prompt's (``python-tests`` answers must parse as an exercise); prompt
    files without the column treat every ``exercises`` prompt as ``python-tests``. ``prompt`` (the
    request's text) is what an answer must not merely restate.
    """
    clean = strip_boilerplate(text or "")
    if finish_reason == "length":
        return Processed(clean, "truncated")
    if finish_reason == "content_filter":
        return Processed(clean, "content-filter")
    if not clean:
        return Processed(clean, "empty")
    words_ = _words(clean)  # once for every gate below
    if prompt and _restated(words_, prompt) > RESTATE_SHARE:
        return Processed(clean, "restates-prompt")
    if _repeated(words_) > REPEAT_SHARE:
        return Processed(clean, "repetitive")
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
    if len(words_) >= 40 and _english(words_) < 0.05:
        return Processed(clean, "wrong-language")
    if fmt == "stories" and words:
        missing = missing_words(clean, words)
        return Processed(clean, None, missing_words=missing)
    return Processed(clean, None)

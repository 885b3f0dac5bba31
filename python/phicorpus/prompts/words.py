"""The word list for stories: words a 3-4-year-old knows, tagged noun / verb / adjective.

TinyStories made an LLM write varied stories by requiring a random noun, verb and adjective
from about 1,500 words a small child knows. The list is ``phicorpus/prompts/data/words.tsv``,
one ``word<TAB>pos`` per line (``#`` starts a comment); a user's own file replaces it.

Example:
    >>> words = load_words()
    >>> sorted(words)
    ['adjective', 'noun', 'verb']
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["POS_TAGS", "WordListError", "default_words_path", "load_words"]

POS_TAGS = ("noun", "verb", "adjective")


class WordListError(ValueError):
    """A word list is malformed; the message starts with ``file:line:``."""


def default_words_path() -> Path:
    return Path(str(files("phicorpus.prompts").joinpath("data").joinpath("words.tsv")))


def load_words(path: str | Path | None = None) -> dict[str, tuple[str, ...]]:
    """Words by part of speech, each list in file order.

    Raises:
        WordListError: a line is not ``word<TAB>pos``, a tag is unknown, a word repeats, or a
            tag has no words; the message names the file and line.
    """
    path = Path(path) if path else default_words_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WordListError(f"{path}:0: cannot read word list ({exc})") from exc
    by_pos: dict[str, list[str]] = {tag: [] for tag in POS_TAGS}
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or fields[0] != fields[0].strip():
            raise WordListError(f"{path}:{lineno}: expected 'word<TAB>pos', got {raw!r}")
        word, pos = fields[0], fields[1].strip()
        if pos not in by_pos:
            raise WordListError(f"{path}:{lineno}: unknown tag {pos!r} (expected {', '.join(POS_TAGS)})")
        if not all(part.isalpha() for part in word.replace("-", " ").split()):
            raise WordListError(f"{path}:{lineno}: word {word!r} has characters other than letters")
        key = word.lower()
        if key in seen:
            raise WordListError(f"{path}:{lineno}: duplicate word {word!r} (first at line {seen[key]})")
        seen[key] = lineno
        by_pos[pos].append(word)
    for tag, words in by_pos.items():
        if not words:
            raise WordListError(f"{path}:0: no words tagged {tag!r}")
    return {tag: tuple(words) for tag, words in by_pos.items()}

"""Web samples for prompts: loading, excerpts cut at sentence boundaries, cheap topic relevance.

phi-1.5 put samples of web text into its prompts for diversity. A fraction of prompts carry an
excerpt of one sample and are asked to relate the section to it. The sample is picked for
relevance where possible: an inverted index maps content words to the samples containing them
(rare words only, so a lookup is short), and among the samples sharing the most words with the
topic path one is chosen at random; with no overlap, any sample.

Example:
    >>> samples = load_web_samples(["web.jsonl"])  # doctest: +SKIP
    >>> index = WebIndex(samples)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phicorpus.corpus import file_kind_problem

__all__ = ["WebIndex", "WebSample", "content_words", "excerpt", "load_text_records", "load_web_samples"]

_WORD = re.compile(r"[a-z][a-z0-9]+")
# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) and whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just like many may me
    might more most much must my no nor not now of off on once one only or other our out over own
    same she should so some such than that the their them then there these they this those through
    to too two under until up upon us use used using very was we were what when where which while
    who whom why will with within without would you your first second new way ways versus vs
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_INDEX_CHARS = 4000  # words of a sample's first 4,000 characters go into the index


@dataclass(frozen=True, slots=True)
class WebSample:
    id: str
    text: str


def load_text_records(paths: Sequence[str | Path], *, what: str = "web") -> list[tuple[str, str]]:
    """``(id, text)`` rows of JSONL or Parquet files with a ``text`` column (and maybe ``id``).

    Rows without an ``id`` get ``<file stem>-<16 hex of the text's sha1>``. Empty texts are skipped.

    Raises:
        ValueError: a file is missing, has no ``text`` column, or a JSONL line is not an object
            with a string ``text``; the message names the file (and line).
    """
    rows: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        problem = file_kind_problem(path)
        if problem is not None:
            raise ValueError(f"{path}:0: {what} file: {problem}")
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            if "text" not in schema.names:
                raise ValueError(f"{path}:0: no 'text' column (columns: {', '.join(schema.names)})")
            columns = ["text", "id"] if "id" in schema.names else ["text"]
            table = pq.read_table(path, columns=columns)
            texts = table.column("text").to_pylist()
            ids = [str(i) for i in table.column("id").to_pylist()] if "id" in columns else [None] * len(texts)
            for i, text in zip(ids, texts, strict=True):
                if isinstance(text, str) and text.strip():
                    rows.append((i or _text_id(path, text), text))
            continue
        with path.open("rb") as fh:
            for lineno, raw_line in enumerate(fh, start=1):
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    where = f"{path}:{lineno}"
                    raise ValueError(f"{where}: invalid UTF-8 (byte {exc.start} of the line)") from exc
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise ValueError(f"{path}:{lineno}: expected an object with a string 'text'")
                text = obj["text"]
                if text.strip():
                    given = obj.get("id")
                    rows.append((str(given) if given is not None else _text_id(path, text), text))
    return rows


def load_web_samples(paths: Sequence[str | Path]) -> list[WebSample]:
    """The web samples of JSONL/Parquet files with a ``text`` column (see :func:`load_text_records`)."""
    return [WebSample(i, t) for i, t in load_text_records(paths, what="web")]


def _text_id(path: Path, text: str) -> str:
    return f"{path.stem}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:16]}"


def content_words(text: str) -> set[str]:
    """Lowercase words of 2+ characters that are not stop words."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def excerpt(text: str, max_chars: int, start_fraction: float = 0.0) -> str:
    """Whole sentences of ``text``, starting at a sentence boundary, at most ``max_chars`` long.

    The start is the first sentence boundary at or after ``start_fraction`` of the text that
    still leaves room for a full excerpt. If not even one sentence fits, the first sentence
    that starts there is cut at the last word boundary (and ends with an ellipsis).
    """
    text = " ".join(text.split())  # web text: collapse runs of whitespace and newlines
    if len(text) <= max_chars:
        return text
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)]
    target = int(start_fraction * max(0, len(text) - max_chars))
    begin = next((s for s in starts if s >= target), starts[-1])
    window = text[begin : begin + max_chars + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= max_chars + 1]
    if ends:
        return window[: ends[-1]].strip()
    if len(text) - begin <= max_chars:
        return text[begin:].strip()
    cut = window[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;: ") + " ..."


class WebIndex:
    """Samples, their lazily cut excerpts, and an inverted index of their rare content words."""

    def __init__(self, samples: Sequence[WebSample], *, max_chars: int = 800, max_postings: int = 0) -> None:
        self.samples = list(samples)
        self.max_chars = max_chars
        postings: dict[str, list[int]] = {}
        for i, sample in enumerate(self.samples):
            for word in content_words(sample.text[:_INDEX_CHARS]):
                postings.setdefault(word, []).append(i)
        # A word in more than 5% of samples (and at least 50) says little about relevance.
        limit = max_postings or max(50, len(self.samples) // 20)
        self.postings = {w: p for w, p in postings.items() if len(p) <= limit}
        self._topic_cache: dict[str, list[int]] = {}
        self._excerpts: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def candidates(self, topic_text: str) -> list[int]:
        """The samples sharing the most index words with ``topic_text`` (empty: none share any)."""
        cached = self._topic_cache.get(topic_text)
        if cached is not None:
            return cached
        counts: Counter[int] = Counter()
        for word in content_words(topic_text):
            counts.update(self.postings.get(word, ()))
        best = max(counts.values(), default=0)
        result = sorted(i for i, c in counts.items() if c == best) if best else []
        self._topic_cache[topic_text] = result
        return result

    def pick(self, topic_text: str, rng: np.random.Generator) -> int:
        """A sample for a topic: a random one of the most relevant, or any if none is relevant."""
        best = self.candidates(topic_text)
        if best:
            return best[int(rng.integers(len(best)))]
        return int(rng.integers(len(self.samples)))

    def excerpt(self, i: int) -> str:
        """The excerpt of sample ``i`` (cut once, at a position fixed by the sample's id)."""
        cached = self._excerpts.get(i)
        if cached is None:
            sample = self.samples[i]
            fraction = int(hashlib.sha1(sample.id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
            cached = excerpt(sample.text, self.max_chars, fraction)
            self._excerpts[i] = cached
        return cached

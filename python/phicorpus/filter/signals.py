"""Heuristic quality signals (Gopher repetition and quality, C4, FineWeb) and drop reasons.

The signals are computed in the Rust core, one pass per document, in parallel with the GIL
released; this module turns them into columns and applies thresholds vectorised over the columns
(no Python loop over documents).

Definitions follow datatrove's ``GopherRepetitionFilter``, ``GopherQualityFilter``,
``C4QualityFilter`` (``split_paragraph=True``) and ``FineWebQualityFilter``, with these choices:

- Characters are code points (``len``). Whitespace is the Unicode ``White_Space`` property
  (``str.split()``/``str.strip()`` also treat ``\\x1c``-``\\x1f`` as whitespace; we do not).
- Words are whitespace-separated tokens, the Gopher paper's definition. datatrove uses a spaCy or
  NLTK word tokenizer, which splits punctuation off words: our words are fewer and longer, and
  ``"the,"`` is not the stop word ``"the"``.
- Lines are ``text.split("\\n")`` with one trailing ``"\\r"`` removed from each and without the
  empty piece after a final ``"\\n"`` (``str.splitlines()`` for ``\\n``/``\\r\\n`` text; a lone
  ``"\\r"`` does not break a line). Gopher repetition lines and paragraphs are datatrove's exactly:
  ``re.split("\\n+", text)`` and ``re.split("\\n{2,}", text.strip())`` (``"\\r"`` kept).
- Ratios with a zero denominator are 0 (datatrove raises ``ZeroDivisionError`` or gives NaN).
- Gopher: symbol characters (for non-symbol words) are general categories P*, S* and Cc (for
  ASCII this is datatrove's set); the stop-word signal counts *distinct* stop words present, as
  datatrove does.
- C4: sentences come from a simple splitter (a word ending in ``.``, ``!`` or ``?``, before closing
  quotes or brackets, ends a sentence; trailing text is one more), not NLTK punkt / spaCy. Lines
  with "lorem ipsum" or "{" set a document flag but are still counted, as when datatrove's rule is
  disabled; the flags drop the document before the sentence count is checked.
- FineWeb: terminal punctuation is Unicode ``Sentence_Terminal`` (datatrove's 159 code points),
  checked on the line after ``"\\r"`` removal.

Columns (``SIGNAL_NAMES``; "chars" are characters, n = len(text)):

- Gopher repetition: ``dup_para_frac`` / ``dup_line_frac`` (duplicate paragraphs / lines over all),
  ``dup_para_char_frac`` / ``dup_line_char_frac`` (chars in duplicates / n),
  ``top_{2,3,4}_gram_char_frac`` (chars of the most common ``" ".join`` n-gram x its count / n;
  counted even when it occurs once, as datatrove does), ``dup_{5..10}_gram_char_frac`` (datatrove's
  greedy ``find_all_duplicate`` walk over ``"".join`` n-grams / n).
- Gopher quality: ``n_chars``, ``n_words``, ``n_non_symbol_words``, ``mean_word_length`` (of
  non-symbol words), ``hash_word_ratio`` (``count("#")`` / words), ``ellipsis_word_ratio``
  (``count("...") + count("…")`` / words), ``bullet_line_frac`` (lines starting, after leading
  whitespace, with "•" or "-"), ``ellipsis_line_frac`` (lines ending, before trailing whitespace,
  with "..." or "…"), ``alpha_word_frac`` (words with a letter), ``stop_word_count``.
- C4 (per stripped line: drop it if a word has > 1000 chars; remove citations; drop it without
  terminal ``. ? ! " '`` or ending in "..."; drop it under 3 words; "javascript" and policy phrases
  drop it): ``c4_lines_kept_frac``, ``c4_sentences`` (in kept lines), ``c4_lorem_ipsum``,
  ``c4_curly_bracket`` (in a line that passed the rules before them), ``c4_too_long_word_lines``.
- FineWeb (non-empty lines): ``fineweb_lines``, ``fineweb_line_punct_ratio``,
  ``fineweb_short_line_ratio`` (<= 30 chars), ``fineweb_char_dup_ratio`` (chars in duplicate lines
  / chars other than "\\n"), ``fineweb_newline_word_ratio`` (``count("\\n")`` / words).

Thresholds are paper/datatrove defaults; a rule set to ``None`` (or ``False``) is disabled. Unlike
datatrove, a threshold of 0 is a threshold, not "disabled". An empty document fails
``gopher_short_doc`` (datatrove's repetition filter says "empty").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from phicorpus import _core

if TYPE_CHECKING:
    from phicorpus.corpus import Texts

SIGNAL_NAMES: tuple[str, ...] = tuple(_core.SIGNAL_NAMES)
"""Names of the signal columns, in order."""

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)

REASONS: tuple[str, ...] = (
    "dup_para_frac",
    "dup_para_char_frac",
    "dup_line_frac",
    "dup_line_char_frac",
    *(f"top_{n}_gram" for n in TOP_NGRAM_SIZES),
    *(f"duplicated_{n}_n_grams" for n in DUP_NGRAM_SIZES),
    "gopher_short_doc",
    "gopher_long_doc",
    "gopher_below_avg_threshold",
    "gopher_above_avg_threshold",
    "gopher_too_many_hashes",
    "gopher_too_many_ellipsis",
    "gopher_too_many_bullets",
    "gopher_too_many_end_ellipsis",
    "gopher_below_alpha_threshold",
    "gopher_enough_stop_words",
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_too_few_sentences",
    "fineweb_empty",
    "fineweb_line_punct_ratio",
    "fineweb_short_line_ratio",
    "fineweb_char_dup_ratio",
    "fineweb_list_ratio",
)
"""Every drop reason, in the order the rules are checked (the first failing rule is reported)."""

_REASON_CODE = {name: code for code, name in enumerate(REASONS, start=1)}
_REASON_ARRAY = np.array(["", *REASONS])

Columns = Mapping[str, npt.NDArray[Any]]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class QualityThresholds:
    """Thresholds of the quality rules; ``None`` (or ``False``) disables a rule.

    Defaults are Gopher's (Rae et al. 2021, table A1 and section A.1.1), C4's (Raffel et al. 2020)
    and FineWeb's (Penedo et al. 2024), as in datatrove. A document is dropped when a signal is
    above a ``max``/``frac`` threshold or below a ``min`` one.

    Example:
        >>> t = QualityThresholds(c4_min_sentences=None, fineweb_line_punct_ratio=0.5)
        >>> t.dup_line_frac
        0.3
    """

    # Gopher repetition
    dup_para_frac: float | None = 0.3
    dup_para_char_frac: float | None = 0.2
    dup_line_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )
    # Gopher quality
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    # C4
    c4_lorem_ipsum: bool = True
    c4_curly_bracket: bool = True
    c4_min_sentences: int | None = 5
    # FineWeb
    fineweb_empty: bool = True
    fineweb_line_punct_ratio: float | None = 0.12
    fineweb_short_line_ratio: float | None = 0.67
    fineweb_char_dup_ratio: float | None = 0.01
    fineweb_new_line_ratio: float | None = 0.3

    def __post_init__(self) -> None:
        for n, _ in self.top_n_grams:
            if n not in TOP_NGRAM_SIZES:
                raise ValueError(f"top_n_grams: n={n} is not one of {TOP_NGRAM_SIZES}")
        for n, _ in self.dup_n_grams:
            if n not in DUP_NGRAM_SIZES:
                raise ValueError(f"dup_n_grams: n={n} is not one of {DUP_NGRAM_SIZES}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> QualityThresholds:
        """Thresholds from a config table (``[filter.thresholds]`` of ``phicorpus.toml``).

        Missing keys keep their defaults; ``false`` disables a numeric rule (TOML has no null);
        n-gram rules are lists of ``[n, frac]`` pairs. Unknown keys are an error.

        Example:
            >>> t = QualityThresholds.from_mapping({"min_doc_words": False, "top_n_grams": [[2, 0.3]]})
            >>> t.min_doc_words, t.top_n_grams
            (None, ((2, 0.3),))
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                raise ValueError(f"unknown quality threshold {key!r}; known: {', '.join(fields)}")
            if key in ("top_n_grams", "dup_n_grams"):
                value = tuple((int(n), float(frac)) for n, frac in value)
            elif fields[key].default is True:
                value = bool(value)
            elif value is False:
                value = None
            kwargs[key] = value
        return cls(**kwargs)

    def rules(self) -> list[tuple[str, Callable[[Columns], Mask]]]:
        """The enabled rules as ``(reason, columns -> drop mask)``, in checking order."""
        out: list[tuple[str, Callable[[Columns], Mask]]] = []

        def above(reason: str, column: str, limit: float | None) -> None:
            if limit is not None:
                out.append((reason, lambda c: np.asarray(c[column] > limit)))

        def below(reason: str, column: str, limit: float | None) -> None:
            if limit is not None:
                out.append((reason, lambda c: np.asarray(c[column] < limit)))

        def flag(reason: str, column: str, enabled: bool) -> None:
            if enabled:
                out.append((reason, lambda c: np.asarray(c[column], dtype=bool)))

        above("dup_para_frac", "dup_para_frac", self.dup_para_frac)
        above("dup_para_char_frac", "dup_para_char_frac", self.dup_para_char_frac)
        above("dup_line_frac", "dup_line_frac", self.dup_line_frac)
        above("dup_line_char_frac", "dup_line_char_frac", self.dup_line_char_frac)
        for n, frac in self.top_n_grams:
            above(f"top_{n}_gram", f"top_{n}_gram_char_frac", frac)
        for n, frac in self.dup_n_grams:
            above(f"duplicated_{n}_n_grams", f"dup_{n}_gram_char_frac", frac)
        below("gopher_short_doc", "n_non_symbol_words", self.min_doc_words)
        above("gopher_long_doc", "n_non_symbol_words", self.max_doc_words)
        below("gopher_below_avg_threshold", "mean_word_length", self.min_avg_word_length)
        above("gopher_above_avg_threshold", "mean_word_length", self.max_avg_word_length)
        above("gopher_too_many_hashes", "hash_word_ratio", self.max_symbol_word_ratio)
        above("gopher_too_many_ellipsis", "ellipsis_word_ratio", self.max_symbol_word_ratio)
        above("gopher_too_many_bullets", "bullet_line_frac", self.max_bullet_lines_ratio)
        above("gopher_too_many_end_ellipsis", "ellipsis_line_frac", self.max_ellipsis_lines_ratio)
        below("gopher_below_alpha_threshold", "alpha_word_frac", self.min_alpha_words_ratio)
        below("gopher_enough_stop_words", "stop_word_count", self.min_stop_words)
        flag("c4_lorem_ipsum", "c4_lorem_ipsum", self.c4_lorem_ipsum)
        flag("c4_curly_bracket", "c4_curly_bracket", self.c4_curly_bracket)
        below("c4_too_few_sentences", "c4_sentences", self.c4_min_sentences)
        if self.fineweb_empty:
            out.append(("fineweb_empty", lambda c: np.asarray(c["fineweb_lines"] == 0)))
        below("fineweb_line_punct_ratio", "fineweb_line_punct_ratio", self.fineweb_line_punct_ratio)
        above("fineweb_short_line_ratio", "fineweb_short_line_ratio", self.fineweb_short_line_ratio)
        above("fineweb_char_dup_ratio", "fineweb_char_dup_ratio", self.fineweb_char_dup_ratio)
        above("fineweb_list_ratio", "fineweb_newline_word_ratio", self.fineweb_new_line_ratio)
        return out


def drop_reasons(columns: Columns, thresholds: QualityThresholds | None = None) -> npt.NDArray[np.str_]:
    """The first failing rule of each document ("" when it passes every rule), vectorised.

    Args:
        columns: signal columns, as ``QualitySignals.columns``.
        thresholds: the rules; the defaults when ``None``.

    Returns:
        A str array, one reason per document.

    Example:
        >>> cols = quality_signals(["Hello world."]).columns
        >>> drop_reasons(cols).tolist()  # one 2-gram covering the whole text
        ['top_2_gram']
        >>> drop_reasons(cols, QualityThresholds(top_n_grams=(), min_doc_words=None)).tolist()
        ['gopher_enough_stop_words']
    """
    thresholds = QualityThresholds() if thresholds is None else thresholds
    n = len(next(iter(columns.values()))) if columns else 0
    codes = np.zeros(n, dtype=np.int16)
    # Later rules first, so that earlier (higher-priority) rules overwrite them.
    for reason, mask in reversed(thresholds.rules()):
        codes[mask(columns)] = _REASON_CODE[reason]
    return np.asarray(_REASON_ARRAY[codes])


@dataclass(frozen=True)
class QualitySignals:
    """Signals of a batch of documents, one read-only column per signal, and their drop reasons.

    Attributes:
        columns: ``SIGNAL_NAMES`` -> array of length n (float64 ratios, int64 counts, bool flags).
        reason: the first failing rule per document, "" when kept (see ``REASONS``).

    Example:
        >>> sig = quality_signals(["a b a b a b", ""])
        >>> len(sig), sig.kept.tolist(), sig.columns["top_2_gram_char_frac"].round(3).tolist()
        (2, [False, False], [0.818, 0.0])
    """

    columns: Mapping[str, npt.NDArray[Any]]
    reason: npt.NDArray[np.str_]

    @property
    def kept(self) -> Mask:
        """True where the document passed every enabled rule."""
        return np.asarray(self.reason == "")

    def __len__(self) -> int:
        return len(self.reason)

    def reason_counts(self) -> dict[str, int]:
        """Dropped documents per reason (kept ones not counted), for the catalog.

        Example:
            >>> quality_signals(["", "Hello world."]).reason_counts()
            {'gopher_short_doc': 1, 'top_2_gram': 1}
        """
        names, counts = np.unique(self.reason[self.reason != ""], return_counts=True)
        return {str(k): int(v) for k, v in zip(names, counts, strict=True)}

    def to_arrow(self) -> Any:
        """The columns and ``reason`` as a ``pyarrow.Table`` (needs pyarrow)."""
        import pyarrow as pa

        return pa.table({**self.columns, "reason": self.reason})


def quality_signals(
    texts: Texts | Iterable[str],
    thresholds: QualityThresholds | None = None,
    num_threads: int | None = None,
) -> QualitySignals:
    """Compute every quality signal of ``texts`` and the drop reason under ``thresholds``.

    Args:
        texts: the documents (a list, or any iterable of str), or the buffers of an Arrow string
            array (:func:`phicorpus.corpus.read_text_buffers`): no Python str per document.
        thresholds: the rules; paper defaults when ``None``.
        num_threads: worker threads; all cores when ``None``.

    Returns:
        A ``QualitySignals`` with one column per name in ``SIGNAL_NAMES``.

    Example:
        >>> sig = quality_signals(["", "Hello world."])
        >>> sig.columns["n_words"].tolist(), sig.reason.tolist()
        ([0, 2], ['gopher_short_doc', 'top_2_gram'])
        >>> quality_signals([""], QualityThresholds(min_doc_words=None)).reason.tolist()
        ['gopher_below_avg_threshold']
    """
    raw = _core.quality_signal_columns(texts, num_threads)
    columns: dict[str, npt.NDArray[Any]] = {}
    for name in SIGNAL_NAMES:
        col = raw[name]
        col.setflags(write=False)
        columns[name] = col
    reason = drop_reasons(columns, thresholds)
    reason.setflags(write=False)
    return QualitySignals(MappingProxyType(columns), reason)

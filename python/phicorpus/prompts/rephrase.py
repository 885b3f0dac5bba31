"""Rephrase formats: prompts that rewrite real documents, and the parsers of their outputs.

The formats come from four published recipes (the prompt text is phicorpus's own):

- WRAP (Maini et al. 2024): ``wrap_easy``, ``wrap_wiki``, ``wrap_hard``, ``wrap_qa``;
- Nemotron-CC (Su et al. 2025): ``nemo_wiki`` (the paraphrase of low-quality documents) and the
  knowledge formats of high-quality ones, ``nemo_qa``, ``nemo_distill``, ``nemo_extract``,
  ``nemo_list``;
- FinePhrase (Hugging Face 2026): ``fp_faq``, ``fp_math``, ``fp_table``, ``fp_tutorial``;
- REWIRE (Nguyen et al. 2025): ``rewire``, reason about the document, then rewrite it; only the
  rewrite becomes the document, the reasoning is kept beside it.

Each format has a template (``prompts/data/rephrase.toml``) and a structure its output must
have, checked by :func:`parse_rephrase`. A document longer than the model's context is cut at
paragraph boundaries into chunks (:func:`split_chunks`) that are rephrased one by one; each
prompt records the source id, the chunk number, the number of chunks and the chunk's character
span in the source.

Example:
    >>> chunks = split_chunks("a\\n\\nb\\n\\nc", max_chars=4)
    >>> [(c.start, c.end) for c in chunks]
    [(0, 4), (6, 7)]
    >>> parse_rephrase("rewire", "<reasoning>thin</reasoning><document>Better.</document>").document
    'Better.'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import tomllib

from phicorpus.prompts.templates import Template, TemplateFileError

__all__ = [
    "KNOWLEDGE_FORMATS",
    "PARAPHRASE_FORMATS",
    "REPHRASE_FORMATS",
    "REPHRASE_PROMPT_SCHEMA",
    "Chunk",
    "ParsedRephrase",
    "RephraseDocument",
    "RephraseFormat",
    "RephraseTemplates",
    "load_rephrase_templates",
    "parse_rephrase",
    "render_rephrase_prompts",
    "route_formats",
    "split_chunks",
]


@dataclass(frozen=True, slots=True)
class RephraseFormat:
    """One rephrase format: its recipe, its role in quality routing, and its output structure."""

    name: str
    family: str  # wrap | nemotron-cc | finephrase | rewire
    role: str  # paraphrase (low-quality documents) | knowledge (high-quality documents)
    structure: str  # prose | qa | list | math | table | tutorial | rewire
    min_items: int = 0  # QA pairs / list items / steps the output must have


_FORMATS = (
    RephraseFormat("wrap_easy", "wrap", "paraphrase", "prose"),
    RephraseFormat("wrap_wiki", "wrap", "paraphrase", "prose"),
    RephraseFormat("wrap_hard", "wrap", "paraphrase", "prose"),
    RephraseFormat("wrap_qa", "wrap", "paraphrase", "qa", 1),
    RephraseFormat("nemo_wiki", "nemotron-cc", "paraphrase", "prose"),
    RephraseFormat("nemo_qa", "nemotron-cc", "knowledge", "qa", 3),
    RephraseFormat("nemo_distill", "nemotron-cc", "knowledge", "prose"),
    RephraseFormat("nemo_extract", "nemotron-cc", "knowledge", "prose"),
    RephraseFormat("nemo_list", "nemotron-cc", "knowledge", "list", 3),
    RephraseFormat("fp_faq", "finephrase", "knowledge", "qa", 3),
    RephraseFormat("fp_math", "finephrase", "knowledge", "math", 1),
    RephraseFormat("fp_table", "finephrase", "knowledge", "table", 1),
    RephraseFormat("fp_tutorial", "finephrase", "knowledge", "tutorial", 2),
    RephraseFormat("rewire", "rewire", "paraphrase", "rewire"),
)
#: Every rephrase format by name, in a fixed order (also the source names of their outputs).
REPHRASE_FORMATS: dict[str, RephraseFormat] = {f.name: f for f in _FORMATS}
#: Nemotron-CC routing: documents below the quality threshold get these ...
PARAPHRASE_FORMATS = tuple(f.name for f in _FORMATS if f.role == "paraphrase")
#: ... and documents at or above it these.
KNOWLEDGE_FORMATS = tuple(f.name for f in _FORMATS if f.role == "knowledge")

#: Prompt rows of rephrase formats: the generation stage's columns plus the chunk provenance.
#: ``messages`` is left null (the generation stage builds them from ``system`` and ``user``): a JSON
#: copy of every document would double the table and a third of the rendering time.
REPHRASE_PROMPT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("format", pa.string()),
        ("system", pa.string()),
        ("user", pa.string()),
        ("messages", pa.string()),
        ("source_id", pa.string()),
        ("chunk", pa.int32()),
        ("chunks", pa.int32()),
        ("chunk_start", pa.int64()),
        ("chunk_end", pa.int64()),
        ("route", pa.string()),  # paraphrase | knowledge | weights
        ("quality", pa.float64()),  # the classifier's score that routed it (null: none)
        ("seed", pa.int64()),
        ("index", pa.int64()),
        ("expected_tokens", pa.int64()),
    ]
)


# -- templates ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RephraseTemplates:
    path: str
    system: dict[str, Template]
    user: dict[str, Template]
    expected_tokens: dict[str, int]
    """0: the output is about as long as the input (chunk tokens are used)."""
    overhead_chars: dict[str, int]
    """Characters of the instructions around ``{{document}}``."""


def default_rephrase_templates_path() -> Path:
    return Path(str(files("phicorpus.prompts").joinpath("data").joinpath("rephrase.toml")))


def load_rephrase_templates(path: str | Path | None = None) -> RephraseTemplates:
    """Load and check a rephrase template file (default: the packaged one).

    Raises:
        TemplateFileError: bad TOML, a format missing or unknown, a key missing, or a placeholder
            other than ``{{document}}``; the message starts with ``file:line:``.
    """
    path = Path(path) if path else default_rephrase_templates_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateFileError(f"{path}:0: cannot read rephrase template file ({exc})") from exc
    lines = text.split("\n")

    def line_of(name: str) -> int:
        header = f"[formats.{name}]"
        return next((i + 1 for i, line in enumerate(lines) if line.strip() == header), 1)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        raise TemplateFileError(
            f"{path}:{found.group(1) if found else 1}: {str(exc).split(' (at')[0]}"
        ) from exc
    formats = data.get("formats")
    if not isinstance(formats, Mapping):
        raise TemplateFileError(f"{path}:1: missing table [formats]")
    system: dict[str, Template] = {}
    user: dict[str, Template] = {}
    expected: dict[str, int] = {}
    overhead: dict[str, int] = {}
    for name in formats:
        if name not in REPHRASE_FORMATS:
            raise TemplateFileError(
                f"{path}:{line_of(name)}: unknown rephrase format {name!r} "
                f"(known: {', '.join(REPHRASE_FORMATS)})"
            )
    for name in REPHRASE_FORMATS:
        table = formats.get(name)
        if not isinstance(table, Mapping):
            raise TemplateFileError(f"{path}:1: missing table [formats.{name}]")
        where = f"{path}:{line_of(name)}"
        for key in ("system", "user"):
            value = table.get(key)
            if not isinstance(value, str) or not value.strip():
                raise TemplateFileError(f"{where}: formats.{name}.{key} must be a non-empty string")
            template = Template.compile(value.strip("\n"))
            unknown = sorted(template.names - {"document"})
            if unknown:
                raise TemplateFileError(
                    f"{where}: unknown placeholder {{{{{unknown[0]}}}}} in formats.{name}.{key} "
                    "(allowed: document)"
                )
            (system if key == "system" else user)[name] = template
        if "document" not in user[name].names:
            raise TemplateFileError(f"{where}: formats.{name}.user must contain {{{{document}}}}")
        tokens = table.get("expected_tokens", 0)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise TemplateFileError(f"{where}: formats.{name}.expected_tokens must be an integer >= 0")
        expected[name] = tokens
        overhead[name] = len(system[name].render({"document": ""})) + len(user[name].render({"document": ""}))
    return RephraseTemplates(str(path), system, user, expected, overhead)


# -- chunking -------------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """``text[start:end]`` of the source: a run of whole paragraphs (or pieces of one too long)."""

    start: int
    end: int


def _pieces(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Split one over-long paragraph at sentence ends, else at whitespace, else hard."""
    out: list[tuple[int, int]] = []
    pos = start
    while end - pos > max_chars:
        limit = pos + max_chars
        cut = -1
        for m in _SENTENCE_END.finditer(text, pos, limit):
            cut = m.end()
        if cut <= pos:
            space = text.rfind(" ", pos, limit)
            cut = space + 1 if space > pos else limit
        out.append((pos, cut))
        pos = cut
    if end > pos:
        out.append((pos, end))
    return out


def split_chunks(text: str, max_chars: int) -> list[Chunk]:
    """Cut ``text`` into spans of at most ``max_chars`` at paragraph (blank-line) boundaries.

    Consecutive paragraphs are packed greedily; a paragraph longer than ``max_chars`` is split at
    sentence ends. Spans never include the blank lines between paragraphs, cover every non-blank
    character in order, and the same text and limit always give the same spans.

    Example:
        >>> [(c.start, c.end) for c in split_chunks("one\\n\\ntwo\\n\\nthree", max_chars=8)]
        [(0, 8), (10, 15)]
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if len(text) <= max_chars:  # most web pages: one chunk, what greedy packing would give
        start, end = _strip_span(text, 0, len(text))
        return [Chunk(start, end)] if end > start else []
    paragraphs: list[tuple[int, int]] = []
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        if text[pos : m.start()].strip():
            paragraphs.append(_strip_span(text, pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        paragraphs.append(_strip_span(text, pos, len(text)))
    chunks: list[Chunk] = []
    cur_start = cur_end = -1
    for p_start, p_end in paragraphs:
        for s, e in (
            _pieces(text, p_start, p_end, max_chars) if p_end - p_start > max_chars else [(p_start, p_end)]
        ):
            if cur_start >= 0 and e - cur_start <= max_chars:
                cur_end = e
                continue
            if cur_start >= 0:
                chunks.append(Chunk(cur_start, cur_end))
            cur_start, cur_end = s, e
    if cur_start >= 0:
        chunks.append(Chunk(cur_start, cur_end))
    return chunks


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past leading and trailing whitespace."""
    segment = text[start:end]
    left = segment.lstrip()
    if not left:
        return start, start
    start += len(segment) - len(left)
    return start, start + len(left.rstrip())


# -- routing and rendering ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RephraseDocument:
    """A source document to rephrase: its id, text and (when a classifier scored it) quality."""

    id: str
    text: str
    quality: float | None = None


def route_formats(
    qualities: Sequence[float | None],
    *,
    formats: Sequence[str],
    weights: Mapping[str, float],
    threshold: float | None,
    low_formats: Sequence[str] = PARAPHRASE_FORMATS,
    high_formats: Sequence[str] = KNOWLEDGE_FORMATS,
    per_document: int = 1,
    rng: np.random.Generator,
) -> list[tuple[tuple[str, ...], str]]:
    """The formats each document is rephrased in, and the route that chose them.

    With a ``threshold`` and a quality score, Nemotron-CC style: a document scoring below it draws
    from ``low_formats`` (paraphrases), one at or above from ``high_formats`` (knowledge formats),
    each pool restricted to ``formats``; otherwise (no classifier, or no score) from all ``formats``.
    Within a pool, ``per_document`` distinct formats are drawn by ``weights`` (missing: 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> route_formats([1.0, 4.5], formats=["nemo_wiki", "nemo_qa"], weights={}, threshold=3.0, rng=rng)
        [(('nemo_wiki',), 'paraphrase'), (('nemo_qa',), 'knowledge')]
    """
    allowed = list(dict.fromkeys(formats))
    pools: dict[str, list[str]] = {"weights": allowed}
    if threshold is not None:
        pools["paraphrase"] = [f for f in allowed if f in set(low_formats)] or allowed
        pools["knowledge"] = [f for f in allowed if f in set(high_formats)] or allowed
    probabilities: dict[str, np.ndarray[Any, Any]] = {}
    for route, pool in pools.items():
        w = np.array([max(0.0, float(weights.get(f, 1.0))) for f in pool], dtype=np.float64)
        if w.sum() <= 0:
            w = np.ones(len(pool))
        probabilities[route] = w / w.sum()
    out: list[tuple[tuple[str, ...], str]] = []
    for quality in qualities:
        if threshold is None or quality is None:
            route = "weights"
        else:
            route = "paraphrase" if quality < threshold else "knowledge"
        pool = pools[route]
        p = probabilities[route]
        k = min(per_document, int((p > 0).sum()))
        picks = rng.choice(len(pool), size=k, replace=False, p=p)
        out.append((tuple(pool[i] for i in sorted(picks.tolist())), route))
    return out


def chunk_chars(context_tokens: int, chars_per_token: float, overhead_chars: int) -> int:
    """Characters of source per chunk: the context less the instructions, halved so that an
    output as long as its input still fits."""
    budget_tokens = context_tokens - int(overhead_chars / chars_per_token) - 16
    return max(200, int(budget_tokens / 2 * chars_per_token))


def render_rephrase_prompts(
    documents: Sequence[RephraseDocument],
    *,
    formats: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    threshold: float | None = None,
    per_document: int = 1,
    context_tokens: int = 4096,
    chars_per_token: float = 4.0,
    max_chunks: int = 0,
    seed: int = 0,
    templates: RephraseTemplates | None = None,
) -> pa.Table:
    """Rephrase prompts for ``documents`` (columns :data:`REPHRASE_PROMPT_SCHEMA`).

    Each document is routed (:func:`route_formats`), cut into chunks that fit ``context_tokens``
    (:func:`split_chunks`), and gets one prompt per format and chunk, in document order. The same
    inputs and seed give the same table, ids included.

    Args:
        documents: the sources (their quality is used when ``threshold`` is given).
        formats: the formats allowed (default: all of :data:`REPHRASE_FORMATS`).
        weights: per format (default 1 each).
        threshold: quality score splitting paraphrase from knowledge formats (None: by weight).
        per_document: formats per document.
        context_tokens, chars_per_token: the model's context and the chars/token estimate.
        max_chunks: at most this many chunks per document (0: all).
        seed: the random seed of the routing.
        templates: loaded templates (default: the packaged ones).

    Raises:
        ValueError: an unknown format name.

    Example:
        >>> docs = [RephraseDocument("web/1", "Paris is in France.")]
        >>> t = render_rephrase_prompts(docs, formats=["wrap_qa"])
        >>> t.column("format").to_pylist(), t.column("chunks").to_pylist()
        (['wrap_qa'], [1])
    """
    formats = tuple(formats) if formats else tuple(REPHRASE_FORMATS)
    unknown = [f for f in formats if f not in REPHRASE_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown rephrase format {unknown[0]!r} (choose from {', '.join(REPHRASE_FORMATS)})"
        )
    templates = templates or load_rephrase_templates()
    rng = np.random.default_rng(seed)
    routes = route_formats(
        [d.quality for d in documents],
        formats=formats,
        weights=weights or {},
        threshold=threshold,
        per_document=max(1, per_document),
        rng=rng,
    )
    limits = {f: chunk_chars(context_tokens, chars_per_token, templates.overhead_chars[f]) for f in formats}
    cols: dict[str, list[Any]] = {name: [] for name in REPHRASE_PROMPT_SCHEMA.names}
    system_digest = {
        f: hashlib.blake2b(templates.system[f].render({"document": ""}).encode(), digest_size=8).hexdigest()
        for f in formats
    }
    index = 0
    chunk_cache: dict[tuple[int, int], list[Chunk]] = {}
    for d, (doc, (chosen, route)) in enumerate(zip(documents, routes, strict=True)):
        for fmt in chosen:
            limit = limits[fmt]
            chunks = chunk_cache.get((d, limit))
            if chunks is None:
                chunks = split_chunks(doc.text, limit)
                if max_chunks > 0:
                    chunks = chunks[:max_chunks]
                chunk_cache = {(d, limit): chunks}
            system = templates.system[fmt].render({"document": ""}).strip()
            expected_fixed = templates.expected_tokens[fmt]
            for c, chunk in enumerate(chunks):
                piece = doc.text[chunk.start : chunk.end]
                user = templates.user[fmt].render({"document": piece}).strip()
                key = "\x1f".join((str(seed), fmt, doc.id, str(c), system_digest[fmt], user))
                cols["id"].append(
                    hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
                )
                cols["format"].append(fmt)
                cols["system"].append(system)
                cols["user"].append(user)
                cols["messages"].append(None)  # generation builds them from system + user
                cols["source_id"].append(doc.id)
                cols["chunk"].append(c)
                cols["chunks"].append(len(chunks))
                cols["chunk_start"].append(chunk.start)
                cols["chunk_end"].append(chunk.end)
                cols["route"].append(route)
                cols["quality"].append(doc.quality)
                cols["seed"].append(seed)
                cols["index"].append(index)
                cols["expected_tokens"].append(
                    expected_fixed or max(64, int(len(piece) / chars_per_token * 1.1))
                )
                index += 1
    return pa.table(cols, schema=REPHRASE_PROMPT_SCHEMA)


# -- parsing outputs ------------------------------------------------------------------------------

_QA_Q = re.compile(
    r"^\s*(?:[#*>\-\d.)\s]*)\**\s*(?:question|q)\s*\d*\s*\**\s*[:.)]\**\s*(\S.*)$", re.IGNORECASE
)
_QA_A = re.compile(r"^\s*(?:[#*>\-\s]*)\**\s*(?:answer|a)\s*\d*\s*\**\s*[:.)]\**\s*(\S.*)$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S")
_STEP = re.compile(r"^\s*(?:#+\s*)?(?:\**\s*)?(?:step\s+)?(\d+)\s*[.):]", re.IGNORECASE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
_MATH_PROBLEM = re.compile(r"^\s*(?:[#*]\s*)*\**\s*problem\b[^:\n]*:", re.IGNORECASE | re.MULTILINE)
_MATH_SOLUTION = re.compile(r"^\s*(?:[#*]\s*)*\**\s*solution\b[^:\n]*:", re.IGNORECASE | re.MULTILINE)
_MATH_ANSWER = re.compile(
    r"^\s*(?:[#*]\s*)*\**\s*(?:final\s+)?answer\b[^:\n]*:\**\s*[^\n]*\d|the (?:final )?answer is[^\n]*\d",
    re.IGNORECASE | re.MULTILINE,
)
_REASONING = re.compile(r"<reasoning>(.*?)(?:</reasoning>|(?=<document>)|$)", re.IGNORECASE | re.DOTALL)
_DOCUMENT = re.compile(r"<document>(.*?)(?:</document>|$)", re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class ParsedRephrase:
    """A rephrase output checked against its format: the document text, the REWIRE reasoning,
    the count of structural items found, and the drop reason when the structure is missing."""

    document: str
    reasoning: str | None
    items: int
    problem: str | None


def qa_pairs(text: str) -> list[tuple[str, str]]:
    """``Question: ... / Answer: ...`` pairs (also ``Q:``/``A:``, bold or numbered markers)."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    answer: list[str] | None = None
    for line in text.splitlines():
        q = _QA_Q.match(line)
        if q and not _QA_A.match(line):
            if question is not None and answer:
                pairs.append((question, " ".join(answer)))
            question, answer = q.group(1).strip(), None
            continue
        a = _QA_A.match(line)
        if a and question is not None and answer is None:
            answer = [a.group(1).strip()]
        elif answer is not None and line.strip():
            answer.append(line.strip())
    if question is not None and answer:
        pairs.append((question, " ".join(answer)))
    return pairs


def parse_rephrase(fmt: str, text: str) -> ParsedRephrase:
    """Check a rephrase output's structure; for ``rewire`` keep only the rewritten document.

    Drop reasons: ``no-qa-pairs`` (fewer than the format's minimum), ``no-list``, ``no-table``,
    ``no-math-problem``, ``no-steps``, ``no-rewrite`` (REWIRE without a ``<document>`` part),
    ``not-prose`` (a prose format answered with a bare list or nothing but markup).

    Example:
        >>> parse_rephrase("wrap_qa", "Question: Where is Paris?\\nAnswer: In France.").items
        1
    """
    spec = REPHRASE_FORMATS[fmt]
    body = text.strip()
    lines = body.splitlines()
    if spec.structure == "rewire":
        doc = _DOCUMENT.search(body)
        reason = _REASONING.search(body)
        reasoning = reason.group(1).strip() if reason else None
        if doc is None or not doc.group(1).strip():
            return ParsedRephrase(body, reasoning, 0, "no-rewrite")
        return ParsedRephrase(doc.group(1).strip(), reasoning, 1, None)
    if spec.structure == "qa":
        n = len(qa_pairs(body))
        return ParsedRephrase(body, None, n, None if n >= spec.min_items else "no-qa-pairs")
    if spec.structure == "list":
        n = sum(1 for line in lines if _LIST_ITEM.match(line))
        return ParsedRephrase(body, None, n, None if n >= spec.min_items else "no-list")
    if spec.structure == "table":
        rows = [line for line in lines if _TABLE_ROW.match(line)]
        has_sep = any(_TABLE_SEP.match(line) for line in lines)
        if len(rows) < 3 or not has_sep:  # header, separator, one data row
            return ParsedRephrase(body, None, 0, "no-table")
        n = len(qa_pairs(body))
        return ParsedRephrase(body, None, n, None if n >= spec.min_items else "no-qa-pairs")
    if spec.structure == "math":
        problems = len(_MATH_PROBLEM.findall(body))
        ok = problems >= 1 and _MATH_SOLUTION.search(body) and _MATH_ANSWER.search(body)
        return ParsedRephrase(body, None, problems, None if ok else "no-math-problem")
    if spec.structure == "tutorial":
        numbers = [int(m.group(1)) for line in lines if (m := _STEP.match(line))]
        steps = len(set(numbers))
        return ParsedRephrase(
            body, None, steps, None if steps >= spec.min_items and 1 in numbers else "no-steps"
        )
    # prose: most of the words must sit outside list items and QA markers
    words = len(_WORD.findall(body))
    listed = sum(len(_WORD.findall(line)) for line in lines if _LIST_ITEM.match(line))
    if words == 0 or listed > 0.8 * words:
        return ParsedRephrase(body, None, 0, "not-prose")
    return ParsedRephrase(body, None, 1, None)

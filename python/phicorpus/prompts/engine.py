"""The prompt engine: topics x formats x audiences x styles x features x words x web excerpts.

:func:`render_prompts` draws every random choice for the whole set up front with one seeded
NumPy generator (vectorised where it can), then fills the compiled templates in one pass per
prompt, so 100,000 prompts take seconds. The same inputs and seed give the same table.

Example:
    >>> table = render_prompts(1000, formats=("textbook", "stories"), seed=1)  # doctest: +SKIP
    >>> write_prompts(Corpus.create("corpus/"), table)  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.config import PromptsConfig
from phicorpus.corpus import Corpus, atomic_path, fsync_dir
from phicorpus.prompts.allocation import allocate_topics, largest_remainder
from phicorpus.prompts.exercise import ANSWER_PYTHON_TESTS, ANSWER_TEXT, EXERCISE_LAYOUT
from phicorpus.prompts.templates import FORMATS, FormatTemplates, Templates, load_templates
from phicorpus.prompts.web import WebIndex, WebSample, load_web_samples
from phicorpus.prompts.words import load_words
from phicorpus.topics import Topic, load_topics

__all__ = [
    "PROMPT_SCHEMA",
    "TOPIC_FORMATS",
    "iter_prompt_batches",
    "render_prompts",
    "rewrite_order",
    "write_prompt_file",
    "write_prompts",
]

#: Formats seeded by a topic (the rest are not: stories by words, rewrite by a document).
TOPIC_FORMATS = ("textbook", "exercises")
_MAX_ORDER_ITEMS = 30
_STORY_TAGS = ("verb", "noun", "adjective")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_BLANK_LINES = re.compile(r"\n{3,}")

PROMPT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("format", pa.string()),
        ("system", pa.string()),
        ("user", pa.string()),
        ("messages", pa.string()),
        ("topic_id", pa.string()),
        ("topic_path", pa.string()),
        ("subject", pa.string()),
        ("audience", pa.string()),
        ("style", pa.string()),
        ("features", pa.list_(pa.string())),
        ("words", pa.list_(pa.string())),
        ("web_id", pa.string()),
        ("source_id", pa.string()),
        ("answer_format", pa.string()),
        ("template", pa.int32()),
        ("seed", pa.int64()),
        ("index", pa.int64()),
        ("expected_tokens", pa.int64()),
    ]
)


@dataclass(slots=True)
class _Row:
    format: str
    values: dict[str, str]
    template: int
    topic: Topic | None = None
    audience: str = ""
    style: str = ""
    features: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    web_id: str | None = None
    source_id: str | None = None
    answer_format: str = ANSWER_TEXT


def render_prompts(
    n: int,
    *,
    formats: Sequence[str] | None = None,
    seed: int = 0,
    web: Sequence[str | Path | WebSample] = (),
    config: PromptsConfig | None = None,
    documents: Sequence[tuple[str, str]] = (),
    topics: Sequence[Topic] | None = None,
    templates: Templates | None = None,
) -> pa.Table:
    """Render ``n`` prompts as one table (see :func:`iter_prompt_batches` for the arguments).

    Example:
        >>> t = render_prompts(10, formats=("stories",), seed=3)
        >>> t.num_rows, set(t.column("format").to_pylist())
        (10, {'stories'})
    """
    batches = list(
        iter_prompt_batches(
            n,
            formats=formats,
            seed=seed,
            web=web,
            config=config,
            documents=documents,
            topics=topics,
            templates=templates,
        )
    )
    return pa.Table.from_batches(batches, schema=PROMPT_SCHEMA)


#: Prompts rendered to Arrow at a time by :func:`iter_prompt_batches` (their text is the bulk).
PROMPT_BATCH_ROWS = 20_000


def iter_prompt_batches(
    n: int,
    *,
    formats: Sequence[str] | None = None,
    seed: int = 0,
    web: Sequence[str | Path | WebSample] = (),
    config: PromptsConfig | None = None,
    documents: Sequence[tuple[str, str]] = (),
    topics: Sequence[Topic] | None = None,
    templates: Templates | None = None,
    batch_rows: int = PROMPT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Render ``n`` prompts (columns: :data:`PROMPT_SCHEMA`) as record batches of ``batch_rows``.

    The draws (topics, templates, words) are made for all ``n`` up front, so the prompts are the
    same whatever ``batch_rows`` is; only the rendered text is built batch by batch, which
    bounds the memory of a million prompts.

    Args:
        n: how many prompts, split over ``formats`` by ``config.format_weights`` (renormalised
            over the formats asked for; a format of weight 0 gets none unless all are 0). Rewrite
            prompts take the documents in order, ``config.rewrite_m`` each, wrapping around.
        formats: any of ``textbook``, ``exercises``, ``stories``, ``rewrite`` (default: the config's).
        seed: the same seed and inputs give the same prompts, ids included.
        web: JSONL/Parquet files with a ``text`` column (or loaded samples); a
            ``config.web_fraction`` share of textbook and exercises prompts carry an excerpt.
        config: the ``[prompts]`` section (templates, topics, words, weights).
        documents: ``(id, text)`` pairs for ``rewrite`` prompts, ``config.rewrite_m`` each.
        topics, templates: already loaded ones (default: load from ``config``).

    Raises:
        ValueError: an unknown format, ``rewrite`` without documents, or a malformed input file
            (its subclasses name the file and line).

    Example:
        >>> [b.num_rows for b in iter_prompt_batches(10, formats=("stories",), seed=3, batch_rows=4)]
        [4, 4, 2]
    """
    config = config or PromptsConfig()
    formats = tuple(formats) if formats else tuple(config.formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown prompt format {unknown[0]!r} (choose from {', '.join(FORMATS)})")
    formats = tuple(dict.fromkeys(formats))
    templates = templates or load_templates(config.templates or None)
    rng = np.random.default_rng(seed)

    weights = np.array([config.format_weights.get(f, 0.0) for f in formats], dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(formats))
    counts = largest_remainder(weights, n)
    per_format = dict(zip(formats, counts.tolist(), strict=True))
    if per_format.get("rewrite", 0) and not documents:
        raise ValueError("rewrite prompts need documents (--rewrite-from FILE)")
    order = np.repeat(np.arange(len(formats)), counts)[rng.permutation(n)] if n else np.zeros(0, int)

    rows: list[_Row | None] = [None] * n
    topic_positions = np.flatnonzero(
        np.isin(order, [formats.index(f) for f in TOPIC_FORMATS if f in formats])
    )
    if len(topic_positions):
        if topics is None:
            topics = load_topics(config.topics_dir or None)
        samples = [s if isinstance(s, WebSample) else None for s in web]
        paths = [s for s in web if not isinstance(s, WebSample)]
        loaded = [s for s in samples if s is not None] + (load_web_samples(paths) if paths else [])
        index = WebIndex(loaded, max_chars=config.web_excerpt_chars) if loaded else None
        _topic_rows(rows, formats, order, topic_positions, topics, templates, config, index, rng)
    for fmt in ("stories", "rewrite"):
        if fmt in formats:
            positions = np.flatnonzero(order == formats.index(fmt))
            if fmt == "stories":
                _story_rows(rows, positions, templates, config, rng)
            else:
                _rewrite_rows(rows, positions, documents, templates, config, rng)
    for start in range(0, n, max(1, batch_rows)):
        stop = min(n, start + max(1, batch_rows))
        yield _to_batch(rows, start, stop, templates, seed)
        rows[start:stop] = [None] * (stop - start)  # rendered: let the draws go


def _topic_rows(
    rows: list[_Row | None],
    formats: tuple[str, ...],
    order: npt.NDArray[np.int64],
    positions: npt.NDArray[np.int64],
    topics: Sequence[Topic],
    templates: Templates,
    config: PromptsConfig,
    web: WebIndex | None,
    rng: np.random.Generator,
) -> None:
    chosen = allocate_topics([t.slug for t in topics], len(positions), rng, config.subject_weights)
    with_web = rng.random(len(positions)) < config.web_fraction if web else np.zeros(len(positions), bool)
    programming: dict[str, bool] = {}
    draws = {
        fmt: _Draws(templates.formats[fmt], int((order == formats.index(fmt)).sum()), rng)
        for fmt in TOPIC_FORMATS
        if fmt in formats
    }
    for k, pos in enumerate(positions.tolist()):
        fmt = formats[order[pos]]
        topic = topics[chosen[k]]
        draw = draws[fmt]
        j = draw.next()
        ft = draw.fmt
        is_code = programming.get(topic.slug)
        if is_code is None:
            is_code = any(fnmatch.fnmatchcase(topic.slug, p) for p in config.programming_subjects)
            programming[topic.slug] = is_code
        variants = ft.user_programming if (fmt == "exercises" and is_code) else ft.user
        variant = int(draw.variant[j] % len(variants))
        web_text, web_id = "", None
        if web is not None and with_web[k]:
            sample = web.pick(f"{topic.leaf} {topic.unit}", rng)
            web_id = web.samples[sample].id
            # blank lines around the block; runs of them collapse when the template has its own
            web_text = "\n" + templates.web.render({"excerpt": web.excerpt(sample)}) + "\n"
        values = {
            "topic": topic.path_str,
            "subject": topic.subject,
            "course": topic.course,
            "unit": topic.unit,
            "leaf": topic.leaf,
            "audience": templates.audiences[draw.audience[j]],
            "style": templates.styles[draw.style[j]],
            "features": _bullets(templates, fmt, draw.features[j]),
            "web": web_text,
            "layout": EXERCISE_LAYOUT,
        }
        rows[pos] = _Row(
            format=fmt,
            values=values,
            template=variant,
            topic=topic,
            audience=draw.audience[j],
            style=draw.style[j],
            features=draw.features[j],
            web_id=web_id,
            answer_format=ANSWER_PYTHON_TESTS if (fmt == "exercises" and is_code) else ANSWER_TEXT,
        )


class _Draws:
    """The per-prompt random choices of one format, drawn for all its prompts at once.

    Audience x style pairs go in shuffled rounds over all combinations, so a format's prompts
    cover every combination as soon as there are enough of them.
    """

    def __init__(self, fmt: FormatTemplates, count: int, rng: np.random.Generator) -> None:
        self.fmt = fmt
        self._next = 0
        combos = [(a, s) for a in fmt.audiences for s in fmt.styles]
        rounds = -(-count // len(combos)) if count else 0
        picks: list[int] = (
            np.concatenate([rng.permutation(len(combos)) for _ in range(rounds)]).tolist() if rounds else []
        )
        self.audience = [combos[i][0] for i in picks[:count]]
        self.style = [combos[i][1] for i in picks[:count]]
        self.variant = rng.integers(0, 1 << 30, size=count)
        names = fmt.features
        if names and fmt.max_features:
            ks = rng.integers(fmt.min_features, fmt.max_features + 1, size=count)
            ranks = np.argsort(rng.random((count, len(names))), axis=1)
            self.features = [
                tuple(names[i] for i in sorted(ranks[r, : ks[r]].tolist())) for r in range(count)
            ]
        else:
            self.features = [()] * count

    def next(self) -> int:
        j = self._next
        self._next += 1
        return j


def _bullets(templates: Templates, fmt: str, features: Sequence[str]) -> str:
    table = templates.features.get(fmt, {})
    return "\n".join(f"- {table[f]}" for f in features)


def _story_rows(
    rows: list[_Row | None],
    positions: npt.NDArray[np.int64],
    templates: Templates,
    config: PromptsConfig,
    rng: np.random.Generator,
) -> None:
    words = load_words(config.words or None)
    count = len(positions)
    draw = _Draws(templates.formats["stories"], count, rng)
    # TinyStories: one verb, one noun, one adjective; any further words of random tags.
    base = _STORY_TAGS[: config.story_words]
    picks: dict[str, npt.NDArray[np.int64]] = {
        tag: rng.integers(0, len(words[tag]), size=(count, config.story_words)) for tag in words
    }
    extra_tags = rng.integers(0, len(_STORY_TAGS), size=(count, config.story_words - len(base)))
    for j, pos in enumerate(positions.tolist()):
        chosen: list[tuple[str, str]] = []
        used: set[str] = set()
        wanted = [*base, *(_STORY_TAGS[t] for t in extra_tags[j])]
        for slot, tag in enumerate(wanted):
            pool = words[tag]
            word = pool[picks[tag][j, slot]]
            step = 0
            while word in used and step < len(pool):  # re-draw deterministically on a repeat
                step += 1
                word = pool[(picks[tag][j, slot] + step) % len(pool)]
            used.add(word)
            chosen.append((tag, word))
        variants = draw.fmt.user
        values = {
            "words": _word_phrase(chosen),
            "features": _bullets(templates, "stories", draw.features[j]),
            "audience": templates.audiences[draw.audience[j]],
            "style": templates.styles[draw.style[j]],
        }
        rows[pos] = _Row(
            format="stories",
            values=values,
            template=int(draw.variant[j] % len(variants)),
            audience=draw.audience[j],
            style=draw.style[j],
            features=draw.features[j],
            words=tuple(w for _, w in chosen),
        )


def _word_phrase(chosen: Sequence[tuple[str, str]]) -> str:
    items = [f'the {tag} "{word}"' for tag, word in chosen]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def rewrite_order(text: str, rng: np.random.Generator, max_items: int = _MAX_ORDER_ITEMS) -> list[str]:
    """The document's sentences in a random order, grouped into at most ``max_items`` runs.

    Consecutive sentences stay together when there are too many, so the list stays short.
    """
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]
    if not sentences:
        return []
    size = -(-len(sentences) // max_items)
    groups = [" ".join(sentences[i : i + size]) for i in range(0, len(sentences), size)]
    if len(groups) > 1:
        perm = rng.permutation(len(groups))
        if (perm == np.arange(len(groups))).all():  # a permuted order differs from the original
            perm = np.roll(perm, 1)
        groups = [groups[i] for i in perm]
    return groups


def _rewrite_rows(
    rows: list[_Row | None],
    positions: npt.NDArray[np.int64],
    documents: Sequence[tuple[str, str]],
    templates: Templates,
    config: PromptsConfig,
    rng: np.random.Generator,
) -> None:
    ft = templates.formats["rewrite"]
    m = config.rewrite_m
    style_orders: dict[int, list[int]] = {}
    for j, pos in enumerate(positions.tolist()):
        doc_index = (j // m) % len(documents)
        variant = j % m + m * (j // (m * len(documents)))
        doc_id, text = documents[doc_index]
        styles = style_orders.get(doc_index)
        if styles is None:  # the M rewrites of a document take distinct styles while there are enough
            styles = rng.permutation(len(ft.styles)).tolist()
            style_orders[doc_index] = styles
        style = ft.styles[styles[variant % len(styles)]]
        audience = ft.audiences[int(rng.integers(len(ft.audiences)))]
        order = rewrite_order(text, rng)
        values = {
            "document": text.strip(),
            "order": "\n".join(f"{i}. {item}" for i, item in enumerate(order, start=1)),
            "style": templates.styles[style],
            "audience": templates.audiences[audience],
            "variant": str(variant + 1),
            "count": str(m),
        }
        rows[pos] = _Row(
            format="rewrite",
            values=values,
            template=int(rng.integers(len(ft.user))),
            audience=audience,
            style=style,
            features=("fullname", "permute"),
            source_id=doc_id,
        )


def _to_batch(
    rows: Sequence[_Row | None], start: int, stop: int, templates: Templates, seed: int
) -> pa.RecordBatch:
    cols: dict[str, list[object]] = {name: [] for name in PROMPT_SCHEMA.names}
    topic_keys: dict[Topic, tuple[str, str]] = {}
    for i in range(start, stop):
        row = rows[i]
        assert row is not None
        ft = templates.formats[row.format]
        is_code = row.answer_format == ANSWER_PYTHON_TESTS
        template = (ft.user_programming if is_code else ft.user)[row.template]
        user = _tidy(template.render(row.values))
        system = _tidy(ft.system.render(row.values))
        topic = row.topic
        topic_id, topic_path = topic_keys.get(topic, (None, None)) if topic else (None, None)
        if topic is not None and topic_id is None:
            topic_id, topic_path = topic_keys[topic] = (topic.id, topic.path_str)
        key = "\x1f".join((str(seed), str(i), row.format, topic_id or "", system, user))
        cols["id"].append(hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest())
        cols["format"].append(row.format)
        cols["system"].append(system)
        cols["user"].append(user)
        cols["messages"].append(
            json.dumps(
                [{"role": "system", "content": system}, {"role": "user", "content": user}], ensure_ascii=False
            )
        )
        cols["topic_id"].append(topic_id)
        cols["topic_path"].append(topic_path)
        cols["subject"].append(topic.slug if topic else None)
        cols["audience"].append(row.audience)
        cols["style"].append(row.style)
        cols["features"].append(list(row.features))
        cols["words"].append(list(row.words))
        cols["web_id"].append(row.web_id)
        cols["source_id"].append(row.source_id)
        cols["answer_format"].append(row.answer_format)
        cols["template"].append(row.template)
        cols["seed"].append(seed)
        cols["index"].append(i)
        cols["expected_tokens"].append(ft.expected_tokens)
    return pa.RecordBatch.from_pydict(cols, schema=PROMPT_SCHEMA)


def _tidy(text: str) -> str:
    """Collapse the blank-line runs an empty placeholder leaves, and trim."""
    return (_BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text).strip()


def write_prompt_file(
    path: str | Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema = PROMPT_SCHEMA
) -> tuple[Path, Counter[str], str]:
    """Stream prompt batches into one Parquet file at ``path``, published atomically (``schema``:
    :data:`PROMPT_SCHEMA`, or another prompt layout such as the rephrase prompts').

    Returns:
        ``(path, prompts per format, sha256 of the ids)`` (the digest :func:`write_prompts` names
        a corpus's prompt file by).
    """
    target = Path(path)
    counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        try:
            for batch in batches:
                writer.write_batch(batch)
                counts.update(batch.column("format").to_pylist())
                for value in batch.column("id").to_pylist():
                    digest.update(value.encode("ascii") + b"\n")
        finally:
            writer.close()
    return target, counts, digest.hexdigest()


def write_prompts(corpus: Corpus, table: pa.Table | Iterable[pa.RecordBatch]) -> Path:
    """Publish a prompt table as ``prompts/prompts-<hash of its ids>.parquet`` and register it.

    The name depends only on the prompts' ids, so writing the same table again is a no-op that
    returns the same path; a file left unregistered by a crash is overwritten.

    Example:
        >>> path = write_prompts(Corpus.create("corpus/"), render_prompts(100))  # doctest: +SKIP
    """
    from phicorpus.catalog import Catalog

    batches = table.to_batches() if isinstance(table, pa.Table) else table
    schema = table.schema if isinstance(table, pa.Table) else PROMPT_SCHEMA
    # Streamed to a staging name first: the final name depends on every id.
    staging = corpus.prompts_dir / f".prompts-staging-{os.getpid()}.parquet"
    staged, counts, digest = write_prompt_file(staging, batches, schema)
    path = corpus.prompts_dir / f"prompts-{digest[:16]}.parquet"
    rows = sum(counts.values())
    params = {"file": corpus.relative(path), "rows": rows}
    try:
        with Catalog.open(corpus) as catalog:
            if catalog.is_registered(corpus.relative(path)) and path.is_file():
                return path
            run_id = catalog.start_stage("prompts", params)
            os.replace(staged, path)
            fsync_dir(path.parent)
            with catalog.transaction():
                catalog.register_shard(corpus.relative(path), "prompts", rows=rows, stage="prompts")
                catalog.finish_stage(run_id, dict(sorted(counts.items())))
    finally:
        staged.unlink(missing_ok=True)
    return path

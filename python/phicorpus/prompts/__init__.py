"""The prompt engine (DESIGN.md): topic-seeded textbook and exercise prompts, TinyStories-style
story prompts, web excerpts, and knowledge-augmentation rewrites.

- :func:`render_prompts` -- a seeded, deterministic prompt table (:data:`PROMPT_SCHEMA`);
  :func:`write_prompts` publishes it in a corpus (``prompts/*.parquet``, kind ``prompts``).
- :func:`allocate_topics` / :func:`prompts_for_tokens` -- prompts per topic from a token target,
  every topic used before any is used twice, subject weights.
- :func:`parse_exercise` -- splits a programming exercise answer written in
  :data:`EXERCISE_LAYOUT` into problem, solution and tests (``answer_format == "python-tests"``).
- :func:`load_templates`, :func:`load_words` -- the editable data files in ``prompts/data/``.
- :func:`prompt_stats` -- diversity figures (coverage, near-duplicate rate).

Example:
    >>> from phicorpus.prompts import render_prompts
    >>> table = render_prompts(20, formats=("stories",), seed=7)
    >>> table.column("words")[0].as_py()  # doctest: +SKIP
    ['jump', 'kitten', 'shiny']
"""

from __future__ import annotations

from phicorpus.prompts.allocation import allocate_topics, largest_remainder, prompts_for_tokens, topic_counts
from phicorpus.prompts.engine import (
    PROMPT_SCHEMA,
    TOPIC_FORMATS,
    iter_prompt_batches,
    render_prompts,
    rewrite_order,
    write_prompt_file,
    write_prompts,
)
from phicorpus.prompts.exercise import (
    ANSWER_PYTHON_TESTS,
    ANSWER_TEXT,
    EXERCISE_LAYOUT,
    Exercise,
    parse_exercise,
)
from phicorpus.prompts.stats import near_duplicate_rate, prompt_stats
from phicorpus.prompts.templates import FORMATS, TemplateFileError, Templates, load_templates
from phicorpus.prompts.web import WebIndex, WebSample, excerpt, load_text_records, load_web_samples
from phicorpus.prompts.words import WordListError, load_words

__all__ = [
    "ANSWER_PYTHON_TESTS",
    "ANSWER_TEXT",
    "EXERCISE_LAYOUT",
    "FORMATS",
    "PROMPT_SCHEMA",
    "TOPIC_FORMATS",
    "Exercise",
    "TemplateFileError",
    "Templates",
    "WebIndex",
    "WebSample",
    "WordListError",
    "allocate_topics",
    "excerpt",
    "iter_prompt_batches",
    "largest_remainder",
    "load_templates",
    "load_text_records",
    "load_web_samples",
    "load_words",
    "near_duplicate_rate",
    "parse_exercise",
    "prompt_stats",
    "prompts_for_tokens",
    "render_prompts",
    "rewrite_order",
    "topic_counts",
    "write_prompt_file",
    "write_prompts",
]

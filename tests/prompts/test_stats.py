"""Diversity figures of a prompt set."""

from __future__ import annotations

from phicorpus.config import PromptsConfig
from phicorpus.prompts import load_templates, near_duplicate_rate, prompt_stats, render_prompts
from phicorpus.topics import Topic


def test_near_duplicate_rate_counts_copies() -> None:
    base = [f"document {i} " + " ".join(f"w{i}x{j}" for j in range(40)) for i in range(20)]
    assert near_duplicate_rate(base) == 0.0
    assert near_duplicate_rate(base + base[:5]) == 5 / 25


def test_prompt_stats(config: PromptsConfig, topics: list[Topic]) -> None:
    table = render_prompts(400, seed=1, config=config)
    stats = prompt_stats(table, templates=load_templates(), n_topics=len(topics))
    assert stats["prompts"] == 400
    assert sum(stats["formats"].values()) == 400
    assert stats["topics_covered"] == len(topics) and stats["topic_coverage"] == 1.0
    assert stats["combinations"]["textbook"] == {"used": 25, "possible": 25}
    assert 0.0 <= stats["near_duplicate_rate"] <= 1.0
    assert set(stats["near_duplicate_rate_by_format"]) == set(stats["formats"])
    small = prompt_stats(table, max_near_dup_rows=100)
    assert 0.0 <= small["near_duplicate_rate"] <= 1.0

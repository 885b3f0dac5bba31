"""The prompt engine: determinism, coverage before reuse, required words, features, web, rewrite."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from phicorpus.catalog import Catalog
from phicorpus.config import PromptsConfig
from phicorpus.corpus import Corpus
from phicorpus.prompts import (
    ANSWER_PYTHON_TESTS,
    EXERCISE_LAYOUT,
    PROMPT_SCHEMA,
    WebSample,
    load_templates,
    load_words,
    render_prompts,
    rewrite_order,
    write_prompts,
)
from phicorpus.topics import Topic


def test_same_seed_same_prompts_other_seed_other(config: PromptsConfig) -> None:
    a = render_prompts(300, seed=5, config=config)
    b = render_prompts(300, seed=5, config=config)
    c = render_prompts(300, seed=6, config=config)
    assert a.equals(b)
    assert a.schema == PROMPT_SCHEMA
    assert a.column("id").to_pylist() != c.column("id").to_pylist()
    assert len(set(a.column("id").to_pylist())) == 300


def test_every_topic_used_before_any_twice(config: PromptsConfig, topics: list[Topic]) -> None:
    n = 2 * len(topics) + 7
    table = render_prompts(n, formats=("textbook", "exercises"), seed=1, config=config)
    ids = table.column("topic_id").to_pylist()
    assert len(set(ids[: len(topics)])) == len(topics)  # the first round covers every topic once
    counts = Counter(ids)
    assert set(counts) == {t.id for t in topics}
    assert max(counts.values()) - min(counts.values()) <= 1
    # paths and subjects recorded match the topic
    by_id = {t.id: t for t in topics}
    for row in table.slice(0, 20).to_pylist():
        topic = by_id[row["topic_id"]]
        assert row["topic_path"] == topic.path_str
        assert row["subject"] == topic.slug
        assert topic.leaf in row["user"]


def test_fewer_prompts_than_topics_never_repeat(config: PromptsConfig, topics: list[Topic]) -> None:
    table = render_prompts(len(topics) - 3, formats=("textbook",), seed=2, config=config)
    ids = table.column("topic_id").to_pylist()
    assert len(ids) == len(set(ids))


def test_subject_weights(topics_dir: Path, topics: list[Topic]) -> None:
    config = PromptsConfig(topics_dir=str(topics_dir), subject_weights={"biology": 3.0, "algebra": 0.0})
    table = render_prompts(600, formats=("textbook",), seed=3, config=config)
    subjects = Counter(table.column("subject").to_pylist())
    assert "algebra" not in subjects
    # biology: 45 topics at weight 3, python-basics: 15 topics at weight 1 -> 135 : 15 shares
    assert subjects["biology"] / subjects["python-basics"] == pytest.approx(9.0, rel=0.1)


def test_stories_name_their_required_words(config: PromptsConfig) -> None:
    words = load_words()
    table = render_prompts(500, formats=("stories",), seed=4, config=config)
    for row in table.to_pylist():
        assert len(row["words"]) == 3
        verb, noun, adjective = row["words"]
        assert verb in words["verb"] and noun in words["noun"] and adjective in words["adjective"]
        for tag, word in zip(("verb", "noun", "adjective"), row["words"], strict=True):
            assert f'the {tag} "{word}"' in row["user"]
        assert row["topic_id"] is None
        assert 1 <= len(row["features"]) <= 3


def test_story_words_beyond_three(topics_dir: Path) -> None:
    config = PromptsConfig(topics_dir=str(topics_dir), story_words=5)
    for row in render_prompts(50, formats=("stories",), seed=9, config=config).to_pylist():
        assert len(set(row["words"])) == 5
        assert all(f'"{w}"' in row["user"] for w in row["words"])


def test_features_audiences_styles_recorded_and_covered(config: PromptsConfig) -> None:
    templates = load_templates()
    table = render_prompts(400, formats=("textbook",), seed=7, config=config)
    rows = table.to_pylist()
    combos = {(r["audience"], r["style"]) for r in rows}
    ft = templates.formats["textbook"]
    assert combos == {(a, s) for a in ft.audiences for s in ft.styles}
    for row in rows:
        assert 1 <= len(row["features"]) <= 3
        for feature in row["features"]:
            assert templates.features["textbook"][feature] in row["user"]
        assert templates.audiences[row["audience"]] in row["user"]
        assert row["expected_tokens"] == ft.expected_tokens
        assert json.loads(row["messages"]) == [
            {"role": "system", "content": row["system"]},
            {"role": "user", "content": row["user"]},
        ]
        assert "{{" not in row["user"] and "\n\n\n" not in row["user"]


def test_programming_exercises_carry_the_layout(config: PromptsConfig) -> None:
    table = render_prompts(300, formats=("exercises",), seed=8, config=config)
    for row in table.to_pylist():
        is_code = row["subject"] == "python-basics"
        assert (row["answer_format"] == ANSWER_PYTHON_TESTS) == is_code
        assert (EXERCISE_LAYOUT in row["user"]) == is_code


def test_web_excerpts_fraction_relevance_and_ids(config: PromptsConfig, topics: list[Topic]) -> None:
    filler = "Plain words fill this sentence about nothing special at all. " * 3
    samples = [
        WebSample(f"w{i}", f"{filler}Unrelated sample number {i} talks about cooking.") for i in range(40)
    ]
    samples.append(WebSample("relevant", "A long note on quartz prism lattice ideas. " + filler))
    cfg = PromptsConfig(topics_dir=config.topics_dir, web_fraction=0.5)
    table = render_prompts(2000, formats=("textbook",), seed=11, config=cfg, web=samples)
    rows = table.to_pylist()
    with_web = [r for r in rows if r["web_id"] is not None]
    assert 0.45 < len(with_web) / len(rows) < 0.55
    for row in with_web[:50]:
        assert "<excerpt>" in row["user"]
    # topics whose leaf mentions "quartz" get the one sample about quartz
    quartz = [r for r in with_web if "quartz" in r["topic_path"].split(" \u203a ")[-1]]
    assert quartz and all(r["web_id"] == "relevant" for r in quartz)
    assert all(r["web_id"] is None for r in rows if r not in with_web)


def test_web_from_jsonl_file(config: PromptsConfig, tmp_path: Path) -> None:
    path = tmp_path / "web.jsonl"
    path.write_text(
        "\n".join(json.dumps({"text": f"Sentence one of doc {i}. Sentence two."}) for i in range(5)) + "\n"
    )
    cfg = PromptsConfig(topics_dir=config.topics_dir, web_fraction=1.0)
    table = render_prompts(20, formats=("textbook",), seed=1, config=cfg, web=[path])
    assert all(w is not None and w.startswith("web-") for w in table.column("web_id").to_pylist())


def test_rewrite_prompts(config: PromptsConfig) -> None:
    docs = [
        ("doc/a", "Ada Lovelace was born in London. She wrote the first program. She worked with Babbage."),
        ("doc/b", "The Nile is a river. It flows north. It ends in the Mediterranean Sea."),
    ]
    cfg = PromptsConfig(topics_dir=config.topics_dir, rewrite_m=3)
    table = render_prompts(6, formats=("rewrite",), seed=2, config=cfg, documents=docs)
    rows = table.to_pylist()
    assert Counter(r["source_id"] for r in rows) == {"doc/a": 3, "doc/b": 3}
    for doc_id, text in docs:
        mine = [r for r in rows if r["source_id"] == doc_id]
        assert len({r["style"] for r in mine}) == 3  # M rewrites in different styles
        for r in mine:
            assert text in r["user"]
            assert "full name" in r["user"]
            assert r["features"] == ["fullname", "permute"]
    with pytest.raises(ValueError, match="rewrite"):
        render_prompts(4, formats=("rewrite",), seed=2, config=cfg)


def test_rewrite_order_is_a_permutation() -> None:
    import numpy as np

    text = " ".join(f"Fact number {i} is true." for i in range(10))
    order = rewrite_order(text, np.random.default_rng(0))
    assert sorted(order) == sorted(f"Fact number {i} is true." for i in range(10))
    assert order != [f"Fact number {i} is true." for i in range(10)]
    long = " ".join(f"Fact {i} holds." for i in range(100))
    grouped = rewrite_order(long, np.random.default_rng(0), max_items=30)
    assert len(grouped) <= 30
    assert sorted(re.findall(r"Fact \d+ holds\.", " ".join(grouped))) == sorted(
        re.findall(r"Fact \d+ holds\.", long)
    )


def test_template_text_is_never_expanded(topics_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "t"
    src.mkdir()
    (src / "evil.md").write_text(
        "# Evil\n## Course\n### Unit\n- Leaf with {{layout}} and {{web}} inside\n"
        "- Second leaf about something\n"
        "- Third leaf about something else\n- Fourth leaf about more things\n"
    )
    table = render_prompts(
        8, formats=("exercises", "textbook"), seed=0, config=PromptsConfig(topics_dir=str(src))
    )
    users = table.column("user").to_pylist()
    assert any("Leaf with {{layout}} and {{web}} inside" in u for u in users)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown prompt format 'poems'"):
        render_prompts(3, formats=("poems",))


def test_write_prompts_registers_once(config: PromptsConfig, tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    table = render_prompts(50, seed=1, config=config)
    path = write_prompts(corpus, table)
    assert re.fullmatch(r"prompts-[0-9a-f]{16}\.parquet", path.name)
    assert pq.read_table(path).equals(table)
    assert write_prompts(corpus, table) == path
    with Catalog.open(corpus, read_only=True) as catalog:
        shards = catalog.shards("prompts")
        runs = catalog.exec("SELECT stage, status FROM stage_runs")
    assert [(s.path, s.rows) for s in shards] == [(corpus.relative(path), 50)]
    assert runs == [("prompts", "done")]


def test_format_shares_follow_weights(config: PromptsConfig) -> None:
    docs = [(f"d{i}", f"Fact {i} is stated here. Another fact {i} follows.") for i in range(10)]
    table = render_prompts(
        1000, formats=("textbook", "stories", "rewrite"), seed=1, config=config, documents=docs
    )
    counts = Counter(table.column("format").to_pylist())
    # default weights 0.6 : 0.15 : 0.2, renormalised over the formats asked for
    assert counts == {"textbook": 632, "stories": 158, "rewrite": 210}
    per_doc = Counter(r["source_id"] for r in table.to_pylist() if r["format"] == "rewrite")
    assert set(per_doc) == {d for d, _ in docs}
    assert max(per_doc.values()) - min(per_doc.values()) <= config.rewrite_m


def test_prompt_batches_are_the_same_prompts_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    import pyarrow as pa

    from phicorpus.prompts import iter_prompt_batches, load_templates, write_prompt_file
    from phicorpus.topics import load_topics

    loaded = {"topics": load_topics(None), "templates": load_templates(None)}
    whole = render_prompts(2000, seed=5, **loaded)  # type: ignore[arg-type]
    batches = list(iter_prompt_batches(2000, seed=5, batch_rows=600, **loaded))  # type: ignore[arg-type]
    assert [b.num_rows for b in batches] == [600] * 3 + [200]
    assert pa.Table.from_batches(batches).equals(whole)

    tracemalloc.start()
    render_prompts(2000, seed=5, **loaded)  # type: ignore[arg-type]
    _, at_once = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    stream = iter_prompt_batches(2000, seed=5, batch_rows=100, **loaded)  # type: ignore[arg-type]
    path, counts, _ = write_prompt_file(tmp_path / "p.parquet", stream)
    _, streamed = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pq.read_table(path).equals(whole) and sum(counts.values()) == 2000
    assert streamed < 0.7 * at_once, (streamed, at_once)

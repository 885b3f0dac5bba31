"""Rephrase formats: templates, paragraph chunking, routing by quality, and the output parsers."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phicorpus.prompts.rephrase import (
    KNOWLEDGE_FORMATS,
    PARAPHRASE_FORMATS,
    REPHRASE_FORMATS,
    RephraseDocument,
    load_rephrase_templates,
    parse_rephrase,
    render_rephrase_prompts,
    route_formats,
    split_chunks,
)
from phicorpus.prompts.templates import TemplateFileError

GPL = Path("/usr/share/common-licenses/GPL-3").read_text()


def test_every_format_has_a_template_with_the_document_and_a_parser() -> None:
    templates = load_rephrase_templates()
    assert set(templates.user) == set(REPHRASE_FORMATS) and len(REPHRASE_FORMATS) == 14
    assert set(PARAPHRASE_FORMATS) | set(KNOWLEDGE_FORMATS) == set(REPHRASE_FORMATS)
    families = {f.family for f in REPHRASE_FORMATS.values()}
    assert families == {"wrap", "nemotron-cc", "finephrase", "rewire"}
    text = "Some {{document}} text {{x}} inserted verbatim."
    table = render_rephrase_prompts([RephraseDocument("web/1", text)])
    assert text in table.column("user")[0].as_py()  # placeholders in a document are not expanded


def test_template_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    source = load_rephrase_templates().path
    lines = Path(source).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "[formats.fp_math]")
    lines.insert(at + 1, 'extra = "{{topic}}"')
    lines[at + 1] = 'system = "uses {{topic}}"'
    bad.write_text(
        "\n".join(line for i, line in enumerate(lines) if not (i > at + 1 and line.startswith("system")))
    )
    with pytest.raises(TemplateFileError, match=rf"^{re.escape(str(bad))}:{at + 1}: unknown placeholder"):
        load_rephrase_templates(bad)


def test_long_document_splits_at_paragraphs_in_order() -> None:
    chunks = split_chunks(GPL, 2000)
    assert len(chunks) > 10
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start and GPL[a.end : b.start].strip() == ""  # only blank space between
    for c in chunks:
        assert c.end - c.start <= 2000
        # every cut falls on a paragraph boundary (a blank line) or the text's ends
        before, after = GPL[: c.start], GPL[c.end :]
        assert not before.strip() or re.search(r"\n[ \t]*\n\s*$", before)
        assert not after.strip() or re.match(r"\s*\n[ \t]*\n", after)
    table = render_rephrase_prompts(
        [RephraseDocument("web/gpl", GPL)], formats=["wrap_wiki"], context_tokens=1024
    )
    assert table.column("chunk").to_pylist() == list(range(table.num_rows))
    assert set(table.column("chunks").to_pylist()) == {table.num_rows} and table.num_rows > 5
    for row in table.to_pylist():
        assert GPL[row["chunk_start"] : row["chunk_end"]] in row["user"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="ab .\n", min_size=0, max_size=80), min_size=0, max_size=12),
    st.integers(5, 60),
)
def test_chunks_cover_every_character_within_the_limit(paragraphs: list[str], limit: int) -> None:
    text = "\n\n".join(paragraphs)
    chunks = split_chunks(text, limit)
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", text)
    assert all(0 < c.end - c.start <= limit for c in chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_routing_by_quality_and_by_weight() -> None:
    rng = np.random.default_rng(0)
    qualities = [0.5, 4.5, 2.9, 3.0, None]
    routed = route_formats(qualities, formats=list(REPHRASE_FORMATS), weights={}, threshold=3.0, rng=rng)
    assert [r for _, r in routed] == ["paraphrase", "knowledge", "paraphrase", "knowledge", "weights"]
    for (chosen, route), _q in zip(routed, qualities, strict=True):
        pool = PARAPHRASE_FORMATS if route == "paraphrase" else KNOWLEDGE_FORMATS
        assert route == "weights" or set(chosen) <= set(pool)
    # without a classifier: drawn by weight (a weight of 0 is never drawn)
    many = route_formats(
        [None] * 4000,
        formats=["wrap_easy", "fp_faq", "rewire"],
        weights={"wrap_easy": 3, "fp_faq": 1, "rewire": 0},
        threshold=None,
        rng=np.random.default_rng(1),
    )
    counts = {f: sum(c == (f,) for c, _ in many) for f in ("wrap_easy", "fp_faq", "rewire")}
    assert counts["rewire"] == 0 and 2.6 < counts["wrap_easy"] / counts["fp_faq"] < 3.4
    two = route_formats(
        [4.0], formats=list(REPHRASE_FORMATS), weights={}, threshold=3.0, per_document=4, rng=rng
    )
    assert len(set(two[0][0])) == 4 and set(two[0][0]) <= set(KNOWLEDGE_FORMATS)


GOOD = {
    "wrap_easy": "Paris is a big city. It is in France.",
    "wrap_qa": "Question: Where is Paris?\nAnswer: In France.",
    "nemo_qa": "**Question 1:** Where is Paris?\n**Answer:** In France.\nQ: Is it big?\nA: Yes.\n"
    "Question: What river?\nAnswer: The Seine,\nwhich flows north.",
    "nemo_list": "- Paris is in France.\n- It has 2 million people.\n* The Seine flows through it.",
    "fp_table": "| City | Country |\n| --- | --- |\n| Paris | France |\n\n"
    "Question: Paris is in?\nAnswer: France.",
    "fp_math": "Problem: A city has 2 parks and builds 3 more. How many?\nSolution: 2 + 3 = 5.\nAnswer: 5",
    "fp_tutorial": "You will learn X.\n1. Open the map.\n2. Find Paris.\n3. Mark it.",
    "rewire": "<reasoning>The page is thin.</reasoning>\n"
    "<document>Paris is the capital of France.</document>",
}
BAD = {
    "wrap_qa": ("Paris is in France.", "no-qa-pairs"),
    "nemo_qa": ("Question: Where?\nAnswer: France.", "no-qa-pairs"),
    "nemo_list": ("Paris is in France. It is big.", "no-list"),
    "fp_table": ("Question: a?\nAnswer: b.", "no-table"),
    "fp_math": ("Problem: how many?\nThe city is nice.", "no-math-problem"),
    "fp_tutorial": ("Step 3. Do it.", "no-steps"),
    "rewire": ("<reasoning>only thoughts</reasoning>", "no-rewrite"),
    "nemo_wiki": ("- a\n- b\n- c", "not-prose"),
}


def test_parsers_accept_their_layout_and_name_what_is_missing() -> None:
    for fmt, text in GOOD.items():
        parsed = parse_rephrase(fmt, text)
        assert parsed.problem is None, (fmt, parsed)
    assert parse_rephrase("nemo_qa", GOOD["nemo_qa"]).items == 3
    rewire = parse_rephrase("rewire", GOOD["rewire"])
    assert rewire.document == "Paris is the capital of France." and rewire.reasoning == "The page is thin."
    for fmt, (text, reason) in BAD.items():
        assert parse_rephrase(fmt, text).problem == reason, fmt

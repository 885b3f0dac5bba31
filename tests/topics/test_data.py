"""The topic seeds: the shipped data passes the checker; the loader and checker name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from phicorpus.topics import (
    TopicFileError,
    check_topics,
    default_topics_dir,
    load_topics,
    parse_topic_file,
    topic_files,
)

UNIT = "### Unit one\n" + "".join(f"- Leaf number {i} about a distinct idea {i}\n" for i in range(5))


def test_shipped_topics_pass_the_checker() -> None:
    if not topic_files(default_topics_dir()):
        pytest.skip("no topic seed files in phicorpus/topics/data yet (the data lands at merge)")
    topics = load_topics()
    assert check_topics(topics) == []
    assert len(topics) >= 20_000 and len({t.slug for t in topics}) >= 40


def test_only_slug_named_files_are_subjects(tmp_path: Path) -> None:
    for name in ("README.md", "FORMAT.md", "Notes.md"):
        (tmp_path / name).write_text("anything at all\n")
    (tmp_path / "physics.md").write_text("# Physics\n## Mechanics\n" + UNIT)
    assert [p.name for p in topic_files(tmp_path)] == ["physics.md"]
    assert len(load_topics(tmp_path)) == 5


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("# Physics\n- A leaf with no unit above it\n", 2, "leaf topic outside a '### unit'"),
        ("# Physics\n### Unit before course\n", 2, "unit heading before any '## course'"),
        ("## Course first\n", 1, "course heading before the '# subject'"),
        ("# Physics\n# Chemistry\n", 2, "a second '# subject' heading"),
        ("# Physics\n## C\n### U\n- Two words\n", 4, "leaf has 2 words"),
        ("# Physics\n## C\n### U\n- A leaf that ends with a period.\n", 4, "leaf ends with a period"),
        ("# Physics\n## C\n### U\n  - Indented leaf is not allowed here\n", 4, "unexpected indentation"),
        ("# Physics\n## C\nA stray line of prose\n", 3, "expected '# subject'"),
        ("", 1, "empty file"),
    ],
)
def test_malformed_topic_files_name_file_and_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "physics.md"
    path.write_text(content)
    with pytest.raises(TopicFileError, match=rf"physics\.md:{line}: {message}"):
        parse_topic_file(path)


def test_duplicate_leaf_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n## C\n" + UNIT)
    (tmp_path / "b.md").write_text("# B\n## C\n### U\n- leaf number 3 about a distinct idea 3\n")
    with pytest.raises(TopicFileError, match=r"b\.md:4: duplicate leaf .* \(first at .*a\.md:7\)"):
        load_topics(tmp_path)


def test_checker_flags_near_duplicates_balance_and_size(tmp_path: Path) -> None:
    unit = "### Unit\n" + "".join(
        f"- {w} fractions with unlike denominators step by step\n"
        for w in ("Adding", "Subtracting", "Comparing", "Ordering")
    )
    extra = "- Adding two fractions with unlike denominators step by step\n"
    (tmp_path / "math.md").write_text("# Math\n## C\n" + unit + extra)
    topics = load_topics(tmp_path)
    problems = check_topics(topics, min_leaves=5, min_subjects=1, max_subject_share=1.0)
    near = [p for p in problems if "near-duplicate" in p]
    assert len(near) == 1 and "math.md:8: near-duplicate of" in near[0] and "math.md:4 " in near[0], problems
    problems = check_topics(topics, min_leaves=100, min_subjects=2)
    assert any("5 leaf topics, expected at least 100" in p for p in problems)
    assert any("1 subjects, expected at least 2" in p for p in problems)
    assert any("course 'C' has 1 units" in p for p in problems)

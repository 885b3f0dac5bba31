"""Template files: the packaged one loads; malformed ones fail with file:line; substitution is safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from phicorpus.prompts import TemplateFileError, load_templates
from phicorpus.prompts.templates import FORMATS, PLACEHOLDERS, Template, default_templates_path


def test_packaged_templates_load() -> None:
    templates = load_templates()
    assert set(templates.formats) == set(FORMATS)
    assert len(templates.audiences) == 5 and "young_children" in templates.audiences
    assert {"textbook", "academic", "lecture", "blog", "howto"} <= set(templates.styles)
    assert set(templates.features["textbook"]) == {
        "worked_example", "analogy", "misconception", "historical_note", "application", "summary",
        "check_questions",
    }  # fmt: skip
    assert set(templates.features["stories"]) == {
        "dialogue", "twist", "bad_ending", "moral", "foreshadowing", "conflict",
    }  # fmt: skip
    assert all("layout" in t.names for t in templates.formats["exercises"].user_programming)


def test_render_is_one_pass() -> None:
    template = Template.compile("A {{x}} and {{ y }}.")
    assert template.names == {"x", "y"}
    assert template.render({"x": "{{y}}", "y": "$y {0}"}) == "A {{y}} and $y {0}."


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = default_templates_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "my.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().split("\n"), 1) if needle in line)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'blog = "an engaging', "blog = an engaging")
    with pytest.raises(TemplateFileError, match=rf"my\.toml:{_line_of(path, 'blog = an')}: "):
        load_templates(path)


def test_unknown_placeholder_names_line(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'Write a section of a textbook on the topic "{{leaf}}"', "Write {{leef}}")
    line = _line_of(path, "[formats.textbook]")
    with pytest.raises(TemplateFileError, match=r"my\.toml:(\d+): unknown placeholder \{\{leef\}\}") as info:
        load_templates(path)
    assert int(str(info.value).split(":")[1]) > line  # at the user key, inside the table


def test_unknown_audience_names_line(tmp_path: Path) -> None:
    path = _variant(
        tmp_path,
        'audiences = ["middle_school", "high_school", "college", "professionals"]\n'
        'styles = ["textbook", "academic", "lecture", "howto"]',
        'audiences = ["toddlers"]\nstyles = ["textbook", "academic", "lecture", "howto"]',
    )
    line = _line_of(path, 'audiences = ["toddlers"]')
    with pytest.raises(TemplateFileError, match=rf"my\.toml:{line}: .*unknown audience 'toddlers'"):
        load_templates(path)


def test_missing_table_and_bad_type(tmp_path: Path) -> None:
    path = _variant(tmp_path, "expected_tokens = 400", 'expected_tokens = "many"')
    line = _line_of(path, 'expected_tokens = "many"')
    with pytest.raises(TemplateFileError, match=rf"my\.toml:{line}: formats\.stories\.expected_tokens"):
        load_templates(path)
    path = _variant(tmp_path, "[web]", "[webb]")
    with pytest.raises(TemplateFileError, match=r"my\.toml:\d+: missing table \[web\]"):
        load_templates(path)


def test_programming_variant_must_use_layout(tmp_path: Path) -> None:
    text = default_templates_path().read_text(encoding="utf-8")
    path = tmp_path / "my.toml"
    path.write_text(text.replace("{{layout}}", "(layout)"), encoding="utf-8")
    with pytest.raises(
        TemplateFileError, match=r"my\.toml:\d+: formats\.exercises\.user_programming must use"
    ):
        load_templates(path)


def test_placeholders_documented_in_file() -> None:
    text = default_templates_path().read_text(encoding="utf-8")
    for fmt, names in PLACEHOLDERS.items():
        assert f"#   {fmt}:" in text
        assert all(name in text for name in names)

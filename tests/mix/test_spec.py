"""Mix spec parsing: groups, single sources, and one-line errors that list what is available."""

from __future__ import annotations

import pytest

from phicorpus.mix import MixError, MixSpec, default_groups

AVAILABLE = ["bios", "code", "exercises", "stories", "synthetic", "textbook"]


def test_parse_groups_and_sources() -> None:
    spec = MixSpec.parse("synthetic:0.8, code:0.2", AVAILABLE)
    assert spec.entries == (("synthetic", 0.8), ("code", 0.2))
    assert str(spec) == "synthetic:0.8,code:0.2"
    spec = MixSpec.parse("textbook:0.5,exercises:0.2,stories:0.1,code:0.2", AVAILABLE)
    assert [n for n, _ in spec.entries] == ["textbook", "exercises", "stories", "code"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poems:1", "unknown source 'poems'"),
        ("synthetic:-0.2,code:1.2", "weight of 'synthetic' must be >= 0"),
        ("synthetic,code:0.2", "'synthetic' has no weight"),
        ("synthetic:,code:1", "'synthetic' has no weight"),
        ("synthetic:abc,code:0.2", "weight of 'synthetic' is not a number"),
        ("synthetic:0.7,code:0.2", "weights sum to 0.9, not 1"),
        ("synthetic:0.5,synthetic:0.5", "named twice"),
        ("", "empty"),
        ("synthetic:0.8,,code:0.2", "empty entry"),
        ("synthetic:nan,code:1", "must be >= 0"),
    ],
)
def test_bad_specs_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(MixError) as info:
        MixSpec.parse(text, AVAILABLE)
    error = str(info.value)
    assert message in error
    assert "\n" not in error
    if "sum" not in message and "must be" not in message:
        assert "available: bios, code, exercises, stories, synthetic, textbook" in error


def test_shares_split_groups_by_tokens_and_skip_empty_members() -> None:
    groups = default_groups(llm=True)
    spec = MixSpec.parse("synthetic:0.8,code:0.2", AVAILABLE)
    shares = spec.shares(groups, {"textbook": 300, "stories": 100, "code": 50, "exercises": 0})
    assert shares == pytest.approx({"textbook": 0.6, "stories": 0.2, "code": 0.2})
    offline = default_groups(llm=False)
    assert offline["synthetic"] == ("bios",)
    assert spec.shares(offline, {"bios": 1, "code": 1}) == pytest.approx({"bios": 0.8, "code": 0.2})


def test_empty_source_lists_what_has_documents() -> None:
    spec = MixSpec.parse("synthetic:0.8,code:0.2", AVAILABLE)
    with pytest.raises(MixError, match=r"^group 'synthetic' \(bios\) has no documents .*code \(50 tokens\)"):
        spec.shares(default_groups(llm=False), {"code": 50})
    with pytest.raises(MixError, match=r"^source 'code' has no documents"):
        MixSpec.parse("bios:0.5,code:0.5", AVAILABLE).shares({}, {"bios": 10})

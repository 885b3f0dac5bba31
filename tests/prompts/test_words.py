"""The story word list: about 1,500 unique words a small child knows, all three tags well represented."""

from __future__ import annotations

from pathlib import Path

import pytest

from phicorpus.prompts import WordListError, load_words


def test_packaged_word_list() -> None:
    words = load_words()
    total = sum(len(v) for v in words.values())
    assert 1400 <= total <= 1700
    all_words = [w.lower() for v in words.values() for w in v]
    assert len(set(all_words)) == total
    assert len(words["noun"]) >= 600 and len(words["verb"]) >= 300 and len(words["adjective"]) >= 250
    for easy in ("dog", "ball", "mom"):
        assert easy in words["noun"]
    assert "jump" in words["verb"] and "happy" in words["adjective"]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("dog\tnoun\ncat noun\n", 2, "expected 'word<TAB>pos'"),
        ("dog\tnoun\nrun\tverb\nred\tcolour\n", 3, "unknown tag 'colour'"),
        ("dog\tnoun\nrun\tverb\n# c\nDog\tnoun\n", 4, "duplicate word 'Dog' \\(first at line 1\\)"),
        ("dog\tnoun\nrun2\tverb\n", 2, "word .run2. has characters other than letters"),
    ],
)
def test_malformed_word_lists(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "w.tsv"
    path.write_text(content)
    with pytest.raises(WordListError, match=rf"w\.tsv:{line}: {message}"):
        load_words(path)


def test_missing_tag(tmp_path: Path) -> None:
    path = tmp_path / "w.tsv"
    path.write_text("dog\tnoun\nrun\tverb\n")
    with pytest.raises(WordListError, match="no words tagged 'adjective'"):
        load_words(path)

"""Quality signals against the slow pure-Python reference (tests/filter/reference.py)."""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import math
import random
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phicorpus.filter import REASONS, SIGNAL_NAMES, QualityThresholds, drop_reasons, quality_signals

_spec = importlib.util.spec_from_file_location("filter_reference", Path(__file__).with_name("reference.py"))
assert _spec is not None and _spec.loader is not None
reference: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def assert_matches_reference(texts: list[str], num_threads: int | None = None) -> None:
    sig = quality_signals(texts, num_threads=num_threads)
    assert len(sig) == len(texts)
    assert tuple(sig.columns) == SIGNAL_NAMES
    for i, text in enumerate(texts):
        want = reference.signals(text)
        assert set(want) == set(SIGNAL_NAMES)
        for name in SIGNAL_NAMES:
            got = sig.columns[name][i].item()
            exp = want[name]
            if isinstance(exp, float):
                assert math.isclose(got, exp, rel_tol=1e-12, abs_tol=1e-12), (name, text[:200], got, exp)
            else:
                assert got == exp, (name, text[:200], got, exp)
        assert sig.reason[i] == reference.reason(want), (text[:200], sig.reason[i])


# A document that passes every default rule.
BASE_LINES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A small team of engineers built the first version of this system in spring.",
    "Students should read each chapter carefully and answer the questions with care.",
    "Weather forecasts predicted heavy rain across the northern valleys tomorrow.",
    "Many historians have argued that trade routes shaped early city growth.",
    "Gardeners plant tomatoes after the last frost to avoid damaging young roots.",
    "Modern libraries lend digital books, audio recordings, and research databases.",
    "Careful measurement helps chemists compare results between different laboratories.",
]
BASE = "\n".join(BASE_LINES) + "\n"


def rand_words(seed: int, count: int, lengths: tuple[int, int]) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(*lengths))) for _ in range(count)]


def with_sentences(words: list[str], per_line: int = 8) -> str:
    lines = [" ".join(words[i : i + per_line]) + "." for i in range(0, len(words), per_line)]
    return "\n".join(lines) + "\n"


NO_STOP_WORDS = (
    "Bright lanterns lit narrow streets during winter evenings.\n"
    "Merchants sold fresh bread, cheese, apples, honey, and spices.\n"
    "Children played games beside an old stone fountain.\n"
    "Musicians performed cheerful songs for passing travelers.\n"
    "Visitors admired colorful murals painted across brick walls.\n"
    "Evening bells announced closing hours at every market stall.\n"
    "Cats slept quietly near warm bakery windows until dawn.\n"
).replace(" and ", " plus ")

CASES: dict[str, str] = {
    "": BASE,
    "dup_para_frac": "\n\n".join(["Short paragraph here."] * 3 + [BASE]),
    "dup_para_char_frac": "\n\n".join(
        [BASE_LINES[2], BASE_LINES[2]] + [f"Para {w} ends." for w in rand_words(1, 8, (3, 5))]
    ),
    "dup_line_frac": "\n".join(["Same line."] * 5 + BASE_LINES[:5]),
    "dup_line_char_frac": "\n".join(
        [BASE_LINES[1], BASE_LINES[1]] + [f"{w}." for w in rand_words(2, 9, (3, 4))]
    ),
    "top_2_gram": BASE_LINES[0] + " " + "hello world " * 10,
    "duplicated_5_n_grams": BASE + " ".join(BASE_LINES[3:5]) + "\n",
    "gopher_short_doc": "\n".join(BASE_LINES[:3]),
    "gopher_long_doc": with_sentences(rand_words(3, 100_200, (3, 8)), per_line=12),
    "gopher_below_avg_threshold": with_sentences(["the", "of", *rand_words(4, 70, (1, 2))]),
    "gopher_above_avg_threshold": with_sentences(["the", "of", *rand_words(5, 70, (11, 14))]),
    "gopher_too_many_hashes": BASE + " ".join(f"#{w}" for w in rand_words(6, 12, (4, 6))) + ".\n",
    "gopher_too_many_ellipsis": BASE.replace(" ", " ... ", 14),
    "gopher_too_many_bullets": "\n".join(f"- {ln}" for ln in BASE_LINES),
    "gopher_too_many_end_ellipsis": "\n".join(
        ln[:-1] + "..." if i % 2 else ln for i, ln in enumerate(BASE_LINES)
    ),
    "gopher_below_alpha_threshold": BASE + " ".join(str(100 + 7 * i) for i in range(30)) + ".\n",
    "gopher_enough_stop_words": NO_STOP_WORDS,
    "c4_lorem_ipsum": BASE + "Lorem ipsum dolor sit amet, consectetur.\n",
    "c4_curly_bracket": BASE + "Use the dict {a: 1} in the loop today.\n",
    "c4_too_few_sentences": "\n".join(ln[:-1] for ln in BASE_LINES),
    "fineweb_line_punct_ratio": "\n".join(f'"{ln}"' for ln in BASE_LINES),
    "fineweb_short_line_ratio": BASE
    + "".join(f"{a} {b} {c}.\n" for a, b, c in zip(*[iter(rand_words(7, 60, (3, 6)))] * 3, strict=False)),
    "fineweb_char_dup_ratio": BASE + BASE_LINES[3] + "\n",
    "fineweb_list_ratio": "\n\n\n\n".join(BASE_LINES),
}


@pytest.mark.parametrize("expected", list(CASES))
def test_each_rule_has_a_document(expected: str) -> None:
    text = CASES[expected]
    assert quality_signals([text]).reason[0] == expected
    assert_matches_reference([text])


def test_every_reason_is_covered() -> None:
    covered = set(CASES) | {"fineweb_empty"}
    covered |= {f"top_{n}_gram" for n in (3, 4)} | {f"duplicated_{n}_n_grams" for n in range(6, 11)}
    assert covered == set(REASONS) | {""}


ONLY_FINEWEB = QualityThresholds(
    dup_para_frac=None,
    dup_para_char_frac=None,
    dup_line_frac=None,
    dup_line_char_frac=None,
    top_n_grams=(),
    dup_n_grams=(),
    min_doc_words=None,
    max_doc_words=None,
    min_avg_word_length=None,
    max_avg_word_length=None,
    max_symbol_word_ratio=None,
    max_bullet_lines_ratio=None,
    max_ellipsis_lines_ratio=None,
    min_alpha_words_ratio=None,
    min_stop_words=None,
    c4_lorem_ipsum=False,
    c4_curly_bracket=False,
    c4_min_sentences=None,
)


NOTHING = dataclasses.replace(
    ONLY_FINEWEB,
    fineweb_empty=False,
    fineweb_line_punct_ratio=None,
    fineweb_short_line_ratio=None,
    fineweb_char_dup_ratio=None,
    fineweb_new_line_ratio=None,
)


def test_c4_line_rules() -> None:
    text = "\n".join(
        [
            "Please enable JavaScript to view this page now.",  # javascript: dropped
            "We use Coo\u212aies to improve the site.",  # policy, once lowercased (Kelvin sign)
            "Read the terms of use before you start.",  # policy
            "This sentence ends with a citation.[1]",  # kept once the citation is removed
            "This one has a trailing citation. [2]",  # ends with a space after removal: dropped
            "Too short.",  # fewer than 3 words
            "w" * 1001 + " is a very long word.",  # a word over 1000 characters
            "Dr. Smith went home. He slept well!",  # kept, 3 sentences by the simple splitter
        ]
    )
    cols = quality_signals([text]).columns
    assert cols["c4_lines_kept_frac"][0] == 2 / 8
    assert cols["c4_sentences"][0] == 4
    assert cols["c4_too_long_word_lines"][0] == 1
    assert not cols["c4_curly_bracket"][0] and not cols["c4_lorem_ipsum"][0]
    assert_matches_reference([text])


def test_fineweb_empty() -> None:
    sig = quality_signals(["", " \n\r\n\t", "x."], ONLY_FINEWEB)
    assert sig.reason.tolist() == ["fineweb_empty", "fineweb_empty", "fineweb_short_line_ratio"]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_ngram_rules(n: int) -> None:
    # One rule only: the doc with a repeated phrase trips every top n-gram rule.
    t = dataclasses.replace(NOTHING, top_n_grams=((n, 0.02),))
    text = BASE + " ".join(BASE_LINES[3:5]) + "\n"
    cols = quality_signals([text]).columns
    assert cols[f"top_{n}_gram_char_frac"][0] > 0.02
    assert drop_reasons(cols, t)[0] == f"top_{n}_gram"
    assert drop_reasons(cols, dataclasses.replace(t, top_n_grams=((n, 0.5),)))[0] == ""


@pytest.mark.parametrize("n", range(5, 11))
def test_dup_ngram_rules(n: int) -> None:
    t = dataclasses.replace(NOTHING, dup_n_grams=((n, 0.1),))
    text = CASES["duplicated_5_n_grams"]
    cols = quality_signals([text]).columns
    assert cols[f"dup_{n}_gram_char_frac"][0] > 0.1
    assert drop_reasons(cols, t)[0] == f"duplicated_{n}_n_grams"
    loose = dataclasses.replace(t, dup_n_grams=((n, 0.9),))
    assert drop_reasons(cols, loose)[0] == ""


def test_thresholds_change_and_disable_rules() -> None:
    texts = [BASE, CASES["c4_curly_bracket"], CASES["gopher_short_doc"]]
    sig = quality_signals(texts)
    assert sig.reason.tolist() == ["", "c4_curly_bracket", "gopher_short_doc"]
    assert sig.kept.tolist() == [True, False, False]
    t = QualityThresholds(c4_curly_bracket=False, min_doc_words=20, c4_min_sentences=100)
    assert drop_reasons(sig.columns, t).tolist() == ["c4_too_few_sentences"] * 3
    t = QualityThresholds(c4_curly_bracket=False, min_doc_words=None, c4_min_sentences=None)
    assert drop_reasons(sig.columns, t).tolist() == ["", "", ""]
    assert quality_signals(texts, t).kept.all()
    assert quality_signals([*CASES.values(), ""], NOTHING).kept.all()


def test_thresholds_from_config() -> None:
    t = QualityThresholds.from_mapping(
        {"dup_line_frac": 0.5, "min_doc_words": False, "c4_curly_bracket": False, "dup_n_grams": [[5, 0.2]]}
    )
    want = QualityThresholds(
        dup_line_frac=0.5, min_doc_words=None, c4_curly_bracket=False, dup_n_grams=((5, 0.2),)
    )
    assert t == want
    assert QualityThresholds.from_mapping({}) == QualityThresholds()
    with pytest.raises(ValueError, match="unknown quality threshold 'min_words'"):
        QualityThresholds.from_mapping({"min_words": 3})


def test_invalid_ngram_sizes() -> None:
    with pytest.raises(ValueError, match="top_n_grams"):
        QualityThresholds(top_n_grams=((5, 0.1),))
    with pytest.raises(ValueError, match="dup_n_grams"):
        QualityThresholds(dup_n_grams=((4, 0.1),))


def test_result_object() -> None:
    sig = quality_signals((t for t in [BASE, ""]), num_threads=1)
    assert len(sig) == 2 and sig.reason.dtype.kind == "U"
    assert sig.columns["n_words"].dtype == np.int64
    assert sig.columns["c4_curly_bracket"].dtype == np.bool_
    assert sig.columns["dup_line_frac"].dtype == np.float64
    with pytest.raises(ValueError):
        sig.columns["n_words"][0] = 1
    with pytest.raises(TypeError):
        quality_signals(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="texts\\[1\\]"):
        quality_signals(["ok", "\ud800"])
    assert sig.reason_counts() == {"gopher_short_doc": 1}
    empty = quality_signals([])
    assert len(empty) == 0 and empty.columns["n_words"].shape == (0,) and empty.reason_counts() == {}
    if importlib.util.find_spec("pyarrow"):
        table = sig.to_arrow()
        assert table.num_rows == 2 and table.column_names[-1] == "reason"


def test_order_kept_across_chunks() -> None:
    # More documents than one detached chunk (4096): results stay in input order.
    unique = [t for k, t in CASES.items() if k != "gopher_long_doc"] + ["", "x"]
    texts = [unique[i % len(unique)] for i in range(4096 + 333)]
    each = quality_signals(unique, num_threads=1)
    many = quality_signals(texts, num_threads=2)
    idx = np.arange(len(texts)) % len(unique)
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(many.columns[name], each.columns[name][idx])
    np.testing.assert_array_equal(many.reason, each.reason[idx])


def test_threads_agree() -> None:
    texts = list(CASES.values()) * 3
    one = quality_signals(texts, num_threads=1)
    two = quality_signals(texts, num_threads=2)
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(one.columns[name], two.columns[name])
    np.testing.assert_array_equal(one.reason, two.reason)


def _real_texts() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [stdlib / p for p in ("textwrap.py", "json/__init__.py", "this.py", "csv.py", "abc.py")]
    doc = Path("/usr/share/doc")
    if doc.is_dir():
        paths += sorted(doc.glob("*/copyright"))[:25]
        paths += sorted(doc.glob("*/README*"))[:5]
    out = []
    for p in paths:
        if p.is_file() and not p.name.endswith(".gz"):
            try:
                out.append(p.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                continue
    return out


def test_real_text() -> None:
    texts = _real_texts()
    assert len(texts) >= 3
    assert_matches_reference(texts)


# Hypothesis: documents from a small vocabulary with repeats, bullets, ellipses, hashes, citations,
# unicode and odd whitespace. Characters are limited to ones assigned long ago, so Python's and the
# Rust crate's Unicode versions agree.
VOCAB = [
    "the",
    "of",
    "and",
    "to",
    "that",
    "with",
    "The",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ab",
    "c",
    "bc",
    "a",
    "x",
    "#",
    "#tag",
    "...",
    "…",
    "end...",
    "•",
    "-",
    "—",
    "lorem",
    "ipsum",
    "Lorem",
    "JavaScript",
    "{",
    "}",
    "x{y",
    "[1]",
    "[edit]",
    "[citation needed]",
    "end.[2]",
    "privacy",
    "policy",
    "use",
    "cookies",
    "Hello",
    "world.",
    "end!",
    "why?",
    '"quoted."',
    "it's'",
    "Dr.",
    "é",
    "中文",
    "٣",
    "Ⅻ",
    "½",
    "€",
    "。",
    "x\x1cy",
    "\x1f",
    "\u212a",
    "Coo\u212aies",
    "İ",
    "ΣΑΣ",
    "w" * 1001,
    "0",
    "42",
    "word" * 3,
]
SEPARATORS = [
    " ",
    " ",
    " ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\r\n",
    "\t",
    "\u3000",
    "\xa0",
    "\u2028",
    "\x85",
    "\r",
    "",
]

fragments = st.lists(st.tuples(st.sampled_from(VOCAB), st.sampled_from(SEPARATORS)), max_size=25).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    pool = draw(st.lists(fragments, min_size=1, max_size=6))
    picks = draw(st.lists(st.sampled_from(pool), max_size=14))
    seps = draw(
        st.lists(st.sampled_from(["\n", "\n\n", "\r\n", " ", ""]), min_size=len(picks), max_size=len(picks))
    )
    text = "".join(p + s for p, s in zip(picks, seps, strict=True))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["", " ", "\n"])) + text
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents(), min_size=1, max_size=4))
def test_matches_reference(texts: list[str]) -> None:
    assert_matches_reference(texts, num_threads=1)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ab .!?-#…\n\r\t\"'[]{}1", max_size=200))
def test_matches_reference_on_raw_text(text: str) -> None:
    assert_matches_reference([text, text + BASE])


def test_reference_agrees_with_datatrove_helpers() -> None:
    """Where the definitions coincide, the reference gives datatrove's numbers."""
    rep = pytest.importorskip("datatrove.pipeline.filters.gopher_repetition_filter")
    texts = [*CASES.values(), *_real_texts()[:5]]
    for text in texts:
        words = reference.split_words(text)
        for n in range(5, 11):
            assert reference.dup_ngram_chars(words, n) == rep.find_all_duplicate(words, n)
        for n in (2, 3, 4):
            grams = rep.get_n_grams(words, n)
            assert reference.top_ngram_chars(words, n) == (rep.find_top_duplicate(grams) if grams else 0)
    text_mod = pytest.importorskip("datatrove.utils.text")
    assert frozenset(text_mod.TERMINAL_PUNCTUATION) == reference.SENTENCE_TERMINAL


def test_docstring_examples() -> None:
    import phicorpus.filter
    import phicorpus.filter.signals

    for module in (phicorpus.filter, phicorpus.filter.signals):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__

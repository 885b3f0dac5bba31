"""The Rust batch calls take an Arrow string array's buffers as well as a list of str: the same
signals, scores and n-gram hits either way, and bad buffers fail naming the text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phicorpus import _core
from phicorpus.corpus import utf8_buffers
from phicorpus.filter.code import code_signals
from phicorpus.filter.signals import SIGNAL_NAMES, quality_signals

TEXTS = [
    "",
    "Hello world. This is a sentence, and another one follows it.\n\nA second paragraph!",
    "def f(x):\n    return x + 1  # ünïcödé, 数学, emoji 🎉\n",
    "naïve café — “quotes” … \r\n bullet\n• item\n" * 20,
]


def _buffers(texts: list[str], *, large: bool = False, sliced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    array = pa.array(["padding", *texts], pa.large_string() if large else pa.string())
    return utf8_buffers(array.slice(1) if sliced else pa.array(texts, array.type))


@pytest.mark.parametrize(("large", "sliced"), [(False, False), (True, False), (False, True)])
def test_quality_and_code_signals_are_the_same_from_buffers(large: bool, sliced: bool) -> None:
    buffers = _buffers(TEXTS, large=large, sliced=sliced)
    a, b = quality_signals(TEXTS, num_threads=1), quality_signals(buffers, num_threads=1)
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])
    np.testing.assert_array_equal(a.reason, b.reason)
    ca, cb = code_signals(TEXTS, 1), code_signals(buffers, 1)
    assert ca.keys() == cb.keys() and "n_chars" in ca
    for name in ca:
        np.testing.assert_array_equal(ca[name], cb[name])
    # n_chars counts code points, as len(str) does.
    assert cb["n_chars"].tolist() == [len(t) for t in TEXTS]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=6))
def test_any_text_gives_the_same_signals_from_buffers(texts: list[str]) -> None:
    a, b = quality_signals(texts, num_threads=1), quality_signals(_buffers(texts), num_threads=1)
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])
    assert code_signals(_buffers(texts), 1)["n_chars"].tolist() == [len(t) for t in texts]


def test_edu_scores_and_ngram_hits_are_the_same_from_buffers() -> None:
    weights = np.random.default_rng(0).normal(size=1 << 12).astype(np.float32)
    buffers = _buffers(TEXTS)
    np.testing.assert_array_equal(
        _core.edu_score(TEXTS, weights, 0.5, 2, 1), _core.edu_score(buffers, weights, 0.5, 2, 1)
    )
    index = _core.NgramIndex([TEXTS[1], TEXTS[3]], [0, 1], 3)
    for x, y in zip(index.query(TEXTS), index.query(buffers), strict=True):
        np.testing.assert_array_equal(x, y)


def test_bad_buffers_fail_naming_the_text() -> None:
    offsets, data = _buffers(["ok", "fine"])
    with pytest.raises(ValueError, match=r"text 1: offsets 2\.\.9 are not within the 6 bytes"):
        quality_signals((np.array([0, 2, 9], dtype=np.int64), data))
    with pytest.raises(ValueError, match="text 0 is not valid UTF-8"):
        quality_signals((np.array([0, 2], dtype=np.int64), np.frombuffer(b"\xff\xfe", dtype=np.uint8)))
    with pytest.raises(TypeError, match="offsets must be a 1-d int64 array"):
        quality_signals((offsets.astype(np.int32), data))
    with pytest.raises(TypeError, match="data must be a 1-d uint8 array"):
        code_signals((offsets, data.astype(np.int16)))
    # A tuple of two str is still a sequence of texts.
    assert quality_signals(("Hello world.", "")).columns["n_words"].tolist() == [2, 0]

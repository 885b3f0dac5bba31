"""Every Unicode scalar value (U+0000..U+10FFFF less the surrogates), alone and in context, gets
the ids of Hugging Face ``tokenizers`` from phicorpus, for the GPT-2 split, the Llama-3 split and
CodeGen's tokenizer (GPT-2 plus whitespace-run added tokens).

Items are packed 64 to a text with the tokenizer's end-of-text special token between them:
``tokenizers`` splits special tokens off before it pre-tokenizes, so each item is pre-tokenized
and merged exactly as if it were a text of its own (the regex cannot look across the separator),
while the oracle's per-text overhead, which dominates for one-character texts, is paid once per
64 items. Texts go through both encoders in batches of 2,048.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer as HfTokenizer

from phicorpus.tokenize import Tokenizer

#: Items per packed text and packed texts per batch.
PER_TEXT = 64
BATCH = 2048
SEPARATORS = {"gpt2": "<|endoftext|>", "codegen": "<|endoftext|>", "llama3": "<|end_of_text|>"}

SCALARS = [chr(c) for c in itertools.chain(range(0xD800), range(0xE000, 0x110000))]


def in_context(c: str) -> str:
    """``c`` after a letter, after an apostrophe (contractions, case folding), before a space,
    after digits and before a newline."""
    return f"a{c} b'{c}12{c}\n"


@pytest.fixture(scope="module", params=sorted(SEPARATORS))
def pair(request: pytest.FixtureRequest) -> tuple[str, Tokenizer, HfTokenizer]:
    path: Path = request.getfixturevalue(f"{request.param}_path")
    ours = Tokenizer.from_file(path)
    assert ours.backend == "phicorpus", ours.unsupported_reason
    return request.param, ours, HfTokenizer.from_file(str(path))


def alone(c: str) -> str:
    """``c`` as the whole text."""
    return c


def first_difference(
    ours: Tokenizer, hf: HfTokenizer, chars: list[str], build: Callable[[str], str], packed: str
) -> str:
    """The first code point of a differing packed text whose item differs on its own, with both
    id lists."""
    for c in chars:
        item = build(c)
        got, want = ours.encode(item).tolist(), hf.encode(item).ids
        if got != want:
            return f"U+{ord(c):04X} in {item!r}: phicorpus {got} != tokenizers {want}"
    got, want = ours.encode(packed).tolist(), hf.encode(packed).ids
    return f"no item differs alone; packed text {packed!r}: phicorpus {got} != tokenizers {want}"


def assert_parity(name: str, ours: Tokenizer, hf: HfTokenizer, build: Callable[[str], str]) -> None:
    sep = SEPARATORS[name]
    assert ours.token_to_id(sep) is not None
    groups = [SCALARS[i : i + PER_TEXT] for i in range(0, len(SCALARS), PER_TEXT)]
    texts = [sep.join(map(build, g)) for g in groups]
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        ids, offsets = ours.encode_batch(batch)
        want = [e.ids for e in hf.encode_batch_fast(batch)]
        lengths = np.fromiter(map(len, want), dtype=np.int64, count=len(want))
        flat = np.fromiter(itertools.chain.from_iterable(want), dtype=np.uint32, count=int(lengths.sum()))
        if np.array_equal(np.diff(offsets), lengths) and np.array_equal(ids, flat):
            continue
        for i, text in enumerate(batch):
            if ids[offsets[i] : offsets[i + 1]].tolist() != want[i]:
                pytest.fail(f"{name}: {first_difference(ours, hf, groups[start + i], build, text)}")
        pytest.fail(f"{name}: batch at text {start} differs but no text in it does")


def test_every_code_point_alone(pair: tuple[str, Tokenizer, HfTokenizer]) -> None:
    assert_parity(*pair, alone)


def test_every_code_point_in_context(pair: tuple[str, Tokenizer, HfTokenizer]) -> None:
    assert_parity(*pair, in_context)

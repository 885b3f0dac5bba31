"""Lossy tokenizers (WordPiece, Unigram) are told apart from byte-level BPE, with their [UNK] rate."""

from __future__ import annotations

from pathlib import Path

import pytest
import tokenizers
from tokenizers import models, pre_tokenizers

from phicorpus.tokenize import Tokenizer, train_tokenizer
from phicorpus.tokenize.fitness import LossyTokenizerError, check_training_tokenizer, tokenizer_fitness

SAMPLE = ["hello world hello", "hello there"]  # 5 words, 2 of them unknown to the vocabularies


def _wordpiece(path: Path) -> Path:
    tok = tokenizers.Tokenizer(
        models.WordPiece({"[UNK]": 0, "hello": 1, "</s>": 2}, unk_token="[UNK]", max_input_chars_per_word=50)
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def _unigram(path: Path) -> Path:
    tok = tokenizers.Tokenizer(models.Unigram([("<unk>", 0.0), ("hello", -1.0), ("</s>", -2.0)], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


@pytest.mark.parametrize(
    ("make", "model", "unk"), [(_wordpiece, "WordPiece", "[UNK]"), (_unigram, "Unigram", "<unk>")]
)
def test_lossy_tokenizers_are_refused_with_their_unk_rate(
    make: object, model: str, unk: str, tmp_path: Path
) -> None:
    path = make(tmp_path / "tok.json")  # type: ignore[operator]
    tok = Tokenizer.from_file(path)
    # Oracle: the tokenizers library's own encoding, counting the unknown token's id.
    hf = tokenizers.Tokenizer.from_file(str(path))
    ids = [i for text in SAMPLE for i in hf.encode(text, add_special_tokens=False).ids]
    unknown = ids.count(hf.token_to_id(unk))
    fit = tokenizer_fitness(tok, SAMPLE)
    assert (fit.model, fit.lossless, fit.unk_token) == (model, False, unk)
    assert fit.unk_tokens == unknown == 2 and fit.sample_tokens == len(ids) == 5
    assert f"{model}, not byte-level BPE; 40.0% of 5 sample tokens are {unk}" in fit.describe()
    with pytest.raises(LossyTokenizerError, match=rf"a {model} tokenizer, not byte-level BPE: .*% of the"):
        check_training_tokenizer(tok, SAMPLE, allow_lossy=False)
    assert check_training_tokenizer(tok, SAMPLE, allow_lossy=True) == fit


def test_byte_level_bpe_is_lossless(tmp_path: Path) -> None:
    path = train_tokenizer(["hello world, hello there " * 20], 300, str(tmp_path / "bpe.json"))
    fit = check_training_tokenizer(Tokenizer.from_file(path), SAMPLE, allow_lossy=False)
    assert fit.lossless and fit.unk_tokens == 0 and fit.sample_tokens > 0
    assert "byte-level BPE; 0.0% of" in fit.describe()

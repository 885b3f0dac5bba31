"""IDs, batches, decoding and fallback of phicorpus.tokenize, against Hugging Face tokenizers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HfTokenizer

from phicorpus.tokenize import Tokenizer

CASES = [
    "",
    " ",
    "   ",
    "hello",
    " hello world ",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "if a  and   b:\r\n\r\n        c = {'k': [1, 2]}\r\n",
    "trailing spaces   ",
    "tabs\t\t\tand\t mixed \t whitespace",
    "unicode spaces:\u3000x\u00a0y\u2028z\u2029w\u0085v\u2003",
    "\n\n\n",
    " \n \n ",
    "It's he's she'll we'd I'm you're they've IT'S 'S 'LL 'Re ''s '",
    "12345678901234567890 1 22 333 4444 3.14159 1,000,000 ½ Ⅻ ٣٤٥",
    "Café naïve résumé e\u0301 a\u0308\u0304 Ωmega Ελληνικά",
    "中文字符测试。日本語のテキスト。한국어 텍스트",
    "العربية نص عربي مع تشكيل: مَرْحَبًا",
    "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🎉🎉🎉 ❤️",
    "!!! ... ??? --- *** ### $$$ %%% &&& ((( ))) ,,, ;;; :::",
    "<|endoftext|>",
    "a<|endoftext|>b",
    " <|endoftext|> ",
    "first<|endoftext|><|endoftext|>second<|endoftext|>",
    "<|begin_of_text|>hello<|end_of_text|>",
    "                                        forty spaces then text",
    "\t\t\t\t\t\t\t\t\t\t\tmany tabs",
    "x" * 3000,
    "=" * 500 + " " * 300 + "\n" * 50,
]

ALL_UNICODE = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
ASCII_MIX = st.lists(
    st.sampled_from(
        [*"abcXYZ019 '\t\n\r.,;:!?-_()[]{}\"", "'s", "'LL", "'ve", "  ", "\u3000", "é", "中", "<|endoftext|>"]
    ),
    max_size=40,
).map("".join)


@pytest.fixture(scope="module")
def pair(tokenizer_path: Path) -> tuple[Tokenizer, HfTokenizer]:
    ours = Tokenizer.from_file(tokenizer_path)
    assert ours.backend == "phicorpus", ours.unsupported_reason
    return ours, HfTokenizer.from_file(str(tokenizer_path))


def assert_same_ids(pair: tuple[Tokenizer, HfTokenizer], text: str, add_special_tokens: bool = True) -> None:
    ours, hf = pair
    got = ours.encode(text, add_special_tokens=add_special_tokens)
    assert got.dtype == np.uint32
    assert got.tolist() == hf.encode(text, add_special_tokens=add_special_tokens).ids, repr(text)


@pytest.mark.parametrize("text", CASES)
def test_ids_match_tokenizers(pair: tuple[Tokenizer, HfTokenizer], text: str) -> None:
    assert_same_ids(pair, text)
    assert_same_ids(pair, text, add_special_tokens=False)


def test_ids_match_on_training_code(pair: tuple[Tokenizer, HfTokenizer], corpus: list[str]) -> None:
    for text in corpus[:6]:
        assert_same_ids(pair, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ALL_UNICODE)
def test_ids_match_on_any_unicode(pair: tuple[Tokenizer, HfTokenizer], text: str) -> None:
    assert_same_ids(pair, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ASCII_MIX)
def test_ids_match_on_ascii_mix(pair: tuple[Tokenizer, HfTokenizer], text: str) -> None:
    assert_same_ids(pair, text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(ALL_UNICODE, ASCII_MIX))
def test_decode_matches_tokenizers(pair: tuple[Tokenizer, HfTokenizer], text: str) -> None:
    ours, hf = pair
    ids = ours.encode(text)
    for skip in (True, False):
        assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids.tolist(), skip_special_tokens=skip)


def test_decode_round_trip(pair: tuple[Tokenizer, HfTokenizer]) -> None:
    ours, _ = pair
    for text in CASES:
        if "<|" not in text:
            assert ours.decode(ours.encode(text, add_special_tokens=False)).lstrip(" ") == text.lstrip(" ")


@pytest.mark.parametrize("dtype", [np.uint32, np.uint16])
def test_encode_batch_is_concatenation(pair: tuple[Tokenizer, HfTokenizer], dtype: type) -> None:
    ours, hf = pair
    texts = CASES * 3
    for threads in (1, 2, None):
        ids, offsets = ours.encode_batch(texts, num_threads=threads, dtype=dtype)
        assert ids.dtype == np.dtype(dtype) and ids.ndim == 1
        assert offsets.dtype == np.int64 and len(offsets) == len(texts) + 1 and offsets[0] == 0
        expected = [e.ids for e in hf.encode_batch(texts)]
        for i, want in enumerate(expected):
            assert ids[offsets[i] : offsets[i + 1]].tolist() == want
        assert offsets[-1] == len(ids) == sum(map(len, expected))


def test_encode_batch_empty_and_without_specials(pair: tuple[Tokenizer, HfTokenizer]) -> None:
    ours, hf = pair
    ids, offsets = ours.encode_batch([])
    assert len(ids) == 0 and offsets.tolist() == [0]
    ids, offsets = ours.encode_batch(["a b", "c"], add_special_tokens=False)
    want = [hf.encode(t, add_special_tokens=False).ids for t in ("a b", "c")]
    assert ids.tolist() == want[0] + want[1]


def test_vocabulary_accessors(pair: tuple[Tokenizer, HfTokenizer]) -> None:
    ours, hf = pair
    assert ours.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    for token, id in list(hf.get_vocab(with_added_tokens=True).items())[:200]:
        assert ours.token_to_id(token) == hf.token_to_id(token) == id
        assert ours.id_to_token(id) == hf.id_to_token(id)
    assert ours.token_to_id("no such token ☃☃") is None
    assert ours.id_to_token(10**9) is None


def test_eos_and_bos(gpt2_path: Path, llama3_path: Path) -> None:
    gpt2 = Tokenizer.from_file(gpt2_path)
    assert gpt2.eos_id == gpt2.token_to_id("<|endoftext|>") is not None
    llama = Tokenizer.from_file(llama3_path)
    assert llama.eos_id == llama.token_to_id("<|end_of_text|>") is not None
    bos = llama.token_to_id("<|begin_of_text|>")
    assert llama.encode("hi")[0] == bos
    assert bos not in llama.encode("hi", add_special_tokens=False).tolist()


def test_uint16_refused_for_large_vocabulary(gpt2_path: Path, tmp_path: Path) -> None:
    data = json.loads(gpt2_path.read_text(encoding="utf-8"))
    data["added_tokens"].append(
        {
            "id": 70000,
            "content": "<big>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    tok = Tokenizer.from_file(path)
    with pytest.raises(ValueError, match="uint16"):
        tok.encode_batch(["x"], dtype=np.uint16)
    with pytest.raises(ValueError, match="dtype"):
        tok.encode_batch(["x"], dtype=np.int8)


def _wordpiece(tmp_path: Path, corpus: list[str]) -> Path:
    hf = HfTokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer()
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece()
    hf.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=500, special_tokens=["[UNK]"]))
    path = tmp_path / "wordpiece.json"
    hf.save(str(path))
    return path


def _unigram(tmp_path: Path, corpus: list[str]) -> Path:
    hf = HfTokenizer(models.Unigram())
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Metaspace()
    hf.train_from_iterator(
        corpus, trainers.UnigramTrainer(vocab_size=300, special_tokens=["</s>"], unk_token="</s>")
    )
    path = tmp_path / "unigram.json"
    hf.save(str(path))
    return path


@pytest.mark.parametrize("build", [_wordpiece, _unigram])
def test_fallback_to_tokenizers(
    build: Callable[[Path, list[str]], Path], tmp_path: Path, corpus: list[str]
) -> None:
    path = build(tmp_path, corpus)
    tok = Tokenizer.from_file(path)
    hf = HfTokenizer.from_file(str(path))
    assert tok.backend == "tokenizers"
    assert tok.unsupported_reason is not None and str(path) in tok.unsupported_reason
    texts = ["Hello world, it's a test.", "", "中文 text 123"]
    for text in texts:
        assert tok.encode(text).tolist() == hf.encode(text).ids
    ids, offsets = tok.encode_batch(texts)
    assert ids.tolist() == [i for t in texts for i in hf.encode(t).ids]
    assert offsets.tolist() == np.cumsum([0] + [len(hf.encode(t).ids) for t in texts]).tolist()
    assert tok.decode(hf.encode(texts[0]).ids) == hf.decode(hf.encode(texts[0]).ids)
    assert tok.vocab_size == hf.get_vocab_size(with_added_tokens=True)


def test_unsupported_feature_names_file_and_feature(gpt2_path: Path, tmp_path: Path) -> None:
    from phicorpus import _core

    data = json.loads(gpt2_path.read_text(encoding="utf-8"))
    data["model"]["dropout"] = 0.1
    path = tmp_path / "dropout.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(NotImplementedError, match=r"dropout\.json.*dropout"):
        _core.BpeTokenizer.from_file(str(path))
    assert Tokenizer.from_file(path).backend == "tokenizers"


def test_generic_split_regex_matches_tokenizers(llama3_path: Path, tmp_path: Path) -> None:
    data = json.loads(llama3_path.read_text(encoding="utf-8"))
    data["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\p{N}|[^\p{L}\p{N}]+"
    path = tmp_path / "custom-split.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    ours, hf = Tokenizer.from_file(path), HfTokenizer.from_file(str(path))
    assert ours.backend == "phicorpus"
    for text in CASES:
        assert ours.encode(text).tolist() == hf.encode(text).ids


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(OSError, match="nope"):
        Tokenizer.from_file(path)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"model": {"type": "BPE", "vocab": {}}}'])
def test_malformed_file_names_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json"):
        Tokenizer.from_file(path)


def test_added_token_options_match_tokenizers(gpt2_path: Path, tmp_path: Path) -> None:
    hf = HfTokenizer.from_file(str(gpt2_path))
    hf.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True)])
    hf.add_tokens([AddedToken("cat", single_word=True), AddedToken(" dog", normalized=True)])
    path = tmp_path / "options.json"
    hf.save(str(path))
    ours = Tokenizer.from_file(path)
    assert ours.backend == "phicorpus"
    for text in [
        "a  <mask>  b",
        "<mask>x<mask>",
        "\t<mask>\n",
        "cat cats concat cat_ cat. (cat)",
        "my dog  dog\tdog",
        "x<|endoftext|> <mask> cat",
    ]:
        assert ours.encode(text).tolist() == hf.encode(text).ids, repr(text)
        ids = ours.encode(text)
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(
                ids.tolist(), skip_special_tokens=skip
            )


@pytest.mark.parametrize("level", ["0", "1"])
def test_fallback_scan_loops_give_the_same_ids(tokenizer_path: Path, corpus: list[str], level: str) -> None:
    """The scan-and-encode loop's baseline and BMI/AVX2 copies (``PHICORPUS_TOKENIZE_SIMD``
    caps the copy a process runs; it is read once, so each runs in a fresh process) give the ids
    the best copy gives in this one."""
    import subprocess
    import sys

    texts = [*CASES, *corpus[:8]]
    want = [Tokenizer.from_file(tokenizer_path).encode(t).tolist() for t in texts]
    script = (
        "import json, sys\n"
        "from phicorpus.tokenize import Tokenizer\n"
        "tok = Tokenizer.from_file(sys.argv[1])\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps([tok.encode(t).tolist() for t in texts]))\n"
    )
    env = {**os.environ, "PHICORPUS_TOKENIZE_SIMD": level}
    run = subprocess.run(
        [sys.executable, "-c", script, str(tokenizer_path)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(run.stdout) == want

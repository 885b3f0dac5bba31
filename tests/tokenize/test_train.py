"""train_tokenizer: texts vs files, atomic write, the tokenizer it writes."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as HfTokenizer

from phicorpus.tokenize import Tokenizer, train_tokenizer

TEXTS = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs"] * 20


def test_trains_byte_level_bpe_from_texts(tmp_path: Path) -> None:
    out = train_tokenizer(TEXTS, 300, tmp_path / "sub" / "tok.json")
    assert out == tmp_path / "sub" / "tok.json" and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["tok.json"]  # no temp file left
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["model"]["type"] == "BPE"
    assert data["pre_tokenizer"]["type"] == "ByteLevel" and data["pre_tokenizer"]["add_prefix_space"] is False
    assert data["decoder"]["type"] == "ByteLevel" and data["post_processor"]["type"] == "ByteLevel"
    tok = Tokenizer.from_file(out)
    assert tok.backend == "phicorpus"
    assert tok.eos_id == tok.token_to_id("<|endoftext|>") == 0
    assert len(tok.encode("the cat sat")) < len("the cat sat")  # merges were learned
    assert tok.encode("the cat").tolist() == HfTokenizer.from_file(str(out)).encode("the cat").ids
    assert tok.decode(tok.encode("ü€ \x00")) == "ü€ \x00"  # all 256 bytes are in the alphabet


def test_files_and_str_paths_are_read(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS), encoding="utf-8")
    from_path = train_tokenizer([corpus], 300, tmp_path / "a.json")
    from_str = train_tokenizer([str(corpus)], 300, tmp_path / "b.json")
    assert from_path.read_text(encoding="utf-8") == from_str.read_text(encoding="utf-8")
    # A str that is not an existing file is a text: the file name itself is trained on.
    as_text = train_tokenizer([str(corpus), "not a file"], 300, tmp_path / "c.json", min_frequency=1)
    vocab = Tokenizer.from_file(as_text)
    assert vocab.token_to_id("cat") is None  # the file content was not read

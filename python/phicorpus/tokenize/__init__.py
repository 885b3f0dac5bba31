"""Byte-level BPE tokenization with the IDs of Hugging Face ``tokenizers``, in the Rust core.

Example:
    >>> from phicorpus.tokenize import Tokenizer, train_tokenizer
    >>> path = train_tokenizer(["some text", "more text"], 300, "tok.json")  # doctest: +SKIP
    >>> Tokenizer.from_file(path).encode("some text")  # doctest: +SKIP
    array([...], dtype=uint32)
"""

from __future__ import annotations

from phicorpus.tokenize.tokenizer import Tokenizer
from phicorpus.tokenize.train import train_tokenizer

__all__ = ["Tokenizer", "train_tokenizer"]

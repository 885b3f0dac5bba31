"""The :class:`Tokenizer`: our Rust byte-level BPE, or ``tokenizers`` for files it cannot encode."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from phicorpus import _core

#: Tokens tried, in order, for :attr:`Tokenizer.eos_id`.
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>")

Backend = Literal["phicorpus", "tokenizers"]


class Tokenizer:
    """A ``tokenizer.json`` tokenizer giving the same IDs as Hugging Face ``tokenizers``.

    Byte-level BPE files (GPT-2, CodeGen, Llama-3 / cl100k style) are encoded by the Rust core;
    any other file (WordPiece, Unigram, a normalizer, dropout, ...) is handed to the ``tokenizers``
    library behind the same interface. :attr:`backend` says which one runs.

    Example:
        >>> tok = Tokenizer.from_file("tokenizer.json")  # doctest: +SKIP
        >>> ids = tok.encode("Hello world")  # doctest: +SKIP
        >>> tok.decode(ids)  # doctest: +SKIP
        'Hello world'
        >>> flat, offsets = tok.encode_batch(["a", "b c"], dtype=np.uint16)  # doctest: +SKIP
        >>> flat[offsets[1] : offsets[2]]  # ids of "b c"  # doctest: +SKIP
    """

    __slots__ = ("_core", "_hf", "backend", "path", "unsupported_reason")

    def __init__(
        self, path: str, core: _core.BpeTokenizer | None, hf: Any = None, reason: str | None = None
    ) -> None:
        self.path = path
        self._core = core
        # The `tokenizers.Tokenizer` used when the Rust core declined the file (untyped library).
        self._hf: Any = hf
        self.backend: Backend = "phicorpus" if core is not None else "tokenizers"
        #: Why the Rust core declined the file (when :attr:`backend` is ``"tokenizers"``).
        self.unsupported_reason = reason

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a ``tokenizer.json``.

        Args:
            path: The file.

        Returns:
            The tokenizer; the Rust core when it implements every feature the file uses, else the
            ``tokenizers`` library (see :attr:`backend` and :attr:`unsupported_reason`).

        Raises:
            OSError: The file cannot be read (the message names it).
            ValueError: The file is not a valid ``tokenizer.json`` (the message names it).

        Example:
            >>> Tokenizer.from_file("tokenizer.json").backend  # doctest: +SKIP
            'phicorpus'
        """
        path = os.fspath(path)
        try:
            return cls(path, _core.BpeTokenizer.from_file(path), None)
        except NotImplementedError as err:
            import tokenizers

            try:
                hf = tokenizers.Tokenizer.from_file(path)
            except Exception as hf_err:
                raise ValueError(f"{path}: tokenizers cannot load it either: {hf_err}") from hf_err
            return cls(path, None, hf, str(err))

    @property
    def core(self) -> _core.BpeTokenizer | None:
        """The Rust encoder (None when :attr:`backend` is ``"tokenizers"``), for batch calls that
        take it directly, such as ``ShardWriter.add_texts``."""
        return self._core

    # -- vocabulary -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of tokens, added tokens included (``get_vocab_size(with_added_tokens=True)``)."""
        if self._core is not None:
            return int(self._core.vocab_size)
        return int(self._hf.get_vocab_size(with_added_tokens=True))

    @property
    def max_id(self) -> int:
        """The largest id the tokenizer can produce."""
        if self._core is not None:
            return int(self._core.max_id)
        vocab = self._hf.get_vocab(with_added_tokens=True)
        return max(vocab.values(), default=0)

    @property
    def eos_id(self) -> int | None:
        """Id of the end-of-text token (``<|endoftext|>``, ``</s>``, ``<|end_of_text|>``,
        ``<|eot_id|>``, first found), or None."""
        for token in EOS_CANDIDATES:
            found = self.token_to_id(token)
            if found is not None:
                return found
        return None

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token`` (added tokens first, then the model vocabulary), or None."""
        if self._core is not None:
            found: int | None = self._core.token_to_id(token)
            return found
        hf_id: int | None = self._hf.token_to_id(token)
        return hf_id

    def id_to_token(self, id: int) -> str | None:
        """Token string of ``id``, or None."""
        if self._core is not None:
            token: str | None = self._core.id_to_token(id)
            return token
        hf_token: str | None = self._hf.id_to_token(id)
        return hf_token

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> npt.NDArray[np.uint32]:
        """Ids of ``text``.

        Args:
            text: The text.
            add_special_tokens: Add the post-processor's tokens (e.g. a BOS).

        Returns:
            A 1-D uint32 array.

        Example:
            >>> tok.encode("Hello")  # doctest: +SKIP
            array([15496], dtype=uint32)
        """
        if self._core is not None:
            ids: npt.NDArray[np.uint32] = self._core.encode(text, add_special_tokens)
            return ids
        return np.asarray(self._hf.encode(text, add_special_tokens=add_special_tokens).ids, dtype=np.uint32)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_special_tokens: bool = True,
        num_threads: int | None = None,
        dtype: npt.DTypeLike = np.uint32,
    ) -> tuple[npt.NDArray[np.unsignedinteger[Any]], npt.NDArray[np.int64]]:
        """Encode many texts in parallel into one flat array.

        Args:
            texts: The texts.
            add_special_tokens: Add the post-processor's tokens to each text.
            num_threads: Threads to use (None: all cores).
            dtype: ``np.uint32`` or ``np.uint16`` (only when every id fits).

        Returns:
            ``(ids, offsets)``: all ids back to back, and int64 offsets of length ``len(texts) + 1``;
            the ids of ``texts[i]`` are ``ids[offsets[i]:offsets[i + 1]]``.

        Raises:
            ValueError: ``dtype`` is not uint16/uint32, or uint16 cannot hold the vocabulary.

        Example:
            >>> ids, offsets = tok.encode_batch(["a b", "c"], num_threads=1)  # doctest: +SKIP
            >>> offsets  # doctest: +SKIP
            array([0, 2, 3])
        """
        kind = np.dtype(dtype)
        if kind not in (np.dtype(np.uint16), np.dtype(np.uint32)):
            raise ValueError(f"dtype must be uint16 or uint32, not {kind}")
        uint16 = kind == np.dtype(np.uint16)
        if self._core is not None:
            flat, offsets = self._core.encode_batch(texts, add_special_tokens, num_threads, uint16)
            return flat, offsets
        if uint16 and self.max_id > np.iinfo(np.uint16).max:
            raise ValueError(f"dtype uint16 cannot hold ids up to {self.max_id}; use uint32")
        encodings = self._hf.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((i for e in encodings for i in e.ids), dtype=kind, count=int(offsets[-1]))
        return flat, offsets

    def decode(self, ids: npt.ArrayLike, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``, as ``tokenizers`` decodes it.

        Args:
            ids: Token ids (any integer sequence or array).
            skip_special_tokens: Leave out special added tokens.

        Example:
            >>> tok.decode(tok.encode("Hello world"))  # doctest: +SKIP
            'Hello world'
        """
        if self._core is not None:
            arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
            if arr.ndim != 1:
                raise ValueError("ids must be one-dimensional")
            if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint32).max):
                raise ValueError("ids must be in [0, 2**32)")
            text: str = self._core.decode(arr.astype(np.uint32), skip_special_tokens)
            return text
        decoded: str = self._hf.decode([int(i) for i in np.asarray(ids).ravel()], skip_special_tokens)
        return decoded

    def __repr__(self) -> str:
        return f"Tokenizer({self.path!r}, backend={self.backend!r}, vocab_size={self.vocab_size})"

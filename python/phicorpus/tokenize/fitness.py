"""Whether a ``tokenizer.json`` can write training shards: lossless byte-level BPE, or [UNK]s.

A WordPiece, Unigram or WordLevel tokenizer maps whatever its vocabulary lacks to an unknown
token, so text is lost in the shards (a BERT WordPiece turns most code into ``[UNK]``). A BPE
with a ``ByteLevel`` pre-tokenizer or ``byte_fallback`` encodes every byte. A build refuses the
lossy kinds unless asked to accept them, and either way says how many tokens of a sample of the
corpus come out unknown.

Example:
    >>> fit = tokenizer_fitness(Tokenizer.from_file("bert.json"), ["def f(): return 1"])  # doctest: +SKIP
    >>> fit.lossless, f"{fit.unk_rate:.1%}"  # doctest: +SKIP
    (False, '53.5%')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phicorpus.tokenize.tokenizer import Tokenizer

__all__ = [
    "FITNESS_SAMPLE",
    "LossyTokenizerError",
    "TokenizerFitness",
    "check_training_tokenizer",
    "tokenizer_fitness",
]

#: Text for the [UNK] rate when the corpus has no documents yet: prose and Python, as a build mixes.
FITNESS_SAMPLE = (
    "A prime number has exactly two divisors: one and itself. To test whether n is prime, try every "
    "divisor up to the square root of n; if none divides it evenly, n is prime.",
    "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    k = 2\n"
    "    while k * k <= n:\n        if n % k == 0:\n            return False\n        k += 1\n"
    "    return True\n",
)


class LossyTokenizerError(ValueError):
    """A tokenizer that is not byte-level BPE was given for training shards without consent."""


@dataclass(frozen=True, slots=True)
class TokenizerFitness:
    """What a tokenizer does to a sample of text.

    Attributes:
        path: the ``tokenizer.json``.
        model: ``BPE``, ``WordPiece``, ``Unigram``, ``WordLevel`` (the file's ``model.type``).
        lossless: byte-level BPE (or BPE with byte fallback): every input byte is encoded.
        unk_token: the unknown token (``[UNK]``, ``<unk>``), or None.
        unk_tokens: unknown tokens in the sample's encoding.
        sample_tokens: tokens in the sample's encoding.
    """

    path: str
    model: str
    lossless: bool
    unk_token: str | None
    unk_tokens: int
    sample_tokens: int

    @property
    def unk_rate(self) -> float:
        """Share of the sample's tokens that are the unknown token."""
        return self.unk_tokens / self.sample_tokens if self.sample_tokens else 0.0

    def describe(self) -> str:
        """One line for the plan: the kind and the [UNK] rate of the sample."""
        kind = "byte-level BPE" if self.lossless else f"{self.model}, not byte-level BPE"
        unk = self.unk_token or "[UNK]"
        return (
            f"tokenizer {self.path}: {kind}; {self.unk_rate:.1%} of {self.sample_tokens:,} sample tokens "
            f"are {unk}"
        )


def _mentions(node: Any, kind: str) -> bool:
    """Whether a pre-tokenizer / decoder tree has a component of type ``kind``."""
    if isinstance(node, dict):
        return node.get("type") == kind or any(_mentions(v, kind) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, kind) for v in node)
    return False


def tokenizer_fitness(tokenizer: Tokenizer, sample: Sequence[str]) -> TokenizerFitness:
    """Classify ``tokenizer`` and count the unknown tokens it gives ``sample``.

    Args:
        tokenizer: a loaded tokenizer (its file is read again for the model type).
        sample: texts to encode (a seeded sample of the corpus's documents).
    """
    spec = json.loads(Path(tokenizer.path).read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    kind = str(model.get("type") or "BPE")
    byte_level = _mentions(spec.get("pre_tokenizer"), "ByteLevel") or bool(model.get("byte_fallback"))
    lossless = kind == "BPE" and byte_level
    unk_token = model.get("unk_token")
    if kind == "Unigram" and isinstance(model.get("unk_id"), int):
        vocab = model.get("vocab") or []
        if 0 <= model["unk_id"] < len(vocab):
            unk_token = vocab[model["unk_id"]][0]
    unk_id = tokenizer.token_to_id(unk_token) if isinstance(unk_token, str) else None
    unk_tokens = total = 0
    if sample:
        ids, _ = tokenizer.encode_batch(list(sample), add_special_tokens=False)
        total = int(ids.size)
        if unk_id is not None:
            unk_tokens = int(np.count_nonzero(ids == unk_id))
    return TokenizerFitness(
        tokenizer.path, kind, lossless, unk_token if isinstance(unk_token, str) else None, unk_tokens, total
    )


def check_training_tokenizer(
    tokenizer: Tokenizer, sample: Sequence[str], *, allow_lossy: bool
) -> TokenizerFitness:
    """:func:`tokenizer_fitness`, refusing a lossy tokenizer unless ``allow_lossy``.

    Raises:
        LossyTokenizerError: not byte-level BPE and not ``allow_lossy``; the message gives the
            [UNK] rate of the sample and the flag that accepts it.
    """
    fit = tokenizer_fitness(tokenizer, sample)
    if not fit.lossless and not allow_lossy:
        raise LossyTokenizerError(
            f"{fit.path}: a {fit.model} tokenizer, not byte-level BPE: {fit.unk_rate:.1%} of the "
            f"{fit.sample_tokens:,} tokens of a sample are {fit.unk_token or 'unknown'}, so the shards "
            "would lose text; give a byte-level BPE (or none: one is trained), or "
            "--allow-lossy-tokenizer to use it anyway"
        )
    return fit

"""Training a byte-level BPE tokenizer (with the ``tokenizers`` trainer)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def _is_file_list(items: list[str | os.PathLike[str]]) -> bool:
    if any(isinstance(item, os.PathLike) for item in items):
        return True
    return bool(items) and all(os.path.isfile(item) for item in items)


def _lines(paths: list[str | os.PathLike[str]]) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f


def train_tokenizer(
    files_or_texts: Iterable[str | os.PathLike[str]],
    vocab_size: int,
    out_path: str | os.PathLike[str],
    *,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = ("<|endoftext|>",),
) -> Path:
    """Train a GPT-2 style byte-level BPE tokenizer and write its ``tokenizer.json``.

    The model is BPE over the 256 byte symbols (``ByteLevel.alphabet()``), pre-tokenized by
    ``ByteLevel(add_prefix_space=False)`` (the GPT-2 pattern), with ByteLevel decoder and
    post-processor; ``special_tokens`` (by default ``<|endoftext|>``) are added as special tokens.

    Which items are files: items that are ``os.PathLike`` (e.g. :class:`pathlib.Path`) are files
    and every item is then read as a file; plain ``str`` items are texts, unless every one of them
    is the path of an existing file, in which case they are all read as files.

    Args:
        files_or_texts: Files (read as UTF-8) or texts to train on.
        vocab_size: Size of the vocabulary, the 256 bytes and the special tokens included.
        out_path: Where to write the ``tokenizer.json`` (atomically: temp file, then rename).
        min_frequency: Minimum count of a pair for it to be merged.
        special_tokens: Special tokens to add (first ids).

    Returns:
        ``out_path`` as a :class:`pathlib.Path`.

    Example:
        >>> from phicorpus.tokenize import Tokenizer, train_tokenizer
        >>> path = train_tokenizer(["the cat sat on the mat"] * 10, 300, "tok.json")  # doctest: +SKIP
        >>> Tokenizer.from_file(path).encode("the cat")  # doctest: +SKIP
    """
    from tokenizers import Tokenizer as HfTokenizer
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    items = list(files_or_texts)
    tokenizer = HfTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if _is_file_list(items):
        tokenizer.train_from_iterator(_lines(items), trainer=trainer)
    else:
        tokenizer.train_from_iterator((str(t) for t in items), trainer=trainer, length=len(items))

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        tokenizer.save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out

"""phicorpus: textbook-quality synthetic pretraining corpora, written as token shards.

The per-document hot paths (tokenization, MinHash-LSH dedup, quality signals) run in the Rust
core, ``phicorpus._core``; the stages in this package are thin fronts over it.
``phicorpus.open_corpus(path)`` reads a corpus's catalog as polars frames (:mod:`phicorpus.reader`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phicorpus._core import __version__

if TYPE_CHECKING:
    from phicorpus.reader import CorpusReader, open_corpus

__all__ = ["CorpusReader", "__version__", "open_corpus"]


def __getattr__(name: str) -> Any:
    # polars is imported only when the reading API is used, not by every command.
    if name in ("open_corpus", "CorpusReader"):
        from phicorpus import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'phicorpus' has no attribute {name!r}")

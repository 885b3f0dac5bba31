"""phicorpus: textbook-quality synthetic pretraining corpora, written as token shards.

The per-document hot paths (tokenization, MinHash-LSH dedup, quality signals) run in the Rust
core, ``phicorpus._core``; the stages in this package are thin fronts over it.
"""

from __future__ import annotations

from phicorpus._core import __version__

__all__ = ["__version__"]

"""Deduplication: exact hashes and MinHash-LSH near-duplicate clusters over the Rust core."""

from __future__ import annotations

from phicorpus.dedup.minhash import (
    EMPTY_SLOT,
    exact_hashes,
    lsh_clusters,
    lsh_dedup,
    lsh_params,
    lsh_recall_params,
    minhash_signatures,
    normalize_text,
    shingles,
)

__all__ = [
    "EMPTY_SLOT",
    "exact_hashes",
    "lsh_clusters",
    "lsh_dedup",
    "lsh_params",
    "lsh_recall_params",
    "minhash_signatures",
    "normalize_text",
    "shingles",
]

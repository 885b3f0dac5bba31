"""LLM generation: resumable, rate-limited, cost-capped requests to OpenAI-compatible endpoints.

Entry points (CONTRACTS.md): :func:`run_generation` and :func:`estimate_cost`; the Batch API in
:mod:`phicorpus.generate.batch`. Parts: ``journal`` (what was sent and received, fsynced),
``retry`` (classification and backoff), ``limits`` (buckets, adaptive concurrency), ``cost``
(prices, cap), ``endpoints``, ``client`` (the SDK wrapper), ``engine`` (the sending loop),
``requests`` (keys, Parquet and catalog rows), ``postprocess``, ``progress``.
"""

from __future__ import annotations

from phicorpus.generate.requests import GenerationParams
from phicorpus.generate.run import estimate_cost, run_generation

__all__ = ["GenerationParams", "estimate_cost", "run_generation"]

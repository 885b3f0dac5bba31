"""Diversity of a prompt set: topics covered, format x audience x style coverage, near-duplicates.

Example:
    >>> stats = prompt_stats(render_prompts(1000, seed=0))  # doctest: +SKIP
    >>> stats["near_duplicate_rate"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from phicorpus.prompts.templates import Templates

__all__ = ["near_duplicate_rate", "prompt_stats"]


def near_duplicate_rate(
    texts: list[str], *, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, compare: int = 16
) -> float:
    """Share of texts that are near-duplicates of an earlier text.

    Candidates come from MinHash-LSH over word ``ngram`` shingles (``num_perm`` permutations,
    the Rust core, bands and rows tuned for ``threshold``); a candidate counts only when the
    exact Jaccard similarity of its shingle set with one of the ``compare`` members before it
    in its LSH cluster is at least ``threshold`` (LSH alone over-counts: banding has false
    positives and union-find chains clusters).
    """
    from phicorpus.dedup import lsh_clusters, lsh_params, minhash_signatures, shingles

    if len(texts) < 2:
        return 0.0
    signatures = minhash_signatures(texts, num_perm=num_perm, ngram=ngram)
    bands, rows = lsh_params(threshold, num_perm)
    labels = lsh_clusters(signatures, bands, rows)
    clustered = np.flatnonzero(labels != np.arange(len(labels)))
    clusters: dict[int, list[int]] = {}
    for i in clustered.tolist():
        clusters.setdefault(int(labels[i]), [int(labels[i])]).append(i)
    duplicates = 0
    for members in clusters.values():
        members.sort()
        sets = [set(shingles(texts[m], ngram)) for m in members]
        for j in range(1, len(sets)):
            for k in range(max(0, j - compare), j):
                union = len(sets[j] | sets[k])
                if union and len(sets[j] & sets[k]) / union >= threshold:
                    duplicates += 1
                    break
    return duplicates / len(texts)


def prompt_stats(
    table: pa.Table,
    *,
    templates: Templates | None = None,
    n_topics: int | None = None,
    near_dup_threshold: float = 0.8,
    max_near_dup_rows: int = 200_000,
) -> dict[str, Any]:
    """Diversity figures of a prompt table (see :data:`~phicorpus.prompts.engine.PROMPT_SCHEMA`).

    Args:
        templates: gives the possible audience x style pairs of each format (else only the
            observed ones are counted).
        n_topics: the number of topics available, for the coverage share.
        max_near_dup_rows: the near-duplicate rate is measured on at most this many prompts
            (an evenly spaced sample).

    Returns a dict with ``prompts``, ``formats`` (count per format), ``topics_covered``,
    ``topic_coverage`` (share of ``n_topics``), ``max_topic_uses``, ``combinations`` (per
    format: used and possible audience x style pairs), ``web_share``, ``answer_formats``,
    ``near_duplicate_rate`` and ``near_duplicate_threshold``.
    """
    n = table.num_rows
    formats = table.column("format").to_pylist()
    topic_ids = [t for t in table.column("topic_id").to_pylist() if t is not None]
    topic_uses = Counter(topic_ids)
    audiences = table.column("audience").to_pylist()
    styles = table.column("style").to_pylist()
    combos: dict[str, dict[str, int]] = {}
    used: dict[str, set[tuple[str, str]]] = {}
    for fmt, audience, style in zip(formats, audiences, styles, strict=True):
        used.setdefault(fmt, set()).add((audience, style))
    for fmt, pairs in sorted(used.items()):
        possible = len(pairs)
        if templates is not None and fmt in templates.formats:
            ft = templates.formats[fmt]
            possible = len(ft.audiences) * len(ft.styles)
        combos[fmt] = {"used": len(pairs), "possible": possible}
    users = table.column("user").to_pylist()
    step = max(1.0, n / max_near_dup_rows)
    sample = [int(i * step) for i in range(min(n, max_near_dup_rows))]
    by_format: dict[str, list[str]] = {}
    for i in sample:
        by_format.setdefault(formats[i], []).append(users[i])
    sampled = [users[i] for i in sample]
    web = table.column("web_id").to_pylist()
    return {
        "prompts": n,
        "formats": dict(sorted(Counter(formats).items())),
        "topics_covered": len(topic_uses),
        "topic_coverage": (len(topic_uses) / n_topics) if n_topics else None,
        "max_topic_uses": max(topic_uses.values(), default=0),
        "combinations": combos,
        "web_share": (sum(w is not None for w in web) / n) if n else 0.0,
        "answer_formats": dict(sorted(Counter(table.column("answer_format").to_pylist()).items())),
        "near_duplicate_rate": near_duplicate_rate(sampled, threshold=near_dup_threshold),
        "near_duplicate_rate_by_format": {
            fmt: near_duplicate_rate(texts, threshold=near_dup_threshold)
            for fmt, texts in sorted(by_format.items())
        },
        "near_duplicate_threshold": near_dup_threshold,
    }

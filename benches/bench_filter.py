"""Quality signals: phicorpus vs datatrove's Gopher/C4/FineWeb filters, on the same documents.

datatrove runs ``GopherRepetitionFilter``, ``GopherQualityFilter``, ``C4QualityFilter`` and
``FineWebQualityFilter`` with their defaults, calling ``.filter(Document(...))`` with every filter
on every document (a fresh ``Document`` per call, since ``C4QualityFilter`` rewrites the text), so
all four filters are computed as ours are; the short-circuit pipeline (stop at the first filter
that drops) is timed too. Its English word tokenizer is spaCy's rule-based ``spacy.blank("en")``
(datatrove's default for English), which needs no downloaded model, so it runs offline.

Run: ``python benches/bench_filter.py [--mb 4.0]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, load_corpus, mbytes, report
from phicorpus.filter import quality_signals


def run(docs: list[str]) -> list[str]:
    """The benchmarked call: the drop reason of every document ("" when kept), one thread."""
    return [str(r) for r in quality_signals(docs, num_threads=1).reason.tolist()]


def datatrove_filters() -> list[Any]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]


def _reason(result: bool | tuple[bool, str]) -> str | None:
    if isinstance(result, tuple):
        return result[1] if not result[0] else None
    return None if result else "dropped"


def datatrove_all(docs: list[str], filters: list[Any]) -> list[str]:
    """Every filter on every document; the first reason in filter order ("" when kept)."""
    from datatrove.data import Document

    out = []
    for i, text in enumerate(docs):
        first = ""
        for f in filters:
            reason = _reason(f.filter(Document(text=text, id=str(i))))
            if reason and not first:
                first = reason
        out.append(first)
    return out


def datatrove_pipeline(docs: list[str], filters: list[Any]) -> list[str]:
    """The filters as a pipeline: a document stops at the first filter that drops it."""
    from datatrove.data import Document

    out = []
    for i, text in enumerate(docs):
        first = ""
        for f in filters:
            reason = _reason(f.filter(Document(text=text, id=str(i))))
            if reason:
                first = reason
                break
        out.append(first)
    return out


def sample(docs: list[str], target_mb: float) -> list[str]:
    """An evenly strided slice of the corpus of about ``target_mb`` MB (code and prose mixed)."""
    total = mbytes(docs)
    stride = max(1, int(total / target_mb))
    picked: list[str] = []
    size = 0.0
    for text in docs[::stride]:
        b = len(text.encode()) / 1e6
        if size + b > target_mb * 1.2:
            continue
        picked.append(text)
        size += b
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="size of the slice datatrove runs on")
    args = parser.parse_args()

    corpus = load_corpus()
    docs = sample(corpus, args.mb)
    mb = mbytes(docs)
    print(f"slice: {len(docs)} documents, {mb:.2f} MB (of {len(corpus)} documents, {mbytes(corpus):.1f} MB)")

    filters = datatrove_filters()
    datatrove_all(docs[:3], filters)  # load spaCy once, outside the timing

    ours_s = best_time(lambda: run(docs), repeat=5)
    start = time.perf_counter()
    peer = datatrove_all(docs, filters)
    peer_s = time.perf_counter() - start
    start = time.perf_counter()
    datatrove_pipeline(docs, filters)
    pipe_s = time.perf_counter() - start

    report("quality signals, all 4 filters, 1 thread", mb / ours_s, mb / peer_s, "datatrove (all 4)")
    report("quality signals vs short-circuit pipeline", mb / ours_s, mb / pipe_s, "datatrove (pipeline)")

    ours = run(docs)
    agree = sum((a == "") == (b == "") for a, b in zip(ours, peer, strict=True)) / len(docs)
    print(
        f"kept: ours {sum(r == '' for r in ours)}/{len(docs)}, datatrove {sum(r == '' for r in peer)}"
        f"/{len(docs)}; same keep/drop decision on {agree:.1%} of documents"
    )

    full_mb = mbytes(corpus)
    cpu: dict[int, float] = {}
    wall: dict[int, float] = {}
    for threads in (1, 2):
        cpu_start = time.process_time()
        wall[threads] = best_time(partial(quality_signals, corpus, num_threads=threads), repeat=2)
        cpu[threads] = (time.process_time() - cpu_start) / 2
    name = f"full corpus ({full_mb:.0f} MB), 2 threads vs 1"
    report(name, full_mb / wall[2], full_mb / wall[1], "ours, 1 thread")
    # Wall-clock scaling needs idle cores; CPU seconds per run show whether work was added.
    print(
        f"CPU seconds per run: 1 thread {cpu[1]:.2f} (wall {wall[1]:.2f}), 2 threads {cpu[2]:.2f}"
        f" (wall {wall[2]:.2f}); cores busy with other work make the 2-thread wall time longer"
    )


if __name__ == "__main__":
    main()

"""MinHash signatures (128 permutations, word 5-grams): phicorpus vs datasketch vs rensa.

Each peer gets its usual Python pattern: words from ``str.lower().split()``, word 5-grams joined
by spaces, then ``datasketch.MinHash.update_batch`` of the encoded shingles, or
``rensa.RMinHash.update`` of the shingle strings. datasketch and rensa are far slower, so they
run on leading sub-slices of the corpus and ours is timed on the very same sub-slice for the
ratio. Also printed: ours at 2 threads vs 1, and ``lsh_clusters`` on the resulting signatures
and on 1,000,000 signatures.

    python benches/bench_minhash.py
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, load_corpus, mbytes, report
from phicorpus.dedup import lsh_clusters, lsh_params, minhash_signatures, shingles

NUM_PERM = 128
NGRAM = 5
MAIN_MB = 120.0
RENSA_MB = 80.0
DATASKETCH_MB = 20.0


def py_shingles(text: str, n: int = NGRAM) -> list[str]:
    words = text.lower().split()
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def head(docs: list[str], mb: float) -> list[str]:
    out, total = [], 0
    for d in docs:
        total += len(d.encode())
        if total > mb * 1e6:
            break
        out.append(d)
    return out


def datasketch_signatures(docs: list[str]) -> None:
    from datasketch import MinHash

    for d in docs:
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode("utf-8") for s in py_shingles(d)])
        m.digest()


def rensa_signatures(docs: list[str]) -> None:
    from rensa import RMinHash

    for d in docs:
        m = RMinHash(num_perm=NUM_PERM, seed=1)
        m.update(py_shingles(d))
        m.digest()


def ours(docs: list[str], threads: int) -> npt.NDArray[np.uint32]:
    return minhash_signatures(docs, num_perm=NUM_PERM, ngram=NGRAM, seed=1, num_threads=threads)


def run(docs: list[str]) -> list[str]:
    """Run the benchmark on ``docs``; returns the printed report lines."""
    lines: list[str] = []
    main = head(docs, MAIN_MB)
    mb = mbytes(main)
    print(f"# corpus slice: {len(main)} docs, {mb:.1f} MB; {NUM_PERM} perms, word {NGRAM}-grams", flush=True)
    # Thread scaling is only meaningful on an otherwise idle machine: say how busy it was.
    print(f"# cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} before the run", flush=True)

    # The work per MB differs: our normalization splits on punctuation too (code has many more
    # words that way) while the peers' pattern splits on whitespace only.
    sample = head(docs, 5.0)
    per_mb = 1e6 / sum(len(d.encode()) for d in sample)
    ours_sh = sum(len(shingles(d, NGRAM)) for d in sample) * per_mb
    peers_sh = sum(len(py_shingles(d)) for d in sample) * per_mb
    print(f"# shingles per MB (first 5 MB): ours {ours_sh:,.0f}, peers' split() {peers_sh:,.0f}", flush=True)

    t1 = best_time(lambda: ours(main, 1), repeat=2)
    t2 = best_time(lambda: ours(main, 2), repeat=2)
    ours1 = mb / t1
    lines.append(report(f"minhash 2 threads vs 1 ({mb:.0f} MB)", mb / t2, ours1, "phicorpus 1 thread"))

    for name, size, fn in (
        ("rensa", RENSA_MB, rensa_signatures),
        ("datasketch", DATASKETCH_MB, datasketch_signatures),
    ):
        sub = head(docs, size)
        sub_mb = mbytes(sub)
        try:
            peer_t = best_time(partial(fn, sub), repeat=1)
        except ImportError:
            print(f"# {name} not installed, skipped", flush=True)
            continue
        ours_t = best_time(partial(ours, sub, 1), repeat=3)
        lines.append(
            report(
                f"minhash 1 thread ({sub_mb:.1f} MB, {len(sub)} docs)", sub_mb / ours_t, sub_mb / peer_t, name
            )
        )

    bands, rows = lsh_params(0.8, NUM_PERM)
    sig = ours(main, 2)
    t_lsh = best_time(lambda: lsh_clusters(sig, bands, rows, num_threads=1), repeat=3)
    labels = lsh_clusters(sig, bands, rows)
    dups = int((labels != np.arange(len(labels))).sum())
    line = f"lsh_clusters {len(sig)} docs ({bands}x{rows}), 1 thread: {t_lsh * 1e3:.1f} ms, {dups} near-dups"
    print(line, flush=True)
    lines.append(line)

    n = 1_000_000
    rng = np.random.default_rng(0)
    big = rng.integers(0, 2**32 - 1, size=(n, NUM_PERM), dtype=np.uint32)
    big[n // 2 :: 7] = big[: n // 2 : 7][: len(big[n // 2 :: 7])]  # planted duplicates
    for threads in (1, 2):
        start = time.perf_counter()
        lab = lsh_clusters(big, bands, rows, num_threads=threads)
        elapsed = time.perf_counter() - start
        line = (
            f"lsh_clusters {n} docs ({bands}x{rows}), {threads} thread(s): {elapsed:.2f} s, "
            f"{int((lab != np.arange(n)).sum())} duplicates"
        )
        print(line, flush=True)
        lines.append(line)
    return lines


def main() -> None:
    run(load_corpus())


if __name__ == "__main__":
    main()

"""The Ray executor: overhead at one worker, speed-up at two, and sharded dedup's memory per worker.

Part 1 (``--docs``, default 1,000,000): the synthetic near-duplicate corpus of
``bench_pipeline.py`` (60-word documents in groups of 10 near copies, 100k per shard), deduplicated

- by today's single-process ``run_dedup`` in a child process (time, peak RSS);
- by ``run_dedup_sharded`` on the local executor (one unit at a time, one thread);
- by ``run_dedup_sharded`` on a local Ray cluster of one node (1 CPU), then of two (1 CPU each),
  started here with ``ray.cluster_utils.Cluster``: time, and the peak RSS of each Ray worker
  process (the largest ``ru_maxrss`` its units report) and of the driver.

Every run's catalog decisions are compared with the single-process run's (they must be equal, so
the precision / recall of ``bench_pipeline.py`` carry over unchanged).

Part 0 (``--stage-mb``, default 30): the tokenize stage over the benchmark corpus's documents
(100 per docs shard, one unit each), on the local executor (1 worker) and on Ray with 1 and
2 workers (one thread per unit; Ray's workers started before the clock), caches compared.

    python benches/bench_ray.py [--docs 1000000] [--skip-dedup] [--stage-mb 30]
        [--runs single,local,ray1,ray2] [--work DIR]

With ``--work DIR`` the synthetic corpus and the single process's result stay in DIR and a later
run reuses them (``--runs single`` first, then ``--runs ray2``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("RAYON_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from bench_pipeline import precision_recall, synthetic_corpus
from phicorpus.catalog import Catalog
from phicorpus.corpus import Corpus, sha256_file

MB = 1 << 20


@contextmanager
def ray_cluster(nodes: int) -> Iterator[str]:
    """A local Ray cluster of ``nodes`` nodes with one CPU each; yields its address."""
    from ray.cluster_utils import Cluster

    import ray

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 100 * MB, "include_dashboard": False},
    )
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1, object_store_memory=100 * MB)
    cluster.wait_for_nodes()
    try:
        yield str(cluster.address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _link_or_copy(src: str, dst: str) -> None:
    # Document shards are read only: hard links. Anything else (the catalogs) is copied, so one
    # run's writes never reach another's copy.
    if src.endswith(".parquet"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def copy_corpus(src: Path, dst: Path) -> Corpus:
    """The same documents (hard links) with a fresh copy of the catalog."""
    shutil.copytree(src, dst, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("cache"))
    return Corpus.open(dst)


def decisions(corpus: Corpus) -> list[tuple[Any, ...]]:
    with Catalog.open(corpus, read_only=True) as cat:
        return cat.exec(
            "SELECT id, drop_reason, dup_cluster FROM documents WHERE drop_stage IS NOT NULL ORDER BY id"
        )


def single_process(corpus: Corpus) -> dict[str, Any]:
    code = (
        "import json, resource, time\n"
        "from phicorpus.corpus import Corpus\nfrom phicorpus.config import DedupConfig\n"
        "from phicorpus.dedup.stage import run_dedup\n"
        "t = time.perf_counter()\n"
        f"stats = run_dedup(Corpus.open({str(corpus.root)!r}), DedupConfig(), num_threads=1)\n"
        "stats['seconds'] = time.perf_counter() - t\n"
        "stats['peak_rss'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps(stats))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    stats: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def sharded_in_child(corpus: Corpus, kind: str, address: str = "") -> dict[str, Any]:
    """``run_dedup_sharded`` in a child process (its own driver peak RSS)."""
    code = (
        "import json, resource, time, sys\n"
        "from phicorpus.corpus import Corpus\nfrom phicorpus.config import DedupConfig\n"
        "from phicorpus.dedup.sharded import run_dedup_sharded\n"
        "from phicorpus.executors import RayExecutor\nfrom phicorpus.stage import LocalExecutor\n"
        f"ex = LocalExecutor(workers=1) if {kind!r} == 'local' else RayExecutor(address={address!r})\n"
        "t = time.perf_counter()\n"
        f"stats = run_dedup_sharded(Corpus.open({str(corpus.root)!r}), DedupConfig(), executor=ex,"
        " threads=1)\n"
        "stats['seconds'] = time.perf_counter() - t\n"
        "stats['driver_peak_rss'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "getattr(ex, 'close', lambda: None)()\n"
        "print(json.dumps(stats))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    stats: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def worker_peaks(stats: dict[str, Any]) -> dict[int, tuple[int, str]]:
    """Per worker process: its largest peak RSS and the step where it was reached."""
    peaks: dict[int, tuple[int, str]] = {}
    for step, units in stats["units"].items():
        for u in units:
            if u.get("peak_rss", 0) > peaks.get(u["pid"], (0, ""))[0]:
                peaks[u["pid"]] = (int(u["peak_rss"]), step)
    return peaks


def dedup_part(work: Path, n_docs: int, runs: set[str]) -> None:
    """The dedup runs named in ``runs`` (single, local, ray1, ray2). The base corpus and the single
    process's result are kept in ``work`` and reused by a later call with the same ``work``, so
    a 10M-document comparison can be run one part at a time."""
    base = work / "base"
    if not (base / ".complete").is_file():
        shutil.rmtree(base, ignore_errors=True)
        t = time.perf_counter()
        synthetic_corpus(base, n_docs)
        (base / ".complete").write_text(str(n_docs))
        print(f"# wrote {n_docs} synthetic documents in {time.perf_counter() - t:.1f} s", flush=True)
    single = work / "single"
    result = work / "single.json"
    if not result.is_file():
        shutil.rmtree(single, ignore_errors=True)
        ref = single_process(copy_corpus(base, single))
        result.write_text(json.dumps(ref))
    ref = json.loads(result.read_text())
    line = (f"dedup {n_docs} docs  single process (run_dedup, 1 thread): {ref['seconds']:.1f} s  "
            f"peak RSS {ref['peak_rss'] / MB:.0f} MB  exact {ref['exact_duplicates']}  "
            f"near {ref['near_duplicates']}")  # fmt: skip
    common.REPORTED.append(line)
    print(line, flush=True)
    if "single" in runs:
        precision_recall(single, n_docs, label=f"{n_docs} docs single process")
    want = decisions(Corpus.open(single))
    named: list[tuple[str, str, Callable[[Corpus], dict[str, Any]]]] = [
        ("local", "sharded, local executor (1 worker)", lambda c: sharded_in_child(c, "local")),
    ]
    for nodes in (1, 2):

        def on_ray(c: Corpus, nodes: int = nodes) -> dict[str, Any]:
            with ray_cluster(nodes) as address:
                return sharded_in_child(c, "ray", address)

        named.append((f"ray{nodes}", f"sharded, Ray {nodes} worker{'s' if nodes > 1 else ''}", on_ray))
    for i, (key, name, run) in enumerate(named):
        if key not in runs:
            continue
        corpus = copy_corpus(base, work / f"sharded{i}")
        stats = run(corpus)
        same = decisions(corpus) == want
        peaks = worker_peaks(stats)
        biggest = max(peaks.values()) if peaks else (0, "")
        per_worker = ", ".join(f"{p / MB:.0f} MB ({s})" for p, s in sorted(peaks.values(), reverse=True)[:4])
        line = (f"dedup {n_docs} docs  {name}: {stats['seconds']:.1f} s  "
                f"worker peak RSS max {biggest[0] / MB:.0f} MB = {biggest[0] / ref['peak_rss']:.2f} x single "
                f"[{per_worker}]  driver peak {stats['driver_peak_rss'] / MB:.0f} MB  "
                f"components rounds {sum(k.startswith('cc-L') for k in stats['units'])}  "
                f"decisions {'equal' if same else 'DIFFERENT'}")  # fmt: skip
        common.REPORTED.append(line)
        print(line, flush=True)
        if not same:
            precision_recall(corpus.root, n_docs, label=f"{n_docs} docs {name}")
        shutil.rmtree(corpus.root)


def stage_part(work: Path, mb: float) -> None:
    """Tokenize-stage throughput, one thread per unit: local executor (1 worker) vs Ray at 1 and
    2 workers (warm: the workers are started before the clock starts)."""
    import bench_build
    import ray
    from phicorpus.executors import RayExecutor
    from phicorpus.stage import Executor, LocalExecutor
    from phicorpus.tokenize import train_tokenizer
    from phicorpus.tokenize.stage import tokenize_sources

    docs = common.load_corpus(max_mb=mb)
    size = common.mbytes(docs)
    base = Corpus.create(work / "stage-base")
    bench_build.PER_FILE = 100  # many small shards: units to spread over the workers
    bench_build._write_sources(base, docs)
    tokenizer = work / "tokenizer.json"
    train_tokenizer(docs[::7], 8_000, tokenizer)
    with Catalog.open(base, read_only=True) as cat:
        units = cat.exec_one("SELECT count(*) FROM shards WHERE kind = 'docs'")
    shards = units[0] if units else 0
    print(f"# stage bench: {len(docs)} documents, {size:.1f} MB, {shards} docs shards", flush=True)

    def timed(i: int, executor: Executor) -> tuple[float, str]:
        corpus = copy_corpus(base.root, work / f"stage{i}")
        inside = corpus.build_dir("bench") / "tokenizer.json"
        inside.parent.mkdir(parents=True)
        shutil.copy2(tokenizer, inside)
        start = time.perf_counter()
        caches = tokenize_sources(
            corpus, name="bench", sources=["code", "textbook"], tokenizer_path=inside, threads=1,
            executor=executor,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        prefixes = sorted(p for parts in caches.shards.values() for p, _ in parts)
        digest = ",".join(sha256_file(corpus.absolute(p + ext)) for p in prefixes for ext in (".bin", ".idx"))
        shutil.rmtree(corpus.root)
        return seconds, digest

    results: list[tuple[str, float, str]] = []
    local_s, local_digest = timed(0, LocalExecutor(workers=1))
    results.append(("local executor, 1 worker", local_s, local_digest))
    for nodes in (1, 2):
        with ray_cluster(nodes) as address:
            executor = RayExecutor(address=address)
            executor._init()
            warm = ray.remote(num_cpus=1)(lambda: os.getpid())
            ray.get([warm.remote() for _ in range(4 * nodes)])
            seconds, digest = timed(nodes, executor)
            executor.close()
        results.append((f"Ray, {nodes} worker{'s' if nodes > 1 else ''}", seconds, digest))
    for name, seconds, digest in results:
        line = (f"tokenize stage  {name:<26} {seconds:6.1f} s  {size / seconds:6.1f} MB/s  "
                f"{seconds / local_s:5.2f} x local time  "
                f"caches {'equal' if digest == local_digest else 'DIFFERENT'}")  # fmt: skip
        common.REPORTED.append(line)
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--skip-dedup", action="store_true")
    parser.add_argument("--stage-mb", type=float, default=30.0, help="tokenize-stage input (0: skip)")
    parser.add_argument("--work", type=Path, default=None, help="kept: a later run reuses its corpus")
    parser.add_argument("--runs", default="single,local,ray1,ray2", help="dedup runs, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.stage_mb > 0:
            stage_part(work, args.stage_mb)
        if not args.skip_dedup:
            dedup_part(work, args.docs, set(args.runs.split(",")))
    print(f"# bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

"""End-to-end build throughput on the offline benchmark corpus, and the dataloader's speed.

Run: ``python benches/bench_build.py`` (uses the 50k-token tokenizer ``bench_tokenize.py``
trains and caches, training it if missing). The ~50 MB slice of the benchmark corpus is written
as documents of two sources (``code``: the stdlib ``.py`` files; ``textbook``: the rest), then timed
per stage with one Rust thread (so the figures are per core):

- tokenize: every kept document tokenized once into the per-source cache shards;
- mix: the token-exact plan (no I/O);
- shards: train/valid ``.bin``/``.idx`` written from the caches, sha256 included;
- tokenize + mix + shard: the three together, in MB of input text per second per core
  (goal: 50 MB/s per core). Peers: ``tokenizers`` ``encode_batch`` (one thread) plus NumPy
  ``tofile`` of the ids, i.e. the bare tokenize-and-dump a build does at the least; and our own
  encoder alone on the same documents (one thread, fresh instance): the build's kernel.

- filter: the filter stage (plan, Arrow buffers to the Rust signals, rule decisions, Parquet per
  shard, one catalog transaction) against the signals alone on the same documents, one thread
  (goal: >= 0.8 of them);
- ingest: ``ingest_code`` of a directory tree (this Python's stdlib and ``/usr/include``) with a
  warm page cache, in MB of kept text per CPU-second (goal: 100 MB/s per core), against the bare
  walk-and-read of the same files (the floor no ingest can beat).

The dataloader line compares :class:`phicorpus.loader.TokenDataset` (shuffled packed 2048-token
samples, int64 inputs and labels) with a bare ``np.memmap`` read of the same windows.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("RAYON_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import DATA_DIR, load_corpus, mbytes, report
from phicorpus.catalog import Catalog
from phicorpus.config import FilterConfig, IngestConfig
from phicorpus.corpus import Corpus, atomic_path, sha256_file, utf8_buffers
from phicorpus.filter.code import code_signals
from phicorpus.filter.signals import quality_signals
from phicorpus.filter.stage import run_filter
from phicorpus.loader import TokenDataset
from phicorpus.mix import MixPlan
from phicorpus.shard.stage import write_build
from phicorpus.sources.code import ingest_code
from phicorpus.stage import LocalExecutor
from phicorpus.tokenize import train_tokenizer
from phicorpus.tokenize.stage import tokenize_sources

TOKENIZER_PATH = DATA_DIR / "tokenizer-50k.json"
#: Input size; fixed costs (catalog, tokenizer load, first read) are ~1 s, so larger is closer to
#: the steady state: ``PHICORPUS_BENCH_MB=200 python benches/bench_build.py``.
BENCH_MB = float(os.environ.get("PHICORPUS_BENCH_MB", "50"))
PER_FILE = 2_000


def _by_source(docs: list[str]) -> dict[str, list[str]]:
    by_source: dict[str, list[str]] = {"code": [], "textbook": []}
    for d in docs:
        looks_python = d.lstrip().startswith(('"""', "#", "import ", "from ", "'''"))
        by_source["code" if looks_python else "textbook"].append(d)
    return by_source


def _write_sources(corpus: Corpus, docs: list[str]) -> None:
    by_source = _by_source(docs)
    with Catalog.open(corpus) as catalog:
        for source, texts in by_source.items():
            catalog.ensure_source(source, "bench", "benches/common.py corpus")
            for part, start in enumerate(range(0, len(texts), PER_FILE)):
                chunk = texts[start : start + PER_FILE]
                ids = [
                    f"{source}/{hashlib.sha256(f'{start + i}'.encode() + t.encode()).hexdigest()[:16]}"
                    for i, t in enumerate(chunk)
                ]
                path = corpus.docs_dir(source) / f"part-{part:05d}.parquet"
                with atomic_path(path) as tmp:
                    pq.write_table(pa.table({"id": ids, "text": chunk}), tmp)
                n = len(chunk)
                rows = pa.table(
                    {
                        "id": ids,
                        "source": [source] * n,
                        "kind": [source] * n,
                        "file": [corpus.relative(path)] * n,
                        "row": list(range(n)),
                        "chars": [len(t) for t in chunk],
                    }
                )
                with catalog.transaction():
                    catalog.register_shard(
                        path,
                        "docs",
                        sha256=sha256_file(path),
                        size=path.stat().st_size,
                        rows=n,
                        source=source,
                    )
                    catalog.insert_documents(rows)


def main() -> None:
    tokenizer = TOKENIZER_PATH
    if not tokenizer.exists():  # what bench_tokenize.py trains: 50k BPE on ~30 MB, every 3rd doc
        sample, size = [], 0
        for d in load_corpus()[::3]:
            sample.append(d)
            size += len(d.encode())
            if size > 30e6:
                break
        train_tokenizer(sample, 50_000, tokenizer)
    docs, total = [], 0
    for d in load_corpus():
        total += len(d.encode())
        if total > BENCH_MB * 1e6:
            break
        docs.append(d)
    mb = mbytes(docs)
    print(f"build: {len(docs)} documents, {mb:.1f} MB, tokenizer {tokenizer.name}, 1 thread", flush=True)
    with tempfile.TemporaryDirectory(prefix="phicorpus-bench-") as tmp:
        corpus = Corpus.create(Path(tmp) / "corpus")
        start = time.perf_counter()
        _write_sources(corpus, docs)
        t_docs = time.perf_counter() - start
        build = corpus.build_dir("bench")
        build.mkdir(parents=True)
        (build / "tokenizer.json").write_bytes(tokenizer.read_bytes())

        start = time.perf_counter()
        one = LocalExecutor(workers=1)  # one core: units one after another
        caches = tokenize_sources(
            corpus,
            name="bench",
            sources=["code", "textbook"],
            tokenizer_path=build / "tokenizer.json",
            threads=1,
            executor=one,
        )
        pools = caches.pools
        t_tok = time.perf_counter() - start
        start = time.perf_counter()
        plan = MixPlan.create({"code": 0.2, "textbook": 0.8}, pools, seed=0, valid_fraction=0.005)
        t_mix = time.perf_counter() - start
        start = time.perf_counter()
        manifest = write_build(
            corpus,
            plan,
            caches=caches,
            name="bench",
            mix="code:0.2,textbook:0.8",
            tokenizer_path=build / "tokenizer.json",
            shard_tokens=4_000_000,
            executor=one,
        )
        t_shard = time.perf_counter() - start
        # The mix uses part of the input: shard MB/s is over the text those documents came from.
        used = manifest["splits"]["train"]["tokens"] + manifest["splits"]["valid"]["tokens"]
        cached = sum(int(p.lengths.sum()) for p in pools.values())
        shard_mb = mb * used / cached
        print(f"  write documents (Parquet + catalog, not timed below): {mb / t_docs:8.1f} MB/s")
        print(f"  tokenize  {mb / t_tok:8.1f} MB/s   ({t_tok:.2f} s)")
        print(f"  mix plan  {mb / t_mix:8.1f} MB/s   ({t_mix:.3f} s)")
        print(f"  shards    {shard_mb / t_shard:8.1f} MB/s   ({t_shard:.2f} s, {used:,} tokens)")
        ours = mb / (t_tok + t_mix + t_shard * mb / shard_mb)  # shards scaled to all the input

        # Peer: tokenizers encode_batch (one thread) + dump the ids with NumPy.
        from tokenizers import Tokenizer as HfTokenizer

        hf = HfTokenizer.from_file(str(tokenizer))
        start = time.perf_counter()
        enc = hf.encode_batch(docs, add_special_tokens=False)
        flat = np.concatenate([np.asarray([*e.ids, 0], dtype=np.uint16) for e in enc])
        flat.tofile(Path(tmp) / "peer.bin")
        t_peer = time.perf_counter() - start
        report("build: tokenize + mix + shard (1 core)", ours, mb / t_peer, "tokenizers+np.tofile")
        # The kernel: our encoder alone on the same documents, one thread, a fresh instance (the
        # build tokenizes each document once) -- goal: the build at >= 0.8 of it.
        from phicorpus.tokenize import Tokenizer

        kernel = Tokenizer.from_file(tokenizer)
        start = time.perf_counter()
        kernel.encode_batch(docs, add_special_tokens=False, num_threads=1)
        t_kernel = time.perf_counter() - start
        report("build: tokenize + mix + shard vs encoder", ours, mb / t_kernel, "encoder 1 thread cold")

        # Dataloader: shuffled packed samples vs a bare np.memmap read of the same windows.
        seq = 2048
        ds = TokenDataset(build, seq, seed=0)
        order = ds.order(0)[:20_000]
        start = time.perf_counter()
        n_tok = 0
        for i in order:
            n_tok += ds.sample(int(i))["input_ids"].size
        t_ds = time.perf_counter() - start
        shard0 = build / manifest["splits"]["train"]["shards"][0]["bin"]
        flat_mm = np.memmap(shard0, dtype=np.uint16, mode="r")
        limit = (flat_mm.size - 1) // seq
        start = time.perf_counter()
        for i in order:
            j = int(i) % limit
            window = flat_mm[j * seq : j * seq + seq + 1].astype(np.int64)
            _ = window[:-1], window[1:]
        t_mm = time.perf_counter() - start
        report(
            "loader: TokenDataset samples", n_tok / t_ds / 1e6, n_tok / t_mm / 1e6, "bare np.memmap", "Mtok/s"
        )

        _bench_filter(corpus, docs, mb)
    _bench_ingest()


def _bench_filter(corpus: Corpus, docs: list[str], mb: float) -> None:
    """The filter stage against its kernels: the prose signals on the textbook documents and the
    code signals on the code ones, one thread, from the same Arrow buffers the stage hands them."""
    by_source = _by_source(docs)
    prose = utf8_buffers(pa.array(by_source["textbook"], pa.string()))
    code = utf8_buffers(pa.array(by_source["code"], pa.string()))
    start = time.perf_counter()
    quality_signals(prose, num_threads=1)
    code_signals(code, 1)
    t_signals = time.perf_counter() - start
    start = time.perf_counter()
    stats = run_filter(corpus, FilterConfig(), num_threads=1, executor=LocalExecutor(workers=1))
    t_stage = time.perf_counter() - start
    print(f"  filter    {mb / t_stage:8.1f} MB/s   ({t_stage:.2f} s, {stats['scored']:,} documents judged)")
    report("build: filter stage vs signals (1 core)", mb / t_stage, mb / t_signals, "signals alone")


def _bench_ingest() -> None:
    """``ingest_code`` of a directory tree with a warm page cache, MB of kept text per CPU-second;
    the peer is the bare walk-and-read of the same files (which also warms the cache)."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path("/usr/include")]
    roots = [r for r in roots if r.is_dir()]
    read_bytes, t_read = 0, 0.0
    for _ in range(2):  # the first pass warms the cache, the second is the timed floor
        start_cpu, read_bytes = time.process_time(), 0
        for root in roots:
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    try:
                        with open(os.path.join(dirpath, name), "rb") as fh:
                            read_bytes += len(fh.read())
                    except OSError:
                        pass
        t_read = time.process_time() - start_cpu
    with tempfile.TemporaryDirectory(prefix="phicorpus-bench-") as tmp:
        corpus = Corpus.create(Path(tmp) / "corpus")
        start_cpu, start = time.process_time(), time.perf_counter()
        stats = ingest_code(corpus, roots, config=IngestConfig(), source="code")
        cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    kept = stats["bytes"] / 1e6
    where = " + ".join(str(r) for r in roots)
    print(
        f"ingest: {where}: {read_bytes / 1e6:.1f} MB read, {stats['total_documents']:,} files kept "
        f"({kept:.1f} MB), {cpu:.2f} CPU-s, {wall:.2f} s wall ({kept / wall:.1f} MB/s)",
        flush=True,
    )
    report("ingest: directory tree (MB per CPU-s)", kept / cpu, read_bytes / 1e6 / t_read, "walk + read only")


if __name__ == "__main__":
    main()

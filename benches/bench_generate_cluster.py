"""Generation on Ray actors against one process: the same prompts, the same loopback server.

The loopback server (its own process, latency ``L`` per answer) gets ``--prompts`` prompts from

- ``run_generation`` in this process, at a fixed concurrency ``C`` (adaptive off);
- ``run_generation_cluster`` on a local Ray cluster of two nodes (one CPU each, started here
  before the clock), two actors of concurrency ``C / 2`` each (the same requests in flight);
  the cluster's start-up is not timed.

Printed: wall time, answers per second and the ratio to the single process, the driver's CPU
seconds, and whether both runs answered every prompt exactly once (the journals' keys). On a
latency-bound server the two should match: Ray's share is the actors' start, the ledger's lease
round trips and the driver's merge of the segments.

    python benches/bench_generate_cluster.py [--prompts 2000] [--latency 0.2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_ray import ray_cluster  # noqa: E402
from phicorpus.config import GenerateConfig  # noqa: E402
from phicorpus.corpus import Corpus  # noqa: E402
from phicorpus.generate import GenerationParams, run_generation  # noqa: E402
from phicorpus.generate.cluster import run_generation_cluster  # noqa: E402
from phicorpus.generate.journal import iter_journal, segments  # noqa: E402

SERVER = ROOT / "tests" / "generate" / "fake_server.py"


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--latency", str(latency), "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}/v1"


def prompts_file(directory: Path, n: int) -> Path:
    path = directory / "prompts.parquet"
    msgs = [json.dumps([{"role": "user", "content": f"Write about topic {i}."}]) for i in range(n)]
    pq.write_table(
        pa.table({"id": [f"p-{i}" for i in range(n)], "format": ["textbook"] * n, "messages": msgs}), path
    )
    return path


def answered(corpus: Corpus) -> tuple[int, int]:
    """Answers in the journals, and distinct request keys among them."""
    keys: list[str] = []
    main = corpus.requests_dir / "generate.jsonl"
    for journal in [main, *segments(main)]:
        if journal.is_file():
            keys += [r["key"] for r in iter_journal(journal) if r.get("t") == "result"]
    return len(keys), len(set(keys))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    config = GenerateConfig(
        min_chars=1,
        concurrency=args.concurrency,
        max_concurrency=args.concurrency,
        adaptive=False,
        max_tokens=64,
    )
    params = GenerationParams.from_config(config, seed=1)
    half = dataclasses.replace(
        config, concurrency=args.concurrency // 2, max_concurrency=args.concurrency // 2
    )
    server, url = start_server(args.latency)
    results: dict[str, tuple[float, float, tuple[int, int]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            prompts = prompts_file(work, args.prompts)
            corpus = Corpus.create(work / "single")
            cpu, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            run_generation(corpus, prompts, endpoints=[url], model="m", params=params, max_cost=0.0,
                           config=config, echo=lambda _: None, progress=False)  # fmt: skip
            results["one process"] = (time.perf_counter() - start, _cpu_since(cpu), answered(corpus))
            with ray_cluster(2) as address:
                import ray

                ray.init(address=address, log_to_driver=False)
                corpus = Corpus.create(work / "cluster")
                cpu, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                run_generation_cluster(
                    corpus, prompts, endpoints=[url], model="m", params=params, max_cost=0.0, config=half,
                    workers=2, address=address, echo=lambda _: None,
                )  # fmt: skip
                results["Ray, 2 actors"] = (time.perf_counter() - start, _cpu_since(cpu), answered(corpus))
    finally:
        server.terminate()
        server.wait()
    base = results["one process"][0]
    for name, (seconds, cpu_s, (answers, keys)) in results.items():
        line = (f"generate {args.prompts} prompts, L={args.latency}s, {args.concurrency} in flight  "
                f"{name:<14} {seconds:6.1f} s  {args.prompts / seconds:7.1f} answers/s  "
                f"{base / seconds:5.2f} x one process  driver CPU {cpu_s:5.1f} s  "
                f"answers {answers} ({keys} keys)")  # fmt: skip
        common.REPORTED.append(line)
        print(line, flush=True)


def _cpu_since(before: resource.struct_rusage) -> float:
    now = resource.getrusage(resource.RUSAGE_SELF)
    return (now.ru_utime - before.ru_utime) + (now.ru_stime - before.ru_stime)


if __name__ == "__main__":
    main()

"""Generation client against a loopback OpenAI-compatible server with fixed latency L.

The peer is Little's law: C requests in flight at latency L cannot finish faster than C / L per
second. For each concurrency C this prints ``ours`` (requests/s through ``run_generation``: real
HTTP, the openai SDK, the fsynced journal, Parquet shards and catalog rows) against that ceiling
(goal: ratio >= 0.9), then client CPU per request (goal <= 1 ms) and resident memory along a long
run (goal: flat). The server runs in its own process so its CPU is not counted.

    python benches/bench_generate.py [--latency 0.5] [--concurrency 1,4,16,64,256] [--requests 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.corpus import Corpus
from phicorpus.generate import GenerationParams, run_generation

SERVER = Path(__file__).resolve().parents[1] / "tests" / "generate" / "fake_server.py"


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--latency", str(latency), "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def prompts_file(directory: Path, n: int, tag: str) -> Path:
    path = directory / f"prompts-{tag}.parquet"
    msgs = [json.dumps([{"role": "user", "content": f"Write about topic {tag}-{i}."}]) for i in range(n)]
    pq.write_table(
        pa.table({"id": [f"{tag}-{i}" for i in range(n)], "format": ["textbook"] * n, "messages": msgs}), path
    )
    return path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(
    url: str,
    directory: Path,
    n: int,
    concurrency: int,
    tag: str,
    samples: list[tuple[int, float]] | None = None,
) -> tuple[float, float]:
    """(requests/s, CPU ms per request) of one run of ``n`` requests at ``concurrency``."""
    config = GenerateConfig(
        concurrency=concurrency,
        max_concurrency=concurrency,
        adaptive=False,
        max_tokens=64,
        flush_every=2000,
        flush_seconds=30.0,
        min_chars=1,
        prices={"m": ModelPrice(0.1, 0.4)},
    )
    prompts = prompts_file(directory, n, tag)
    corpus = Corpus.create(directory / f"corpus-{tag}")
    stop = threading.Event()
    if samples is not None:
        journal = corpus.requests_dir / "generate.jsonl"

        def sampler() -> None:
            while not stop.wait(1.0):
                try:
                    done = journal.read_bytes().count(b'"t":"result"') if journal.exists() else 0
                except OSError:
                    continue
                samples.append((done, rss_mb()))

        threading.Thread(target=sampler, daemon=True).start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    stats = run_generation(
        corpus,
        prompts,
        endpoints=[url],
        model="m",
        params=GenerationParams(max_tokens=64),
        max_cost=0.0,
        config=config,
        echo=lambda s: None,
    )
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    assert stats["done"] == n, stats
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return n / wall, cpu / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="server latency L in seconds")
    parser.add_argument("--concurrency", default="1,4,16,64,256")
    parser.add_argument(
        "--per-slot", type=int, default=8, help="requests per concurrency slot (n = C * this)"
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests of the memory run")
    args = parser.parse_args()
    proc, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            directory = Path(tmp)
            for c in (int(x) for x in args.concurrency.split(",")):
                n = max(20, c * args.per_slot)
                rps, cpu_ms = one_run(url, directory, n, c, f"c{c}")
                common.report(
                    f"generate C={c} L={args.latency}s n={n}",
                    rps,
                    c / args.latency,
                    "ceiling C/L",
                    unit="req/s",
                )
                print(f"{'':<44} client CPU {cpu_ms:.3f} ms/request (goal <= 1 ms)", flush=True)
            samples: list[tuple[int, float]] = []
            c = 256
            fast = 0.02
            mem_proc, mem_url = start_server(fast)
            try:
                rps, cpu_ms = one_run(mem_url, directory, args.requests, c, "mem", samples)
            finally:
                mem_proc.kill()
            points = [s for s in samples if s[0] > 0]
            if points:
                first = next((s for s in points if s[0] >= args.requests // 10), points[0])
                last = points[-1]
                line = (
                    f"generate memory n={args.requests} C={c} L={fast}s: RSS {first[1]:.0f} MB at "
                    f"{first[0]} done -> {last[1]:.0f} MB at {last[0]} done; {rps:.0f} req/s, "
                    f"CPU {cpu_ms:.3f} ms/request"
                )
                print(line, flush=True)
                common.REPORTED.append(line)
    finally:
        proc.kill()


if __name__ == "__main__":
    main()

"""Generation client against a loopback OpenAI-compatible server with fixed latency L.

The peer is Little's law: C requests in flight at latency L cannot finish faster than C / L per
second. For each concurrency C this prints ``ours`` (requests/s through ``run_generation``: real
HTTP, the openai SDK, the fsynced journal, Parquet shards and catalog rows) against that ceiling
(goal: ratio >= 0.9 at C=256), then client CPU per request (goal <= 1 ms) and resident memory
along a long run (goal: flat over 100,000 requests).

The figures are the client's: the client (this process) is pinned to one core and the server
process to another (``--cpus 0,1``, as ``taskset -c``), and the server's own CPU is printed next to
each figure (a server near 100% of its core would make the figure the server's). Client CPU is
this process's user + system time over ``run_generation`` (the fsync thread and shard writes
included), less the sampler thread's own time. Throughput is requests over the whole call (probe,
catalog, final flush included) and, in brackets, the steady rate between 10% and 90% done.

    python benches/bench_generate.py [--latency 0.5] [--concurrency 1,16,64,256] [--requests 100000]
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
TICK = os.sysconf("SC_CLK_TCK")


def start_server(latency: float, cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, str(SERVER), "--latency", str(latency), "--no-record"]
    pin = None
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    elif cpu is not None:
        pin = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


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


class Sampler:
    """Every ``every`` seconds: (seconds, results journaled, RSS MB), reading only the journal's new
    bytes; its own CPU time is kept so that it can be left out of the client's."""

    def __init__(self, journal: Path, every: float) -> None:
        self.journal = journal
        self.every = every
        self.samples: list[tuple[float, int, float]] = []
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.perf_counter()
        offset = done = 0
        tail = b""
        while not self._stop.wait(self.every):
            try:
                with open(self.journal, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                chunk = b""
            offset += len(chunk)
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            done += data[:cut].count(b'"t":"result"')
            tail = data[cut:]
            self.samples.append((time.perf_counter() - start, done, rss_mb()))
            self.cpu = time.thread_time()

    def steady_rate(self, n: int) -> float:
        """Results per second between 10% and 90% of ``n`` done (0 when too few samples)."""
        lo = next((s for s in self.samples if s[1] >= n // 10), None)
        hi = next((s for s in self.samples if s[1] >= n - n // 10), None)
        if lo is None or hi is None or hi[0] <= lo[0]:
            return 0.0
        return (hi[1] - lo[1]) / (hi[0] - lo[0])


def one_run(
    url: str, server_pid: int, directory: Path, n: int, concurrency: int, tag: str, every: float
) -> dict[str, float | Sampler]:
    """Throughput, client and server CPU of one run of ``n`` requests at ``concurrency``."""
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
    with Sampler(corpus.requests_dir / "generate.jsonl", every) as sampler:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        server0 = proc_cpu(server_pid)
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
        server1 = proc_cpu(server_pid)
    assert stats["done"] == n, stats
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime) - sampler.cpu
    return {
        "rps": n / wall,
        "steady": sampler.steady_rate(n),
        "cpu_ms": cpu / n * 1000,
        "client_core": cpu / wall,
        "server_ms": (server1 - server0) / n * 1000,
        "server_core": (server1 - server0) / wall,
        "sampler": sampler,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="server latency L in seconds")
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument(
        "--per-slot", type=int, default=20, help="requests per concurrency slot (n = C * this)"
    )
    parser.add_argument("--requests", type=int, default=100000, help="requests of the memory run (0: none)")
    parser.add_argument(
        "--cpus", default="0,1", help="client core,server core (as taskset -c); 'none' to not pin"
    )
    args = parser.parse_args()
    client_cpu = server_cpu = None
    if args.cpus != "none":
        client_cpu, server_cpu = (int(x) for x in args.cpus.split(","))
        os.sched_setaffinity(0, {client_cpu})
    print(
        f"client on cpu {client_cpu}, server on cpu {server_cpu}; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        flush=True,
    )
    proc, url = start_server(args.latency, server_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            directory = Path(tmp)
            for c in (int(x) for x in args.concurrency.split(",") if x):
                n = max(20, c * args.per_slot)
                run = one_run(url, proc.pid, directory, n, c, f"c{c}", 0.25)
                ceiling = c / args.latency
                common.report(
                    f"generate C={c} L={args.latency}s n={n}", float(run["rps"]), ceiling, "ceiling C/L",
                    unit="req/s",
                )  # fmt: skip
                print(
                    f"{'':<44} steady {float(run['steady']) / ceiling:.3f} of C/L; client CPU "
                    f"{run['cpu_ms']:.3f} ms/request (goal <= 1 ms, {run['client_core']:.0%} of its core); "
                    f"server {run['server_ms']:.3f} ms/request ({run['server_core']:.0%} of its core)",
                    flush=True,
                )
            if args.requests:
                c = 256
                fast = 0.02
                mem_proc, mem_url = start_server(fast, server_cpu)
                try:
                    run = one_run(mem_url, mem_proc.pid, directory, args.requests, c, "mem", 1.0)
                finally:
                    mem_proc.kill()
                sampler = run["sampler"]
                assert isinstance(sampler, Sampler)
                points = [s for s in sampler.samples if s[1] > 0]
                if points:
                    first = next((s for s in points if s[1] >= args.requests // 10), points[0])
                    last = points[-1]
                    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    line = (
                        f"generate memory n={args.requests} C={c} L={fast}s: RSS {first[2]:.0f} MB at "
                        f"{first[1]} done -> {last[2]:.0f} MB at {last[1]} done (peak {peak:.0f} MB); "
                        f"{run['rps']:.0f} req/s, client CPU {run['cpu_ms']:.3f} ms/request, server "
                        f"{run['server_ms']:.3f} ms/request ({run['server_core']:.0%} of its core)"
                    )
                    print(line, flush=True)
                    common.REPORTED.append(line)
    finally:
        proc.kill()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()

"""The README's main job: a full build while a reader queries the catalog in a loop, then re-runs
with nothing changed (issue 13: a re-run costs nothing, readers never wait long).

Prints the full build's wall time, the re-run's wall and CPU time (``ratio`` = full / re-run),
and the reader's answers during the build (queries, median and worst latency of
``open_corpus(...).sql`` while ``phicorpus build`` runs). The build runs in a temporary
directory (``PHICORPUS_BENCH_PEOPLE`` people in bioS, default the README's 20,000).

Usage::

    python benches/bench_rerun.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from phicorpus import open_corpus


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _line(name: str, ours: str, peer: str, ratio: float) -> None:
    line = f"{name:<44} ours {ours:>16}  {peer:<30} ratio {ratio:7.2f}x"
    print(line, flush=True)
    common.REPORTED.append(line)


def main() -> None:
    phicorpus = str(Path(sys.executable).with_name("phicorpus"))
    people = int(os.environ.get("PHICORPUS_BENCH_PEOPLE", "20000"))
    with tempfile.TemporaryDirectory(prefix="phicorpus-rerun-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        if people != 20000:
            (corpus / "phicorpus.toml").write_text(f"[build]\nbios_people = {people}\n")
        command = [phicorpus, "build", "--mix", "synthetic:0.8,code:0.2", "--out", str(corpus)]

        latencies: list[float] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                if not (corpus / "catalog.duckdb").is_file():
                    time.sleep(0.1)
                    continue
                start = time.perf_counter()
                open_corpus(corpus).sql("SELECT count(*), count(tokens) FROM documents")
                latencies.append(time.perf_counter() - start)
                time.sleep(0.2)

        thread = threading.Thread(target=reader)
        thread.start()
        start = time.perf_counter()
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        finally:
            full = time.perf_counter() - start
            stop.set()
            thread.join()
        print(f"full build ({people:,} people + the standard library): {full:.1f} s", flush=True)
        if latencies:
            median, worst = statistics.median(latencies), max(latencies)
            _line(
                "reader during build: open_corpus().sql",
                f"{median * 1000:.0f} ms median",
                f"{len(latencies)} queries, worst {worst * 1000:.0f} ms",
                worst / median if median else 0.0,
            )
        times = []
        for _ in range(3):
            cpu = _children_cpu()
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append((time.perf_counter() - start, _children_cpu() - cpu))
        wall, cpu = min(times)
        peer = f"full build {full:.1f} s"
        _line("re-run of the README main job", f"{wall:.2f} s wall", peer, full / wall)
        _line("re-run of the README main job (CPU)", f"{cpu:.2f} s cpu", peer, full / cpu)


if __name__ == "__main__":
    main()

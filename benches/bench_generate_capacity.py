"""Generation against a real server and under sparse faults: the figures of issue 11.

``real``: a real OpenAI-compatible server (``llama_cpp.server`` serving SmolLM2-135M on CPU, one
slot, as the tests run it). The peer is the best plain fixed-concurrency run of the same server
(concurrency 1, 2, 4, 8, adaptive off); ours is ``run_generation`` with its defaults (slots
probed, else measured). Goal: ours >= 0.95 x the best, in output tokens/s. The same run checks
the time estimate: the ETA shown once 5% of the requests (and at least 2) are done, against the
actual run time (goal: within +-30%).

``faults``: the loopback server (its own process) answering 5% of calls 429 (Retry-After 0.2 s)
and 5% 500, against the same server fault-free, at the same fixed concurrency. Goal: >= 0.8 x the
fault-free throughput at 400 and at 4,000 prompts.

    python benches/bench_generate_capacity.py real [--prompts 24] [--max-tokens 48]
    python benches/bench_generate_capacity.py faults [--prompts 400,4000] [--latency 0.05] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "generate"), str(ROOT)]

from bench_generate import prompts_file  # noqa: E402
from phicorpus.config import GenerateConfig  # noqa: E402
from phicorpus.corpus import Corpus  # noqa: E402
from phicorpus.generate import GenerationParams, run_generation  # noqa: E402
from phicorpus.generate.progress import Progress  # noqa: E402

SERVER = ROOT / "tests" / "generate" / "fake_server.py"


def run(url: str, model: str, prompts: Path, work: Path, **cfg: Any) -> dict[str, Any]:
    config = GenerateConfig(**{"min_chars": 1, "flush_seconds": 5.0, **cfg})
    eta: dict[str, float] = {}
    original = Progress.update

    def update(self: Progress, **kw: Any) -> None:
        original(self, **kw)
        if "at" not in eta and self.total and self.done >= max(2, self.total // 20):
            eta["at"], eta["eta"] = time.monotonic(), self.eta() or 0.0

    Progress.update = update  # type: ignore[method-assign]
    start = time.monotonic()
    try:
        stats = run_generation(
            Corpus.create(work), prompts, endpoints=[url], model=model,
            params=GenerationParams.from_config(config, seed=1), max_cost=0.0, config=config,
            echo=lambda _: None, progress=False,
        )  # fmt: skip
    finally:
        Progress.update = original  # type: ignore[method-assign]
    wall = time.monotonic() - start
    predicted = (eta["at"] - start + eta["eta"]) if eta else float("nan")
    return {
        "wall": wall,
        "tok_s": stats["output_tokens"] / wall,
        "req_s": stats["done"] / wall,
        "done": stats["done"],
        "predicted": predicted,
        "concurrency": stats["concurrency"],
    }


def bench_real(args: argparse.Namespace) -> None:
    from tests.llama_server import run_llama_server

    with tempfile.TemporaryDirectory() as tmp, run_llama_server(Path(tmp) / "server.log") as server:
        work = Path(tmp)
        warm = prompts_file(work, 2, "warm")
        run(server.url, server.model, warm, work / "warm", max_tokens=args.max_tokens)
        common_cfg = {"max_tokens": args.max_tokens, "max_continuations": 0}
        sweep = {}
        for c in (1, 2, 4, 8):
            prompts = prompts_file(work, args.prompts, f"c{c}")
            sweep[c] = run(server.url, server.model, prompts, work / f"c{c}", concurrency=c, adaptive=False,
                           **common_cfg)  # fmt: skip
            print(f"fixed concurrency {c}: {sweep[c]['tok_s']:.1f} tokens/s ({sweep[c]['wall']:.1f} s)")
        prompts = prompts_file(work, args.prompts, "ours")
        ours = run(server.url, server.model, prompts, work / "ours", **common_cfg)
        best_c = max(sweep, key=lambda c: sweep[c]["tok_s"])
        ratio = ours["tok_s"] / sweep[best_c]["tok_s"]
        print(f"phicorpus (defaults): {ours['tok_s']:.1f} tokens/s ({ours['wall']:.1f} s), "
              f"concurrency {ours['concurrency']}")  # fmt: skip
        print(f"ratio to the best fixed concurrency ({best_c}): {ratio:.2f} (goal >= 0.95)")
        err = ours["predicted"] / ours["wall"] - 1.0
        print(f"time estimate after 5%: {ours['predicted']:.1f} s predicted, {ours['wall']:.1f} s actual "
              f"({err:+.0%}; goal within +-30%)")  # fmt: skip


def bench_faults(args: argparse.Namespace) -> None:
    def server(*extra: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--latency", str(args.latency), "--no-record", *extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        return proc, f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}/v1"

    clean, clean_url = server()
    faulty, faulty_url = server("--p429", "0.05", "--p500", "0.05", "--retry-after", "0.2")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for n in (int(x) for x in args.prompts.split(",")):
                cfg = {"max_tokens": 64, "concurrency": args.concurrency, "adaptive": False,
                       "flush_every": 1000}  # fmt: skip
                ratios = []
                for rep in range(args.repeat):  # a short run is decided by its retry tail: repeat it
                    tag = f"{n}-{rep}"
                    a = run(clean_url, "m", prompts_file(work, n, f"a{tag}"), work / f"a{tag}", **cfg)
                    b = run(faulty_url, "m", prompts_file(work, n, f"b{tag}"), work / f"b{tag}", **cfg)
                    adaptive = run(faulty_url, "m", prompts_file(work, n, f"d{tag}"), work / f"d{tag}",
                                   max_tokens=64, concurrency=args.concurrency)  # fmt: skip
                    ratios.append(b["req_s"] / a["req_s"])
                    print(
                        f"{n} prompts at concurrency {args.concurrency}: fault-free {a['req_s']:.1f} req/s, "
                        f"5% 429 + 5% 500 {b['req_s']:.1f} req/s "
                        f"(ratio {b['req_s'] / a['req_s']:.2f}, goal >= 0.8); "
                        f"adaptive from {args.concurrency} under faults {adaptive['req_s']:.1f} req/s "
                        f"(ratio {adaptive['req_s'] / a['req_s']:.2f}, final concurrency "
                        f"{adaptive['concurrency']['final']})"
                    )
                if args.repeat > 1:
                    print(f"{n} prompts: median fixed-concurrency ratio of {args.repeat} runs "
                          f"{statistics.median(ratios):.2f} (goal >= 0.8)")  # fmt: skip
    finally:
        for proc in (clean, faulty):
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    real = sub.add_parser("real")
    real.add_argument("--prompts", type=int, default=24)
    real.add_argument("--max-tokens", type=int, default=48)
    faults = sub.add_parser("faults")
    faults.add_argument("--prompts", default="400,4000")
    faults.add_argument("--latency", type=float, default=0.05)
    faults.add_argument("--concurrency", type=int, default=16)
    faults.add_argument("--repeat", type=int, default=1, help="runs per size; prints the median ratio")
    args = parser.parse_args()
    (bench_real if args.what == "real" else bench_faults)(args)


if __name__ == "__main__":
    main()

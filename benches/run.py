"""Run every benchmark in one process, on the same data, and print ``name ours peer ratio`` lines.

Usage::

    .venv/bin/pip install '.[bench]'
    .venv/bin/python benches/run.py [--only tokenize,minhash,filter,build] [--out benches/results.txt]

The corpus is the Python standard library's source plus Debian's /usr/share/doc text, gathered
once into ``benches/data/corpus.jsonl`` (see ``benches/common.py``); every benchmark reads that
same file. The peers are those DESIGN.md names. Figures are throughputs in MB of UTF-8 input per
second; a ratio above 1 means phicorpus is faster. Each benchmark also runs alone:
``python benches/bench_tokenize.py`` (``bench_minhash.py``, ``bench_filter.py``,
``bench_pipeline.py``, ``bench_build.py``, ``bench_prompts.py``, ``bench_rerun.py``,
``bench_loader.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

BENCHES = {
    "tokenize": "bench_tokenize",
    "minhash": "bench_minhash",
    "filter": "bench_filter",
    "pipeline": "bench_pipeline",
    "build": "bench_build",
    "loader": "bench_loader",  # needs torch (the torch extra)
    "prompts": "bench_prompts",
    "generate": "bench_generate",
    "rerun": "bench_rerun",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    parser.add_argument("--out", type=Path, default=None, help="also write the ratio lines to this file")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")

    docs = common.load_corpus()
    header = (
        f"# phicorpus benchmarks  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  "
        f"cores={os.cpu_count()}  corpus={len(docs)} docs, {common.mbytes(docs):.1f} MB"
    )
    print(header, flush=True)
    for name in wanted:
        print(f"\n## {name}", flush=True)
        module = importlib.import_module(BENCHES[name])
        sys.argv = [module.__file__ or name]
        module.main()
    if args.out:
        args.out.write_text("\n".join([header, *common.REPORTED]) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

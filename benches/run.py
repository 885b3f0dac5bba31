"""Run every benchmark in one process, on the same data, and print ``name ours peer ratio`` lines.

Usage::

    .venv/bin/pip install '.[bench]'
    .venv/bin/python benches/run.py [--only tokenize,minhash,filter] [--out benches/results.txt]

The corpus is the Python standard library's source plus Debian's /usr/share/doc text (see
``benches/common.py``); the peers are those DESIGN.md names. Figures are throughputs in MB of
UTF-8 input per second; a ratio above 1 means phicorpus is faster.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="tokenize,minhash,filter", help="comma-separated benchmarks")
    parser.add_argument("--out", type=Path, default=None, help="also write the lines to this file")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]

    docs = common.load_corpus()
    header = (
        f"# phicorpus benchmarks  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  "
        f"cores={common.os.cpu_count()}  corpus={len(docs)} docs {common.mbytes(docs):.1f} MB"
    )
    print(header, flush=True)
    lines = [header]
    for name in wanted:
        if name == "tokenize":
            import bench_tokenize

            lines += bench_tokenize.run(docs, str(bench_tokenize.ensure_tokenizer(docs)))
        elif name == "minhash":
            import bench_minhash

            lines += bench_minhash.run(docs)
        elif name == "filter":
            import bench_filter

            lines += bench_filter.run(docs)
        else:
            parser.error(f"unknown benchmark {name!r}; choose from tokenize, minhash, filter")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

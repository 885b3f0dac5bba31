"""Prompt rendering: 100,000 prompts against the issue's budget of one minute, and their diversity.

The prompts mix textbook, exercises and stories (the default format weights) over the topic
seeds, with web excerpts drawn from the benchmark corpus's ``/usr/share/doc``-style text
documents (25% of topic prompts carry one). There is no peer library for this, so the "peer"
column is the requirement: 100,000 prompts in 60 s (1,667 prompts/s); a ratio above 1 means
faster than required. Also printed: the time of ``prompt_stats`` and the near-duplicate rate
among the prompts (MinHash-LSH candidates over word 5-grams of the user message, confirmed by
exact Jaccard >= 0.8), overall and per format.

    python benches/bench_prompts.py [--n 100000] [--topics DIR]

With no ``--topics`` it uses the packaged seeds, or, where none are installed yet, 20,000
synthetic topics written to a temporary directory (said in the output).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_corpus, report
from phicorpus.config import PromptsConfig
from phicorpus.prompts import WebSample, load_templates, prompt_stats, render_prompts
from phicorpus.topics import default_topics_dir, load_topics, topic_files

BUDGET_S = 60.0
N_WEB = 5000

_WORD_TEXT = (
    "energy force matrix vector cell protein market price river climate poem novel treaty empire "
    "function loop list graph tree fraction angle triangle circle probability sample variance "
    "enzyme atom molecule bond wave light sound heat orbit planet star galaxy law court contract"
)
_WORDS = _WORD_TEXT.split()


def synthetic_topics(root: Path, n: int = 20_000) -> Path:
    """``n`` distinct leaves in 50 subjects, shaped like the real seeds."""
    per_subject = n // 50
    for s in range(50):
        lines = [f"# Subject {s}", ""]
        for i in range(per_subject):
            if i % 150 == 0:
                lines.append(f"## Course {i // 150}")
            if i % 10 == 0:
                lines.append(f"### Unit {i // 10}")
            w = [_WORDS[(s * 7 + i * k) % len(_WORDS)] for k in (1, 3, 5)]
            lines.append(f"- Subject {s} leaf {i} on the {w[0]} of {w[1]} and {w[2]}")
        (root / f"subject-{s:02d}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def web_samples() -> list[WebSample]:
    docs = [d for d in load_corpus() if not d.lstrip().startswith(("#", "import", '"""', "from"))]
    return [WebSample(f"doc-{i}", text) for i, text in enumerate(docs[:N_WEB])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--topics", type=Path, default=None)
    args = parser.parse_args()

    tmp = None
    topics_dir = args.topics
    if topics_dir is None and not topic_files(default_topics_dir()):
        tmp = tempfile.TemporaryDirectory()
        topics_dir = synthetic_topics(Path(tmp.name))
        print("topics: no packaged seeds installed, using 20,000 synthetic topics", flush=True)
    config = PromptsConfig(topics_dir=str(topics_dir) if topics_dir else "")
    topics = load_topics(config.topics_dir or None)
    templates = load_templates()
    web = web_samples()
    print(f"topics={len(topics)}  web samples={len(web)}  prompts={args.n}", flush=True)

    start = time.perf_counter()
    table = render_prompts(args.n, seed=0, config=config, web=web, topics=topics, templates=templates)
    seconds = time.perf_counter() - start
    report(
        f"render_prompts {args.n} prompts ({seconds:.1f} s)",
        args.n / seconds,
        100_000 / BUDGET_S,
        "budget 100k/60s",
        unit="p/s",
    )
    start = time.perf_counter()
    stats = prompt_stats(table, templates=templates, n_topics=len(topics))
    stats_s = time.perf_counter() - start
    print(f"prompt_stats: {stats_s:.1f} s", flush=True)
    by_format = ", ".join(f"{k} {v:.1%}" for k, v in stats["near_duplicate_rate_by_format"].items())
    print(
        f"near-duplicate rate among prompts: {stats['near_duplicate_rate']:.1%} overall ({by_format}); "
        f"topics covered {stats['topics_covered']}/{len(topics)}, max uses {stats['max_topic_uses']}, "
        f"web share {stats['web_share']:.1%}",
        flush=True,
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

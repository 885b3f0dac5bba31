"""``grade``: an LLM judge scores a sample of documents with a parseable rubric; scores go to the catalog.

Rubrics:

- ``tinystories`` (stories): grammar, creativity and consistency, each 1-10, as in TinyStories'
  GPT-4 evaluation;
- ``edu`` (everything else): educational value 0-5, the additive scale of phi-1's annotation and
  FineWeb-Edu's prompt.

The judge answers in fixed ``Name: <number>`` lines, parsed by :func:`parse_scores`; an answer that
does not parse is counted, not guessed. Requests go through the same engine as generation (journal
``requests/grade.jsonl``, retries, limits, cost cap), so a re-run pays for no document twice.

Example:
    >>> parse_scores("Grammar: 8/10\\nCreativity: 6\\nConsistency: 9", "tinystories")
    {'grammar': 8.0, 'creativity': 6.0, 'consistency': 9.0}
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig
from phicorpus.corpus import Corpus
from phicorpus.generate.cost import model_price
from phicorpus.generate.engine import Engine
from phicorpus.generate.journal import RequestJournal
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import Request, request_key

__all__ = ["RUBRICS", "grade", "parse_scores"]

RUBRICS: dict[str, dict[str, tuple[float, float]]] = {
    "tinystories": {"grammar": (1, 10), "creativity": (1, 10), "consistency": (1, 10)},
    "edu": {"educational_value": (0, 5)},
}

JUDGE = {
    "tinystories": (
        "You grade short stories written for young children by a student. Judge grammar (is the "
        "English correct?), creativity (is the plot original and engaging?) and consistency (does the "
        "story make sense and stay consistent with its beginning?). Answer with exactly these three "
        "lines and nothing else:\nGrammar: <1-10>\nCreativity: <1-10>\nConsistency: <1-10>"
    ),
    "edu": (
        "You rate the educational value of a text for teaching a student, on an additive 0-5 scale: "
        "+1 if it gives some basic information relevant to an educational topic; +1 if it addresses "
        "elements of a school or university subject coherently; +1 if it is appropriate for education "
        "and introduces key concepts; +1 if it is highly relevant and beneficial, like a textbook "
        "chapter or tutorial, with exercises or worked examples; +1 if it is outstanding in its "
        "educational value, like a great textbook. Answer with exactly one line and nothing else:\n"
        "Educational value: <0-5>"
    ),
}

_LINE = re.compile(r"^\s*\**\s*([A-Za-z ]+?)\s*\**\s*:\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*\d+)?", re.MULTILINE)


def parse_scores(text: str, rubric: str) -> dict[str, float] | None:
    """The rubric's scores from a judge's answer, or None if any is missing or out of range."""
    wanted = RUBRICS[rubric]
    found: dict[str, float] = {}
    for name, value in _LINE.findall(text or ""):
        metric = name.strip().lower().replace(" ", "_")
        if metric in wanted and metric not in found:
            found[metric] = float(value)
    if set(found) != set(wanted):
        return None
    for metric, (low, high) in wanted.items():
        if not low <= found[metric] <= high:
            return None
    return {m: found[m] for m in wanted}


def rubric_for(source: str) -> str:
    return "tinystories" if source == "stories" else "edu"


def _sample_docs(
    catalog: Catalog, n: int, seed: int, sources: Sequence[str] | None
) -> list[tuple[str, str, str, int]]:
    rows = catalog.exec('SELECT id, source, file, "row" FROM documents WHERE drop_stage IS NULL ORDER BY id')
    docs = [(r[0], r[1], r[2], int(r[3])) for r in rows if not sources or r[1] in sources]
    random.Random(seed).shuffle(docs)
    return docs[:n]


def grade(
    corpus: Corpus,
    *,
    sample: int,
    endpoints: Sequence[str],
    model: str,
    config: GenerateConfig,
    max_cost: float = 0.0,
    api_key: str = "",
    seed: int = 0,
    sources: Sequence[str] | None = None,
    max_chars: int = 12000,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score ``sample`` random kept documents with the judge ``model``; returns statistics."""
    price = model_price(model, config)
    if max_cost > 0 and price is None:
        raise ValueError(f"model {model!r} has no price in [generate.prices]; cannot enforce --max-cost")
    with Catalog.open(corpus) as catalog, RequestJournal.open(corpus.requests_dir / "grade.jsonl") as journal:
        run_id = catalog.start_stage("grade", {"sample": sample, "model": model, "seed": seed})
        docs = _sample_docs(catalog, sample, seed, sources)
        by_file: dict[str, list[tuple[str, str, int]]] = {}
        for doc_id, source, file, row in docs:
            by_file.setdefault(file, []).append((doc_id, source, row))
        requests: list[Request] = []
        api = {"temperature": 0.0, "max_tokens": 40}
        for file, items in by_file.items():
            texts = pq.read_table(corpus.absolute(file), columns=["text"]).column("text")
            for doc_id, source, row in items:
                rubric = rubric_for(source)
                messages = (
                    {"role": "system", "content": JUDGE[rubric]},
                    {"role": "user", "content": str(texts[row].as_py() or "")[:max_chars]},
                )
                key = request_key(model, api, messages, 0)
                requests.append(Request(key, doc_id, 0, rubric, messages, api, {"source": source}))
        todo = [r for r in requests if r.key not in journal.results]

        async def on_result(request: Request, record: dict[str, Any]) -> None:
            return None

        engine = Engine(
            journal=journal,
            urls=endpoints,
            api_key=api_key,
            model=model,
            config=config,
            price=price,
            max_cost=max_cost,
            progress=Progress(len(todo), enabled=False),
            on_result=on_result,
            purpose="grade",
        )
        if todo:
            asyncio.run(engine.run(todo))
        scored, unparsed = 0, 0
        answers = journal.full_results({r.key for r in requests})
        with catalog.transaction():
            for request in requests:
                record = answers.get(request.key)
                if record is None:
                    continue
                scores = parse_scores(str(record.get("text") or ""), request.fmt)
                if scores is None:
                    unparsed += 1
                    continue
                scored += 1
                for metric, value in scores.items():
                    catalog.exec(
                        "INSERT OR REPLACE INTO scores (doc_id, rubric, metric, value, judge) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [request.prompt_id, request.fmt, metric, value, model],
                    )
        stats = {
            "sampled": len(docs),
            "sent": engine.stats.sent,
            "scored": scored,
            "unparsed": unparsed,
            "failed": engine.stats.failed,
            "spent_usd": round(engine.meter.spent, 6),
            "stop_reason": engine.stats.stop_reason,
        }
        catalog.finish_stage(run_id, stats)
    echo(f"grade: {scored} of {len(docs)} documents scored by {model} ({unparsed} answers did not parse)")
    return stats

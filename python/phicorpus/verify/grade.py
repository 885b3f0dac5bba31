"""``grade``: an LLM judge scores a sample of documents with a parseable rubric; scores go to the catalog.

Rubrics:

- ``tinystories`` (stories): grammar, creativity and consistency, each 1-10, as in TinyStories'
  GPT-4 evaluation;
- ``edu`` (everything else): educational value 0-5, the additive scale of phi-1's annotation and
  FineWeb-Edu's prompt.

The judge answers in fixed ``Name: <number>`` lines, parsed by :func:`parse_scores`; an answer that
does not parse is counted, not guessed. Requests go through the same engine as generation (journal
``requests/grade.jsonl``, retries, limits, cost cap), so a re-run pays for no document twice.
:func:`judge_documents` is the judging on its own; ``phicorpus classifier annotate --model`` uses it
with the ``edu`` rubric to label the classifier's sample (sharing the journal: a document ``grade``
already scored on that rubric is not paid for again).

Example:
    >>> parse_scores("Grammar: 8/10\\nCreativity: 6\\nConsistency: 9", "tinystories")
    {'grammar': 8.0, 'creativity': 6.0, 'consistency': 9.0}
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig, ModelPrice
from phicorpus.corpus import Corpus
from phicorpus.generate.cost import model_price
from phicorpus.generate.engine import Engine
from phicorpus.generate.journal import RequestJournal
from phicorpus.generate.probe import probe_server
from phicorpus.generate.progress import Progress
from phicorpus.generate.requests import Request, request_key
from phicorpus.generate.run import local_price

__all__ = [
    "RUBRICS",
    "Judgement",
    "grade",
    "judge_documents",
    "parse_scores",
    "sample_documents",
    "store_scores",
]

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


def sample_documents(
    catalog: Catalog, n: int, seed: int, sources: Sequence[str] | None = None
) -> list[tuple[str, str, str, int]]:
    """``n`` kept documents as ``(id, source, file, row)``, a seeded shuffle of all of them cut at ``n``.

    The same seed gives the same order, so a larger ``n`` extends a smaller one's sample.
    """
    rows = catalog.exec('SELECT id, source, file, "row" FROM documents WHERE drop_stage IS NULL ORDER BY id')
    docs = [(r[0], r[1], r[2], int(r[3])) for r in rows if not sources or r[1] in sources]
    random.Random(seed).shuffle(docs)
    return docs[:n]


@dataclass
class Judgement:
    """What the judge said about a set of documents.

    Attributes:
        scores: document id -> {metric: value}, for the documents whose answer parsed.
        rubrics: document id -> the rubric it was judged on (for those in ``scores``).
        stats: sampled, sent (attempts put on the wire), scored, unparsed, failed, spent_usd,
            stop_reason.
    """

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    rubrics: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def judge_documents(
    corpus: Corpus,
    docs: Sequence[tuple[str, str, str, int]],
    *,
    endpoints: Sequence[str],
    model: str,
    config: GenerateConfig,
    max_cost: float = 0.0,
    api_key: str = "",
    rubric: str | None = None,
    max_chars: int = 12000,
) -> Judgement:
    """Have the judge ``model`` score ``docs`` (``(id, source, file, row)``, as :func:`sample_documents`).

    ``rubric`` is one of :data:`RUBRICS`, or None for each document's own (:func:`rubric_for`).
    Requests go through the generation engine with the journal ``requests/grade.jsonl``: a key
    answered before (by ``grade`` or ``classifier annotate``) is read back, not sent, and documents
    with the same text share one request. An answer that does not parse is counted, not guessed.

    Example:
        >>> judged = judge_documents(corpus, docs, endpoints=[url], model="m", config=cfg,
        ...                          rubric="edu")  # doctest: +SKIP
        >>> judged.scores["code/0a1b"]  # doctest: +SKIP
        {'educational_value': 3.0}
    """
    price = model_price(model, config)
    if price is None and local_price(endpoints):
        price = ModelPrice(0.0, 0.0)  # a judge the operator runs: $0
    if max_cost > 0 and price is None:
        raise ValueError(f"model {model!r} has no price in [generate.prices]; cannot enforce --max-cost")
    api = {"temperature": 0.0, "max_tokens": 40}
    # Documents are cut to what the judge's context holds (where the server says it), at a
    # conservative 3 characters per token after the rubric and the answer's room.
    context = _context(endpoints, api_key)
    if context:
        max_chars = max(200, min(max_chars, (context - 400 - int(api["max_tokens"])) * 3))
    by_file: dict[str, list[tuple[str, str, int]]] = {}
    for doc_id, source, file, row in docs:
        by_file.setdefault(file, []).append((doc_id, source, row))
    asked: list[tuple[str, Request]] = []  # (document id, its request) in the order of docs' files
    for file, items in by_file.items():
        texts = pq.read_table(corpus.absolute(file), columns=["text"]).column("text")
        for doc_id, source, row in items:
            doc_rubric = rubric or rubric_for(source)
            messages = (
                {"role": "system", "content": JUDGE[doc_rubric]},
                {"role": "user", "content": str(texts[row].as_py() or "")[:max_chars]},
            )
            key = request_key(model, api, messages, 0)
            asked.append((doc_id, Request(key, doc_id, 0, doc_rubric, messages, api, {"source": source})))
    with RequestJournal.open(corpus.requests_dir / "grade.jsonl") as journal:
        # One request per key: documents with the same text (duplicates not yet removed) are paid once.
        unique = list({r.key: r for _, r in asked}.values())
        todo = [r for r in unique if r.key not in journal.results]

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
        engine.possibly_billed_before(todo)
        if todo:
            asyncio.run(engine.run(todo))
        answers = journal.full_results({r.key for r in unique})
    record_judge_requests(corpus, model, unique, answers, engine.stats.failures)
    judged = Judgement()
    unparsed = 0
    for doc_id, request in asked:
        record = answers.get(request.key)
        if record is None:
            continue
        scores = parse_scores(str(record.get("text") or ""), request.fmt)
        if scores is None:
            unparsed += 1
            continue
        judged.scores[doc_id] = scores
        judged.rubrics[doc_id] = request.fmt
    judged.stats = {
        "sampled": len(docs),
        "sent": engine.stats.sent,
        "scored": len(judged.scores),
        "unparsed": unparsed,
        "failed": engine.stats.failed,
        "errors": dict(engine.stats.errors),
        "spent_usd": round(engine.meter.spent, 6),
        "stop_reason": engine.stats.stop_reason,
        "max_chars": max_chars,
    }
    return judged


def _context(endpoints: Sequence[str], api_key: str) -> int | None:
    """The smallest context any of ``endpoints`` reports (None when none says)."""
    if not endpoints:
        return None

    async def ask() -> list[int]:
        infos = await asyncio.gather(*(probe_server(u, api_key=api_key) for u in endpoints))
        return [i.context for i in infos if i.context]

    found = asyncio.run(ask())
    return min(found) if found else None


def record_judge_requests(
    corpus: Corpus,
    model: str,
    requests: Sequence[Request],
    answers: dict[str, dict[str, Any]],
    failures: Sequence[tuple[Request, dict[str, Any]]],
) -> None:
    """Upsert the judge's requests into the catalog's ``requests`` (purpose ``grade``, with cost)."""
    failed = {r.key: rec for r, rec in failures}
    rows = []
    for request in requests:
        record = answers.get(request.key)
        if record is not None:
            usage = record.get("usage") or {}
            rows.append([
                request.key, request.prompt_id, model, record.get("endpoint"), "done",
                int(record.get("attempt") or 0), record.get("finish_reason"),
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                float(record.get("cost") or 0.0), None, request.prompt_id,
            ])  # fmt: skip
        elif request.key in failed:
            rec = failed[request.key]
            rows.append([
                request.key, request.prompt_id, model, rec.get("endpoint"), "failed",
                int(rec.get("attempt") or 0), None, None, None, 0.0, str(rec.get("reason") or ""),
                request.prompt_id,
            ])  # fmt: skip
    if not rows:
        return
    with Catalog.open(corpus) as catalog, catalog.transaction():
        for row in rows:
            catalog.exec(
                "INSERT OR REPLACE INTO requests (key, purpose, prompt_id, sample, model, endpoint, status, "
                "attempts, finish_reason, prompt_tokens, completion_tokens, cost, error, doc_id) "
                "VALUES (?, 'grade', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )


def store_scores(catalog: Catalog, judged: Judgement, judge: str) -> None:
    """Write ``judged``'s scores to the catalog's ``scores`` table (replacing earlier ones)."""
    with catalog.transaction():
        for doc_id, scores in judged.scores.items():
            for metric, value in scores.items():
                catalog.exec(
                    "INSERT OR REPLACE INTO scores (doc_id, rubric, metric, value, judge) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [doc_id, judged.rubrics[doc_id], metric, value, judge],
                )


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
    with Catalog.open(corpus) as catalog:
        run_id = catalog.start_stage("grade", {"sample": sample, "model": model, "seed": seed})
        if sources:
            kept = catalog.exec("SELECT DISTINCT source FROM documents WHERE drop_stage IS NULL")
            have = {str(r[0]) for r in kept}
            unknown = sorted(set(sources) - have)
            if unknown:
                raise ValueError(
                    f"--sources {','.join(unknown)}: no kept documents of that source "
                    f"(sources: {', '.join(sorted(have)) or 'none'})"
                )
        docs = sample_documents(catalog, sample, seed, sources)
        judged = judge_documents(
            corpus,
            docs,
            endpoints=endpoints,
            model=model,
            config=config,
            max_cost=max_cost,
            api_key=api_key,
            max_chars=max_chars,
        )
        store_scores(catalog, judged, model)
        stats = judged.stats
        catalog.finish_stage(run_id, stats)
    errors = ", ".join(f"{k} {v}" for k, v in sorted(stats["errors"].items()))
    echo(
        f"grade: {stats['scored']} of {len(docs)} documents scored by {model} "
        f"({stats['unparsed']} answers did not parse, {stats['failed']} requests failed"
        + (f": {errors}" if errors else "")
        + f"), ${stats['spent_usd']:.4f}"
        + (f"; stopped: {stats['stop_reason']}" if stats["stop_reason"] else "")
    )
    return stats

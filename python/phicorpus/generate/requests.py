"""Requests: prompts turned into keyed chat requests, and the Parquet/catalog writer of results.

A request key is the sha256 of the model, the API parameters, the messages and the sample index,
so the same prompt asked again with the same settings is the same request: the journal then
knows it was paid for. The document id of its response is ``"<format>/" + key[:16]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog
from phicorpus.config import GenerateConfig
from phicorpus.corpus import Corpus, atomic_path
from phicorpus.generate.postprocess import opener, process_output
from phicorpus.prompts.rephrase import REPHRASE_FORMATS

__all__ = ["GenerationParams", "Request", "ShardWriter", "build_requests", "load_prompts", "request_key"]

FORMATS = ("textbook", "exercises", "stories", "rewrite", *REPHRASE_FORMATS)
#: Prompt columns of rephrase prompts carried to their documents (the source chunk they rewrite).
REPHRASE_META = ("source_id", "chunk", "chunks", "chunk_start", "chunk_end", "route", "quality")
RESTATE_GATED = frozenset({"textbook", "exercises", "stories"})  # answers that must not restate the prompt


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters; ``samples`` responses per prompt (ReST^EM), seed offset by sample index."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    seed: int | None = None
    samples: int = 1

    @classmethod
    def from_config(cls, config: GenerateConfig, **overrides: Any) -> GenerationParams:
        values: dict[str, Any] = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
            "seed": config.seed if config.seed >= 0 else None,
            "samples": config.samples,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def api(self, sample: int) -> dict[str, Any]:
        """The API parameters of sample ``sample`` (what is sent, and what the key hashes)."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            out["seed"] = self.seed + sample
        return out


@dataclass(frozen=True, slots=True)
class Request:
    key: str
    prompt_id: str
    sample: int
    fmt: str
    messages: tuple[dict[str, str], ...]
    api: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        return f"{self.fmt}/{self.key[:16]}"


def request_key(
    model: str, api: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], sample: int
) -> str:
    blob = json.dumps(
        {"model": model, "params": dict(api), "messages": list(messages), "sample": sample},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _messages(row: Mapping[str, Any], where: str) -> tuple[dict[str, str], ...]:
    raw = row.get("messages")
    if raw:
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: messages is not valid JSON ({exc})") from exc
        if not isinstance(parsed, list) or not all(isinstance(m, Mapping) and "role" in m for m in parsed):
            raise ValueError(f"{where}: messages must be a JSON list of {{role, content}} objects")
        return tuple({"role": str(m["role"]), "content": str(m.get("content", ""))} for m in parsed)
    system, user = row.get("system"), row.get("user")
    if not user:
        raise ValueError(f"{where}: a prompt needs 'messages' or 'user' (and optionally 'system')")
    out = [{"role": "system", "content": str(system)}] if system else []
    out.append({"role": "user", "content": str(user)})
    return tuple(out)


META = (
    "topic_id",
    "topic_path",
    "subject",
    "audience",
    "style",
    "features",
    "words",
    "expected_tokens",
    "web_id",
    "answer_format",
    *REPHRASE_META,
)


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a prompts Parquet file (``id``, ``format``, ``messages`` or ``system``+``user``, ...)."""
    table = pq.read_table(path)
    missing = {"id", "format"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: prompts need columns id and format (missing {', '.join(sorted(missing))})")
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def build_requests(
    rows: Sequence[Mapping[str, Any]], model: str, params: GenerationParams, *, where: str = "prompts"
) -> list[Request]:
    out: list[Request] = []
    for i, row in enumerate(rows):
        loc = f"{where} row {i} (id {row.get('id')!r})"
        fmt = str(row.get("format") or "")
        if fmt not in FORMATS:
            raise ValueError(f"{loc}: format {fmt!r} is not one of {', '.join(FORMATS)}")
        messages = _messages(row, loc)
        meta = {k: row[k] for k in META if row.get(k) is not None}
        for sample in range(params.samples):
            api = params.api(sample)
            key = request_key(model, api, messages, sample)
            out.append(Request(key, str(row["id"]), sample, fmt, messages, api, meta))
    return out


_PART = re.compile(r"part-(\d+)\.parquet$")


class ShardWriter:
    """Writes received responses as ``docs/<format>/part-NNNNN.parquet`` + catalog rows, once each."""

    def __init__(self, corpus: Corpus, catalog: Catalog | None, config: GenerateConfig, model: str) -> None:
        """``catalog``: a connection to use, or None to open the catalog only while publishing a shard
        (a run of hours or days then leaves it free for ``phicorpus sql`` in between)."""
        self.corpus = corpus
        self.catalog = catalog
        self.config = config
        self.model = model
        self.written: set[str] = set()  # doc ids in the catalog
        self.docs = 0
        self.dropped: dict[str, int] = {}
        self.shards = 0
        with self._session() as cat:
            for fmt in FORMATS:
                rows = cat.exec("SELECT id FROM documents WHERE source = ?", [fmt])
                self.written.update(r[0] for r in rows)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Catalog]:
        if self.catalog is not None:
            yield self.catalog
        else:
            with Catalog.open(self.corpus) as catalog:
                yield catalog

    def has(self, request: Request) -> bool:
        return request.doc_id in self.written

    def _next_path(self, catalog: Catalog, fmt: str) -> Path:
        numbers = [int(m.group(1)) for s in catalog.shards("docs", fmt) if (m := _PART.search(s.path))]
        return self.corpus.docs_dir(fmt) / f"part-{(max(numbers) + 1) if numbers else 0:05d}.parquet"

    def write(self, items: Sequence[tuple[Request, Mapping[str, Any]]]) -> int:
        """Publish ``(request, journal result record)`` pairs not yet in the catalog; returns how many."""
        by_fmt: dict[str, list[tuple[Request, Mapping[str, Any]]]] = {}
        seen: set[str] = set()
        for request, record in items:
            if request.doc_id in self.written or request.doc_id in seen:
                continue
            seen.add(request.doc_id)
            by_fmt.setdefault(request.fmt, []).append((request, record))
        total = 0
        for fmt, group in by_fmt.items():
            total += self._write_group(fmt, group)
        return total

    def _write_group(self, fmt: str, group: Sequence[tuple[Request, Mapping[str, Any]]]) -> int:
        cols: dict[str, list[Any]] = {
            name: []
            for name in (
                "id",
                "text",
                "prompt_id",
                "sample",
                "request_key",
                "model",
                "endpoint",
                "finish_reason",
                "prompt_tokens",
                "completion_tokens",
                "cost",
                "topic_id",
                "subject",
                "audience",
                "style",
                "words",
                "missing_words",
                "problem",
                "solution",
                "tests",
                "drop_reason",
                "source_id",
                "chunk",
                "reasoning",
            )
        }
        drops: dict[str, int] = {}
        items: list[int | None] = []
        for request, record in group:
            usage = record.get("usage") or {}
            meta = request.meta
            words = [str(w) for w in (meta.get("words") or [])]
            processed = process_output(
                str(record.get("text") or ""),
                record.get("finish_reason"),
                fmt,
                min_chars=self.config.min_chars,
                words=words,
                answer_format=meta.get("answer_format"),
                # rewrites (and rephrasings) restate their source by design: not gated
                prompt="\n".join(m.get("content", "") for m in request.messages if m.get("role") == "user")
                if fmt in RESTATE_GATED
                else "",
            )
            if processed.drop_reason:
                drops[processed.drop_reason] = drops.get(processed.drop_reason, 0) + 1
            ex = processed.exercise
            items.append(processed.items)
            values = {
                "id": request.doc_id,
                "text": processed.text,
                "prompt_id": request.prompt_id,
                "sample": request.sample,
                "request_key": request.key,
                "model": record.get("model") or self.model,
                "endpoint": record.get("endpoint"),
                "finish_reason": record.get("finish_reason"),
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "completion_tokens": int(usage.get("completion_tokens") or 0),
                "cost": float(record.get("cost") or 0.0),
                "topic_id": meta.get("topic_id"),
                "subject": meta.get("subject"),
                "audience": meta.get("audience"),
                "style": meta.get("style"),
                "words": words,
                "missing_words": list(processed.missing_words),
                "problem": ex.problem if ex else None,
                "solution": ex.solution_code if ex else None,
                "tests": ex.tests_code if ex else None,
                "drop_reason": processed.drop_reason,
                "source_id": meta.get("source_id"),
                "chunk": meta.get("chunk"),
                "reasoning": processed.reasoning,
            }
            for name, value in values.items():
                cols[name].append(value)
        schema = pa.schema(
            [
                ("id", pa.string()),
                ("text", pa.string()),
                ("prompt_id", pa.string()),
                ("sample", pa.int32()),
                ("request_key", pa.string()),
                ("model", pa.string()),
                ("endpoint", pa.string()),
                ("finish_reason", pa.string()),
                ("prompt_tokens", pa.int64()),
                ("completion_tokens", pa.int64()),
                ("cost", pa.float64()),
                ("topic_id", pa.string()),
                ("subject", pa.string()),
                ("audience", pa.string()),
                ("style", pa.string()),
                ("words", pa.list_(pa.string())),
                ("missing_words", pa.list_(pa.string())),
                ("problem", pa.string()),
                ("solution", pa.string()),
                ("tests", pa.string()),
                ("drop_reason", pa.string()),
                ("source_id", pa.string()),
                ("chunk", pa.int32()),
                ("reasoning", pa.string()),
            ]
        )
        table = pa.table(cols, schema=schema)
        with self._session() as catalog:
            self._publish(catalog, fmt, group, cols, table, drops, items)
        return len(cols["id"])

    def _publish(
        self,
        catalog: Catalog,
        fmt: str,
        group: Sequence[tuple[Request, Mapping[str, Any]]],
        cols: dict[str, list[Any]],
        table: pa.Table,
        drops: dict[str, int],
        items: Sequence[int | None] = (),
    ) -> None:
        path = self._next_path(catalog, fmt)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        rel = self.corpus.relative(path)
        texts = cols["text"]
        docs = pa.table(
            {
                "id": cols["id"],
                "source": [fmt] * len(texts),
                "kind": [fmt] * len(texts),
                "file": [rel] * len(texts),
                "row": list(range(len(texts))),
                "provenance": [
                    json.dumps(
                        {
                            "request_key": r.key,
                            "sample": r.sample,
                            "params": r.api,
                            "model": cols["model"][i],
                            "opener": opener(texts[i]),
                        },
                        sort_keys=True,
                    )
                    for i, (r, _) in enumerate(group)
                ],
                "chars": [len(t) for t in texts],
                "bytes": [len(t.encode()) for t in texts],
                "lines": [t.count("\n") + 1 if t else 0 for t in texts],
                "language": ["en"] * len(texts),
                "topic_id": cols["topic_id"],
                "subject": cols["subject"],
                "format": [fmt] * len(texts),
                "audience": cols["audience"],
                "prompt_id": cols["prompt_id"],
                "drop_stage": ["generate" if d else None for d in cols["drop_reason"]],
                "drop_reason": cols["drop_reason"],
            }
        )
        reqs = pa.table(
            {
                "key": cols["request_key"],
                "purpose": ["generate"] * len(texts),
                "prompt_id": cols["prompt_id"],
                "sample": cols["sample"],
                "model": cols["model"],
                "endpoint": cols["endpoint"],
                "status": ["done"] * len(texts),
                "attempts": [int(rec.get("attempt") or 1) for _, rec in group],
                "finish_reason": cols["finish_reason"],
                "prompt_tokens": cols["prompt_tokens"],
                "completion_tokens": cols["completion_tokens"],
                "cost": cols["cost"],
                "doc_id": cols["id"],
            }
        )
        with catalog.transaction():
            rephrase = fmt in REPHRASE_FORMATS
            catalog.ensure_source(fmt, "rephrased" if rephrase else "synthetic", f"LLM {self.model}")
            catalog.register_shard(
                path,
                "docs",
                rows=len(texts),
                source=fmt,
                stage="generate",
            )
            catalog.insert_documents(docs)
            catalog.con.register("_phicorpus_new_requests", reqs)
            try:
                catalog.exec("INSERT OR REPLACE INTO requests BY NAME SELECT * FROM _phicorpus_new_requests")
            finally:
                catalog.con.unregister("_phicorpus_new_requests")
            catalog.add_drop_counts("generate", fmt, drops)
            if rephrase:
                self._record_rephrases(catalog, group, cols, items)
        self.written.update(cols["id"])
        self.docs += len(texts)
        self.shards += 1
        for reason, n in drops.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def _record_rephrases(
        self,
        catalog: Catalog,
        group: Sequence[tuple[Request, Mapping[str, Any]]],
        cols: dict[str, list[Any]],
        items: Sequence[int | None],
    ) -> None:
        """``rephrases`` rows: which original and chunk each rephrased document rewrites."""
        metas = [r.meta for r, _ in group]
        table = pa.table(
            {
                "doc_id": cols["id"],
                "source_id": [str(m.get("source_id") or "") for m in metas],
                "format": [r.fmt for r, _ in group],
                "chunk": pa.array([int(m.get("chunk") or 0) for m in metas], pa.int32()),
                "chunks": pa.array([int(m.get("chunks") or 1) for m in metas], pa.int32()),
                "chunk_start": [int(m.get("chunk_start") or 0) for m in metas],
                "chunk_end": [int(m.get("chunk_end") or 0) for m in metas],
                "route": [m.get("route") for m in metas],
                "quality": pa.array([m.get("quality") for m in metas], pa.float64()),
                "reasoning": cols["reasoning"],
                "structure_items": pa.array(list(items) or [None] * len(metas), pa.int32()),
            }
        )
        catalog.con.register("_phicorpus_new_rephrases", table)
        try:
            catalog.exec("INSERT OR REPLACE INTO rephrases BY NAME SELECT * FROM _phicorpus_new_rephrases")
        finally:
            catalog.con.unregister("_phicorpus_new_rephrases")

    def record_failures(self, failures: Sequence[tuple[Request, Mapping[str, Any]]]) -> None:
        """Upsert ``requests`` rows of keys that failed for good in this run."""
        if not failures:
            return
        with self._session() as catalog, catalog.transaction():
            for request, record in failures:
                catalog.exec(
                    "INSERT OR REPLACE INTO requests (key, purpose, prompt_id, sample, model, endpoint, "
                    "status, "
                    "attempts, error) VALUES (?, 'generate', ?, ?, ?, ?, 'failed', ?, ?)",
                    [
                        request.key,
                        request.prompt_id,
                        request.sample,
                        self.model,
                        record.get("endpoint"),
                        int(record.get("attempt") or 0),
                        str(record.get("reason") or ""),
                    ],
                )

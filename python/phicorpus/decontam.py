"""Benchmark decontamination: an n-gram index (13-grams by default, as GPT-3 and Megatron) over
benchmark files, queried by every kept document in parallel in Rust.

Benchmarks are JSONL or Parquet files; the text fields named in ``DecontamConfig.fields`` (those
present in a record) are indexed, each file being one benchmark named by its file stem. A
document with at least ``min_hits`` overlapping n-grams is dropped (``drop_reason =
'contaminated:<benchmark>'``) or, with ``mode = "flag"``, only gets ``decontam_hits``. The
decisions and the hits per benchmark are written in one transaction at the end, so a killed run
leaves no partial decision.

Example:
    >>> run_decontam(Corpus.open("corpus/"), [Path("humaneval.jsonl")], DecontamConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus import _core
from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import DecontamConfig
from phicorpus.corpus import Corpus, atomic_path, read_texts
from phicorpus.stage import Executor, UnitResult, WorkUnit, marker_path, run_stage

__all__ = ["DecontamStage", "benchmark_texts", "build_index", "run_decontam"]


def benchmark_texts(path: Path, fields: Sequence[str]) -> list[str]:
    """The texts of the named fields of every record of a JSONL or Parquet benchmark file.

    Raises:
        ValueError: a malformed line (the message names file and line), or no field found.
    """
    texts: list[str] = []
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        present = [f for f in fields if f in table.column_names]
        for name in present:
            texts.extend(str(v) for v in table.column(name).to_pylist() if v is not None)
    else:
        present = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{number}: not a JSON object")
                for name in fields:
                    value = record.get(name)
                    if isinstance(value, str):
                        texts.append(value)
                        if name not in present:
                            present.append(name)
    if not present:
        raise ValueError(f"{path}: none of the fields {', '.join(fields)} found (set --field)")
    return texts


def build_index(benchmarks: Sequence[Path], config: DecontamConfig) -> tuple[Any, list[str]]:
    """The n-gram index of the benchmark files and their names (label ``i`` = ``names[i]``)."""
    texts: list[str] = []
    labels: list[int] = []
    names = [Path(b).stem for b in benchmarks]
    for label, path in enumerate(benchmarks):
        found = benchmark_texts(Path(path), config.fields)
        texts.extend(found)
        labels.extend([label] * len(found))
    return _core.NgramIndex(texts, labels, config.ngram), names


_INDEXES: dict[tuple[Any, ...], tuple[Any, list[str]]] = {}
_INDEX_LOCK = threading.Lock()


def _cached_index(benchmarks: Sequence[str], config: DecontamConfig) -> Any:
    """The n-gram index, built once per process (a worker queries many shards with it)."""
    key = (tuple(benchmarks), config.ngram, tuple(config.fields))
    with _INDEX_LOCK:
        if key not in _INDEXES:
            _INDEXES.clear()
            _INDEXES[key] = build_index([Path(b) for b in benchmarks], config)
        return _INDEXES[key][0]


@dataclass(slots=True)
class DecontamStage:
    """The benchmark queries, one unit per document shard (:class:`phicorpus.stage.Stage`).

    A unit reads its shard's kept rows (written by the driver under ``cache/decontam/<run>/``),
    queries the index with their texts and writes the hits and benchmark label per row
    (``hits-<unit>.npz``). Its commit records nothing: :func:`run_decontam` writes every
    decision in one transaction once all units are done.
    """

    benchmarks: tuple[str, ...]
    config: DecontamConfig
    fingerprint: str
    shards: tuple[str, ...]
    ranges: tuple[tuple[int, int], ...]
    threads: int | None = None
    name: str = "decontam"

    @classmethod
    def plan(
        cls,
        corpus: Corpus,
        docs: pa.Table,
        benchmarks: Sequence[str],
        config: DecontamConfig,
        params: dict[str, Any],
        threads: int | None = None,
    ) -> DecontamStage:
        """Split ``docs`` (``id``, ``file``, ``row`` in ``(file, row)`` order) by shard; write each
        shard's rows for its unit."""
        files = docs.column("file").to_numpy(zero_copy_only=False)
        rows = docs.column("row").to_numpy()
        starts = [int(i) for i in np.flatnonzero(np.r_[True, files[1:] != files[:-1]])] if len(files) else []
        bounds = [*starts, len(files)]
        ids = docs.column("id").combine_chunks()
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
        for buffer in ids.buffers():
            if buffer is not None:
                digest.update(buffer)
        fingerprint = digest.hexdigest()[:16]
        stage = cls(
            tuple(benchmarks),
            config,
            fingerprint,
            tuple(str(files[i]) for i in starts),
            tuple(itertools.pairwise(bounds)),
            threads,
        )
        for k, (lo, hi) in enumerate(stage.ranges):
            path = corpus.absolute(stage._rows_file(k))
            if not path.is_file():
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, rows[lo:hi].astype(np.int64))
        return stage

    def _rows_file(self, k: int) -> str:
        return f"cache/decontam/{self.fingerprint}/rows-{k:06d}.npy"

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        """One unit per shard with kept documents."""
        return [
            WorkUnit(f"{self.fingerprint}/{k:06d}", (file, self._rows_file(k)), {"run": self.fingerprint})
            for k, file in enumerate(self.shards)
        ]

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        """Query the index with the texts of one shard's kept rows, in batches."""
        index = _cached_index(self.benchmarks, self.config)
        rows = np.load(corpus.absolute(unit.inputs[1]))
        hits = np.zeros(len(rows), dtype=np.int64)
        label = np.full(len(rows), -1, dtype=np.int64)
        for start in range(0, len(rows), self.config.batch_docs):
            stop = min(len(rows), start + self.config.batch_docs)
            texts = read_texts(corpus, unit.inputs[0], rows[start:stop].tolist())
            hits[start:stop], label[start:stop] = index.query(texts, self.threads)
        out = unit.inputs[1].replace("/rows-", "/hits-").replace(".npy", ".npz")
        with atomic_path(corpus.absolute(out)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, hits=hits, label=label)
        return UnitResult(unit.key, (out,), {"documents": len(rows)})

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, Any]:
        """Nothing yet: the decisions are written together by :func:`run_decontam`."""
        return {}


def run_decontam(
    corpus: Corpus,
    benchmarks: Sequence[Path],
    config: DecontamConfig,
    num_threads: int | None = None,
    *,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Find documents overlapping the benchmarks; drop or flag them (see the module docstring).

    Returns:
        Statistics: ``documents`` checked, ``contaminated``, ``ngrams`` indexed, and per
        benchmark ``{"documents": ..., "ngram_hits": ...}``.
    """
    if not benchmarks:
        raise ValueError("no benchmark files given")
    names = [Path(b).stem for b in benchmarks]
    resolved = [str(Path(b).resolve()) for b in benchmarks]
    index = _cached_index(resolved, config)  # a bad benchmark file fails here, before any work
    digests = [
        params_hash({"file": str(Path(b).resolve()), "size": Path(b).stat().st_size}) for b in benchmarks
    ]
    params = {
        "benchmarks": digests,
        "ngram": config.ngram,
        "fields": list(config.fields),
        "mode": config.mode,
        "min_hits": config.min_hits,
    }
    with Catalog.open(corpus) as catalog:
        catalog.exec(
            "UPDATE stage_runs SET status = 'interrupted' WHERE stage = 'decontam' AND status = 'running'"
        )
        run = catalog.start_stage("decontam", params)
        docs = catalog.con.sql(
            "SELECT id, source, file, row FROM documents WHERE drop_stage IS NULL ORDER BY file, row"
        ).to_arrow_table()
        n = docs.num_rows
    # The queries run shard by shard on the executor (no catalog open here meanwhile).
    stage = DecontamStage.plan(corpus, docs, resolved, config, params, num_threads)
    done = run_stage(stage, corpus, executor)
    hits = np.zeros(n, dtype=np.int64)
    label = np.full(n, -1, dtype=np.int64)
    for (lo, hi), result in zip(stage.ranges, done.results, strict=True):
        with np.load(corpus.absolute(result.outputs[0])) as part:
            hits[lo:hi], label[lo:hi] = part["hits"], part["label"]
    with Catalog.open(corpus) as catalog:
        bad = hits >= config.min_hits
        bench = np.array(names, dtype=object)
        decisions = pa.table(
            {
                "id": docs.column("id"),
                "source": docs.column("source"),
                "hits": pa.array(hits, pa.int64()),
                "benchmark": pa.array([bench[x] if x >= 0 else None for x in label.tolist()], pa.string()),
                "contaminated": pa.array(bad),
            }
        )
        with catalog.transaction():
            catalog.con.register("_decontam", decisions)
            try:
                catalog.exec(
                    "UPDATE documents SET decontam_hits = d.hits FROM _decontam d WHERE documents.id = d.id"
                )
                if config.mode == "drop":
                    catalog.exec(
                        "UPDATE documents SET drop_stage = 'decontam', "
                        "drop_reason = 'contaminated:' || d.benchmark "
                        "FROM _decontam d WHERE documents.id = d.id AND d.contaminated "
                        "AND documents.drop_stage IS NULL"
                    )
                    catalog.recount_drops("decontam")  # over every document this stage dropped, any run
                per_bench = catalog.exec(
                    "SELECT benchmark, source, count(*), sum(hits) FROM _decontam "
                    "WHERE contaminated GROUP BY ALL"
                )
                for name in names:
                    catalog.exec("DELETE FROM decontam_hits WHERE benchmark = ?", [name])
                for name, source, count, total in per_bench:
                    catalog.exec(
                        "INSERT INTO decontam_hits VALUES (?, ?, ?, ?)", [name, source, count, total]
                    )
            finally:
                catalog.con.unregister("_decontam")
        report: dict[str, dict[str, int]] = {name: {"documents": 0, "ngram_hits": 0} for name in names}
        for name, _source, count, total in per_bench:
            report[name]["documents"] += int(count)
            report[name]["ngram_hits"] += int(total)
        stats = {
            "documents": int(n),
            "contaminated": int(bad.sum()),
            "ngrams": len(index),
            "mode": config.mode,
            "benchmarks": report,
        }
        catalog.finish_stage(run, stats)
    shutil.rmtree(corpus.absolute(f"cache/decontam/{stage.fingerprint}"), ignore_errors=True)
    shutil.rmtree(marker_path(corpus, stage.name, stage.fingerprint).with_suffix(""), ignore_errors=True)
    return stats

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

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus import _core
from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import DecontamConfig
from phicorpus.corpus import Corpus, read_texts

__all__ = ["benchmark_texts", "build_index", "run_decontam"]


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


def run_decontam(
    corpus: Corpus, benchmarks: Sequence[Path], config: DecontamConfig, num_threads: int | None = None
) -> dict[str, Any]:
    """Find documents overlapping the benchmarks; drop or flag them (see the module docstring).

    Returns:
        Statistics: ``documents`` checked, ``contaminated``, ``ngrams`` indexed, and per
        benchmark ``{"documents": ..., "ngram_hits": ...}``.
    """
    if not benchmarks:
        raise ValueError("no benchmark files given")
    index, names = build_index(benchmarks, config)
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
        files = docs.column("file").to_numpy(zero_copy_only=False)
        rows = docs.column("row").to_numpy()
        hits = np.zeros(n, dtype=np.int64)
        label = np.full(n, -1, dtype=np.int64)
        start = 0
        while start < n:
            stop = start + 1
            while stop < n and files[stop] == files[start] and stop - start < config.batch_docs:
                stop += 1
            texts = read_texts(corpus, str(files[start]), rows[start:stop].tolist())
            h, lab = index.query(texts, num_threads)
            hits[start:stop], label[start:stop] = h, lab
            start = stop
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
    return stats

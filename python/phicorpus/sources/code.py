"""Code ingestion: directories of source files and The-Stack-style JSONL/Parquet datasets.

Inputs are enumerated in a deterministic order and cut into chunks; each chunk becomes one
Parquet shard ``docs/<source>/part-<inputs>-<NNNNN>.parquet`` (``<inputs>`` a hash of the
resolved input paths) published atomically and registered, together with its documents and the
inputs it skipped, in one catalog transaction. A re-run skips chunks whose shard is registered,
so ``kill -9`` at any point and the same command again gives the same documents, once each.

A file of a directory is stored with its path relative to that directory, the directory's name
as ``repo`` and, as ``license``, the SPDX id of the directory's ``LICENSE``/``COPYING`` file when
its text is recognised (:func:`root_license`); dataset records keep their own path, repo and
license fields (The Stack's ``max_stars_repo_*`` and ``detected_licenses`` included).

Directory files are skipped with a reason: ``binary`` (a NUL byte), ``oversized``,
``vendored`` / ``ignored_dir`` (directories named in ``IngestConfig.skip_dirs``), ``generated``
(protobuf/gRPC stubs, ``*.generated.*``), ``minified`` (``*.min.*`` or a mean line over 500
characters), ``empty``. Bad inputs (``invalid_utf8``, ``bad_json``, ``no_content``,
``unreadable``, ``oversized`` records over ``IngestConfig.max_record_bytes``) are counted and
recorded with their file and line; they never stop the run, but a run whose every input was bad
raises :class:`IngestError` with the counts per reason and the first bad inputs.

Example:
    >>> stats = ingest_code(Corpus.create("corpus/"), None, config=IngestConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus import _core
from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import IngestConfig
from phicorpus.corpus import (
    Corpus,
    atomic_path,
    cheap_file_problem,
    file_kind_problem,
    remove_stale_temporaries,
    write_documents,
)

__all__ = [
    "DATASET_SUFFIXES",
    "LANGUAGES",
    "IngestError",
    "default_code_paths",
    "document_id",
    "ingest_code",
    "root_license",
    "skip_summary",
]

DATASET_SUFFIXES = (".jsonl", ".json", ".parquet")
"""Files given as inputs with these endings are datasets with a content column."""

LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".hpp": "C++", ".rs": "Rust", ".go": "Go", ".java": "Java", ".js": "JavaScript",
    ".ts": "TypeScript", ".sh": "Shell", ".rb": "Ruby", ".md": "Markdown", ".rst": "reStructuredText",
    ".txt": "Text",
}  # fmt: skip

VENDORED_DIRS = frozenset(
    {"vendor", "vendored", "third_party", "_vendor", "node_modules", "site-packages", "dist-packages"}
)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", ".pb.go", ".pb.h", ".pb.cc", "_generated.py")
MINIFIED_MEAN_LINE = 500
PATH_FIELDS = ("path", "max_stars_repo_path", "file_path")
REPO_FIELDS = ("repo_name", "max_stars_repo_name", "repo")
LANG_FIELDS = ("lang", "language")
LICENSE_FIELDS = ("license", "licenses", "max_stars_repo_licenses", "detected_licenses")
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "COPYING.txt")
#: Phrases that identify a license file's text, checked in order (the first match wins).
LICENSE_MARKERS = (
    ("PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2", "PSF-2.0"),
    ("Apache License", "Apache-2.0"),
    ("Mozilla Public License Version 2.0", "MPL-2.0"),
    ("GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"),
    ("GNU GENERAL PUBLIC LICENSE", "GPL"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("Neither the name", "BSD-3-Clause"),
    ("Redistribution and use in source and binary forms", "BSD-2-Clause"),
    ("Permission to use, copy, modify, and/or distribute", "ISC"),
)
DATASET_CHUNK_ROWS = 5000
#: Skip reasons that mean a bad input (rather than a file deliberately left out); the first of
#: them are listed by file and line in the stats and the summary.
BAD_INPUT_REASONS = ("invalid_utf8", "bad_json", "no_content", "unreadable", "oversized")


def default_code_paths() -> list[Path]:
    """The source of the running Python installation (its standard library)."""
    return [Path(sysconfig.get_paths()["stdlib"])]


def document_id(source: str, key: str, text: str | bytes) -> str:
    """``<source>/<16 hex>`` from the provenance key and the content (deterministic); ``text``
    may be given as its UTF-8 bytes."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(key.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return f"{source}/{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class _FileItem:
    path: str
    root: str  # the directory given (a file given alone: its parent); paths are stored relative to it


@dataclass(frozen=True, slots=True)
class _Skip:
    path: str
    line: int
    reason: str
    detail: str | None = None


@dataclass(slots=True)
class _Doc:
    key: str
    data: bytes  # the text, UTF-8 (checked): it goes to Parquet without a Python str
    chars: int  # len(text)
    lines: int
    path: str | None
    language: str | None
    license: str | None
    repo: str | None
    input: str


def _walk(root: Path, config: IngestConfig) -> Iterator[_FileItem | _Skip]:
    """Files under ``root`` in sorted order; excluded directories yield one skip each."""
    skip_dirs = set(config.skip_dirs)
    extensions = tuple(config.extensions)
    top = str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        kept = []
        for name in dirnames:
            if name in skip_dirs or name in VENDORED_DIRS:
                reason = "vendored" if name in VENDORED_DIRS else "ignored_dir"
                yield _Skip(str(Path(dirpath) / name), 0, reason)
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.endswith(extensions):
                yield _FileItem(os.path.join(dirpath, name), top)


def _items(paths: Sequence[Path], config: IngestConfig) -> Iterator[_FileItem | _Skip | tuple[Path, int]]:
    for path in paths:
        if path.is_dir():
            yield from _walk(path, config)
        elif path.suffix in DATASET_SUFFIXES and file_kind_problem(path) is None:
            yield (path, 0)  # a dataset: its records are expanded when the chunk is processed
        elif (problem := file_kind_problem(path)) is None:
            yield _FileItem(str(path), str(path.parent))
        else:
            yield _Skip(str(path), 0, "unreadable", problem)


def _read_bytes(item: _FileItem, config: IngestConfig) -> bytes | _Skip:
    """The bytes of a directory file, or why it is skipped before its text is looked at."""
    name = item.path
    base = os.path.basename(name)
    try:
        with open(name, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > config.max_file_bytes:
                return _Skip(name, 0, "oversized", f"{size} bytes > {config.max_file_bytes}")
            if base.endswith(GENERATED_SUFFIXES) or ".generated." in base:
                return _Skip(name, 0, "generated")
            if ".min." in base:
                return _Skip(name, 0, "minified")
            data = fh.readall()
    except OSError as exc:
        return _Skip(name, 0, "unreadable", exc.strerror)
    if not data or data.isspace():
        return _Skip(name, 0, "empty")
    if data.find(b"\0", 0, 8192) >= 0:
        return _Skip(name, 0, "binary")
    return data


def _read_source_files(items: Sequence[_FileItem], config: IngestConfig) -> list[_Doc | _Skip]:
    """The documents of directory files, in order, or why each is skipped. The UTF-8 check and
    the lengths are one Rust call for all of them (no ``str`` is decoded)."""
    got = [_read_bytes(item, config) for item in items]
    datas = [g for g in got if isinstance(g, bytes)]
    invalid, chars, newlines = (a.tolist() for a in _core.utf8_stats(datas))
    out: list[_Doc | _Skip] = []
    k = 0
    for item, g in zip(items, got, strict=True):
        if not isinstance(g, bytes):
            out.append(g)
            continue
        bad, n_chars, lines = invalid[k], chars[k], newlines[k] + 1
        k += 1
        name = item.path
        if bad >= 0:
            try:
                g.decode("utf-8")
                raise AssertionError(f"{name}: the UTF-8 checks disagree")  # pragma: no cover
            except UnicodeDecodeError as exc:
                line = g.count(b"\n", 0, exc.start) + 1
                out.append(_Skip(name, line, "invalid_utf8", f"byte {exc.start}: {exc.reason}"))
            continue
        if n_chars / lines > MINIFIED_MEAN_LINE:
            out.append(_Skip(name, 0, "minified", f"mean line {n_chars // lines} chars"))
            continue
        root = item.root
        relative = (
            name[len(root) + 1 :]
            if name.startswith(root + os.sep)
            else Path(name).relative_to(root).as_posix()
        )
        base = os.path.basename(name)
        language = LANGUAGES.get(os.path.splitext(base)[1])
        out.append(
            _Doc(name, g, n_chars, lines, relative, language, _license_of(root), os.path.basename(root), name)
        )
    return out


@functools.lru_cache(maxsize=256)
def _license_of(root: str) -> str | None:
    return root_license(Path(root))


@functools.lru_cache(maxsize=256)
def root_license(root: Path) -> str | None:
    """The SPDX id of the license file at ``root`` (``LICENSE``, ``COPYING``, ...), by the phrases
    of :data:`LICENSE_MARKERS` (GPL/LGPL get their version: ``GPL-3.0``); ``None`` when there is
    no such file or its text is not recognised."""
    for name in LICENSE_FILES:
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        for phrase, spdx in LICENSE_MARKERS:
            if phrase in text:
                if spdx in ("GPL", "LGPL"):
                    version = "3.0" if "Version 3" in text else "2.1" if "Version 2.1" in text else "2.0"
                    return f"{spdx}-{version}"
                return spdx
        return None
    return None


def _first(record: dict[str, Any], fields: Sequence[str]) -> str | None:
    for field in fields:
        value = record.get(field)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value) or None
        if value is not None:
            return str(value)
    return None


def _dataset_record(record: Any, where: str, line: int, config: IngestConfig) -> _Doc | _Skip:
    if not isinstance(record, dict):
        return _Skip(where, line, "bad_json", "not a JSON object")
    text = record.get(config.content_column)
    if not isinstance(text, str):
        return _Skip(where, line, "no_content", f"no string field {config.content_column!r}")
    if not text.strip():
        return _Skip(where, line, "empty")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate (a JSON "\\ud800" escape): not text
        return _Skip(where, line, "invalid_utf8", f"character {exc.start}: {exc.reason}")
    if len(data) > config.max_record_bytes:
        return _Skip(where, line, "oversized", _oversized(len(data), config))
    return _Doc(
        f"{where}:{line}",
        data,
        len(text),
        text.count("\n") + 1,
        _first(record, PATH_FIELDS),
        _first(record, LANG_FIELDS),
        _first(record, LICENSE_FIELDS),
        _first(record, REPO_FIELDS),
        where,
    )


def _oversized(size: int, config: IngestConfig) -> str:
    return f"record of {size:,} bytes > ingest.max_record_bytes {config.max_record_bytes:,}"


def _dataset_records(path: Path, config: IngestConfig) -> Iterator[_Doc | _Skip]:
    """Records of a JSONL or Parquet dataset, one item per line / row, bad ones as skips."""
    where = str(path)
    try:
        if path.suffix == ".parquet":
            pf = pq.ParquetFile(path)
            if config.content_column not in pf.schema_arrow.names:
                yield _Skip(where, 0, "no_content", f"no column {config.content_column!r}")
                return
            row = 0
            # Rows of at most ~max_record_bytes each: a batch holds at most ~64 MB of them.
            batch_rows = max(1, min(1024, (64 << 20) // max(1, config.max_record_bytes)))
            for batch in pf.iter_batches(batch_size=batch_rows):
                for record in batch.to_pylist():
                    row += 1
                    yield _dataset_record(record, where, row, config)
            return
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if len(raw) > config.max_record_bytes:  # JSON escapes only grow the text: too big
                    yield _Skip(where, number, "oversized", _oversized(len(raw), config))
                    continue
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield _Skip(where, number, "invalid_utf8", f"byte {exc.start} of the line")
                    continue
                except json.JSONDecodeError as exc:
                    yield _Skip(where, number, "bad_json", exc.msg)
                    continue
                yield _dataset_record(record, where, number, config)
    except (OSError, pa.ArrowException) as exc:
        yield _Skip(where, 0, "unreadable", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _chunks(paths: Sequence[Path], config: IngestConfig) -> Iterator[list[_Doc | _Skip | _FileItem]]:
    """Chunks of at most ``shard_files`` directory items, or ``DATASET_CHUNK_ROWS`` records."""
    chunk: list[_Doc | _Skip | _FileItem] = []
    for item in _items(paths, config):
        if isinstance(item, tuple):
            if chunk:
                yield chunk
                chunk = []
            for record in _dataset_records(item[0], config):
                chunk.append(record)
                if len(chunk) >= DATASET_CHUNK_ROWS:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
                chunk = []
            continue
        chunk.append(item)
        if len(chunk) >= config.shard_files:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ingest_code(
    corpus: Corpus,
    paths: Sequence[str | Path] | None,
    *,
    config: IngestConfig,
    source: str = "code",
    kind: str = "code",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest code files and datasets into ``docs/<source>/`` and the catalog (resumable).

    Args:
        corpus: the corpus directory.
        paths: directories, source files, or JSONL/Parquet datasets with a ``content`` column;
            ``None`` or empty: the running Python's standard library.
        config: the ``[ingest]`` section.
        source: the source name of the documents.
        kind: their ``documents.kind``; ``code`` gets the filter's code rules, anything else
            (``text`` for documentation) the prose rules.
        progress: called with a line after each shard written (the CLI prints it).

    Returns:
        Statistics: ``documents`` (new), ``shards_written``, ``shards_resumed``, ``bytes``,
        ``skipped`` (per reason), ``bad`` (a few ``file:line: reason`` strings).
    """
    inputs = [Path(p).resolve() for p in paths] if paths else default_code_paths()
    params = {
        "inputs": [str(p) for p in inputs],
        "config": _config_dict(config),
        "source": source,
        "kind": kind,
    }
    key = params_hash(params)[:8]
    out_dir = corpus.docs_dir(source)
    remove_stale_temporaries(out_dir)
    stats: dict[str, Any] = {
        "documents": 0,
        "shards_written": 0,
        "shards_resumed": 0,
        "bytes": 0,
        "input_bytes": 0,
    }
    skipped: Counter[str] = Counter()
    bad: list[str] = []
    records = 0  # documents read from the inputs this run (new or already in the catalog)
    with Catalog.open(corpus) as catalog:
        run: int | None = None

        def begin() -> int:
            # Recorded only when there is something to do: a re-run that finds every shard
            # written leaves the catalog untouched (nothing for readers' snapshot to republish).
            _mark_interrupted(catalog, "ingest")
            run = catalog.start_stage("ingest", params)
            catalog.ensure_source(
                source, "code" if kind == "code" else "web", ", ".join(str(p) for p in inputs)
            )
            return run

        for index, chunk in enumerate(_chunks(inputs, config)):
            shard = out_dir / f"part-{key}-{index:05d}.parquet"
            if catalog.is_registered(shard) and _intact(catalog, shard):
                stats["shards_resumed"] += 1
                continue
            if run is None:
                run = begin()
            docs, skips = _resolve(chunk, config)
            written = _write_chunk(catalog, corpus, shard, docs, skips, source, kind)
            records += len(docs)
            stats["documents"] += written
            stats["shards_written"] += 1
            stats["input_bytes"] += sum(len(d.data) for d in docs)
            if progress is not None:
                progress(
                    f"ingest {source!r}: shard {index + 1} written, {stats['documents']:,} new documents, "
                    f"{sum(skipped.values()) + len(skips):,} inputs skipped"
                )
            for skip in skips:
                skipped[skip.reason] += 1
                if skip.reason in BAD_INPUT_REASONS and len(bad) < 50:
                    bad.append(
                        f"{skip.path}:{skip.line}: {skip.reason}"
                        + (f" ({skip.detail})" if skip.detail else "")
                    )
        if run is None:
            last = catalog.exec_one(
                "SELECT stats FROM stage_runs WHERE stage = 'ingest' AND params_hash = ? AND status = 'done' "
                "ORDER BY id DESC LIMIT 1",
                [params_hash(params)],
            )
            if last and last[0]:
                return {
                    **json.loads(last[0]),
                    "documents": 0,
                    "shards_written": 0,
                    "shards_resumed": stats["shards_resumed"],
                    "skipped_run": True,
                }
            run = begin()
        catalog.refresh_views()
        totals = catalog.exec(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM documents WHERE source = ?", [source]
        )[0]
        stats["total_documents"], stats["bytes"] = int(totals[0]), int(totals[1])
        stats["skipped"] = dict(sorted(skipped.items()))
        stats["bad"] = bad
        nothing = records == 0 and stats["shards_resumed"] == 0
        catalog.finish_stage(run, stats, status="failed" if nothing else "done")
    if nothing:
        raise IngestError(f"no documents from {_inputs_text(inputs)}: {skip_summary(stats)}")
    return stats


class IngestError(ValueError):
    """Every input of an ingest was skipped: the message gives the counts and the first bad ones."""


def _inputs_text(inputs: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in inputs[:3])
    return shown + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")


def skip_summary(stats: Mapping[str, Any], first: int = 3) -> str:
    """``skipped 3 (bad_json 2, oversized 1); first: a.jsonl:4: bad_json (...)``, from ingest stats."""
    skipped: Mapping[str, int] = stats.get("skipped", {})
    if not skipped:
        return "no input files found"
    counts = ", ".join(f"{reason} {n:,}" for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]))
    text = f"skipped {sum(skipped.values()):,} ({counts})"
    bad: Sequence[str] = stats.get("bad", [])
    if bad:
        text += "; first: " + "; ".join(bad[:first])
    return text


def _intact(catalog: Catalog, shard: Path) -> bool:
    """A registered shard is still there with its recorded size and its Parquet footer; if not, its
    chunk is ingested again (same inputs: the same file at the same path, documents unchanged)."""
    record = next(iter(catalog.shards_at(shard)), None)
    return record is not None and cheap_file_problem(shard, record.bytes) is None


def _config_dict(config: IngestConfig) -> dict[str, Any]:
    return {
        "extensions": list(config.extensions),
        "max_file_bytes": config.max_file_bytes,
        "shard_files": config.shard_files,
        "skip_dirs": list(config.skip_dirs),
        "content_column": config.content_column,
        "max_record_bytes": config.max_record_bytes,
    }


def _mark_interrupted(catalog: Catalog, stage: str) -> None:
    """Runs of ``stage`` still 'running' were killed (there is one writer): say so."""
    catalog.exec(
        "UPDATE stage_runs SET status = 'interrupted' WHERE stage = ? AND status = 'running'", [stage]
    )


def _resolve(
    chunk: Sequence[_Doc | _Skip | _FileItem], config: IngestConfig
) -> tuple[list[_Doc], list[_Skip]]:
    files = [item for item in chunk if isinstance(item, _FileItem)]
    read = iter(_read_source_files(files, config))
    docs: list[_Doc] = []
    skips: list[_Skip] = []
    for item in chunk:
        resolved = next(read) if isinstance(item, _FileItem) else item
        if isinstance(resolved, _Doc):
            docs.append(resolved)
        else:
            assert isinstance(resolved, _Skip)
            skips.append(resolved)
    return docs, skips


def _write_chunk(
    catalog: Catalog,
    corpus: Corpus,
    shard: Path,
    docs: list[_Doc],
    skips: list[_Skip],
    source: str,
    kind: str,
) -> int:
    """Publish one shard, then register it with its documents and skips in one transaction."""
    ids = [document_id(source, d.key, d.data) for d in docs]
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": _utf8_array([d.data for d in docs]),
            "path": pa.array([d.path for d in docs], pa.string()),
            "language": pa.array([d.language for d in docs], pa.string()),
            "license": pa.array([d.license for d in docs], pa.string()),
            "repo": pa.array([d.repo for d in docs], pa.string()),
        }
    )
    with atomic_path(shard) as tmp:
        write_documents(table, tmp)
    rel = corpus.relative(shard)
    seen: set[str] = set()
    rows: dict[str, list[Any]] = {k: [] for k in (
        "id", "source", "kind", "file", "row", "provenance", "chars", "bytes", "lines", "language", "license",
    )}  # fmt: skip
    for row, (doc_id, doc) in enumerate(zip(ids, docs, strict=True)):
        if doc_id in seen:
            continue
        seen.add(doc_id)
        provenance = {"input": doc.input, "path": doc.path, "repo": doc.repo}
        values = (
            doc_id,
            source,
            kind,
            rel,
            row,
            json.dumps(provenance),
            doc.chars,
            len(doc.data),
            doc.lines,
            doc.language,
            doc.license,
        )
        for name, value in zip(rows, values, strict=True):
            rows[name].append(value)
    new_docs = pa.table(rows, schema=_DOC_SCHEMA)
    with catalog.transaction():
        catalog.con.register("_ingest_new", new_docs)
        try:
            # An id already in the catalog (the same file given twice) keeps its first shard.
            existing = {
                r[0] for r in catalog.exec("SELECT n.id FROM _ingest_new n JOIN documents d USING (id)")
            }
        finally:
            catalog.con.unregister("_ingest_new")
        if existing:
            mask = pa.array([i not in existing for i in rows["id"]])
            new_docs = new_docs.filter(mask)
        catalog.register_shard(
            shard, "docs", rows=len(docs),
            source=source, stage="ingest",
        )  # fmt: skip
        inserted = catalog.insert_documents(new_docs) if new_docs.num_rows else 0
        catalog.insert_skips(source, ((s.path, s.line, s.reason, s.detail) for s in skips))
    return inserted


def _utf8_array(datas: list[bytes]) -> pa.Array:
    """A string array of checked UTF-8 ``datas``: one join into an exactly sized buffer and the
    offsets from the lengths (a builder appending item by item regrows and copies its buffer)."""
    lengths = np.fromiter(map(len, datas), dtype=np.int64, count=len(datas))
    offsets = np.zeros(len(datas) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.py_buffer(b"".join(datas))
    if offsets[-1] <= np.iinfo(np.int32).max:
        return pa.StringArray.from_buffers(len(datas), pa.py_buffer(offsets.astype(np.int32)), data)
    return pa.LargeStringArray.from_buffers(len(datas), pa.py_buffer(offsets), data)


_DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("file", pa.string()),
        ("row", pa.int64()), ("provenance", pa.string()), ("chars", pa.int64()), ("bytes", pa.int64()),
        ("lines", pa.int64()), ("language", pa.string()), ("license", pa.string()),
    ]
)  # fmt: skip

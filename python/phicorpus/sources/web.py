"""Web ingestion: FineWeb/DCLM-style text datasets, HTML pages and WARC archives.

Inputs (files, or directories walked in sorted order):

- ``.jsonl`` / ``.json`` / ``.jsonl.gz`` / ``.parquet`` with a ``text`` column, the layout of
  FineWeb, DCLM and other Common-Crawl extracts; ``url``, ``id``, ``language`` and ``score``
  (also ``int_score``, ``language_score``) are kept where present.
- ``.html`` / ``.htm`` / ``.xhtml``: the main text is extracted with trafilatura.
- ``.warc`` / ``.warc.gz``: read with warcio; each ``response`` record whose HTTP content type is
  HTML has its main text extracted (trafilatura), with the record's target URI and record id.
- ``.txt``: plain text documents (the ``/usr/share/doc`` kind of input), taken as they are.

Why these two libraries: trafilatura is the maintained main-text extractor FineWeb's pipeline
(datatrove) uses, with the best published precision/recall of the pure-Python extractors and no
native build step; warcio (Webrecorder) is the maintained reader of WARC 1.0/1.1 that handles
gzip member-per-record archives, chunked transfer encoding and HTTP content decoding, and reports
the byte offset of every record (so a bad record is named by its offset).

Bad inputs never stop the run; each is counted by reason and recorded in ``ingest_skips`` with
its file and line (for JSONL the line, for Parquet the row, for WARC the record's byte offset):
``invalid_utf8``, ``bad_json``, ``no_content`` (no string ``text``), ``unreadable``,
``bad_warc`` (a record warcio cannot parse), plus the ordinary ``empty``, ``oversized``,
``no_main_text`` (the extractor found no main text) and ``not_html`` (a WARC record of another
content type). Shards are ``docs/<source>/part-<inputs>-<NNNNN>.parquet`` published and registered
in one transaction each, so a killed run and the same command again give each document once.
Documents get ``kind = "web"``: the filter's prose rules and the ordinary dedup apply afterwards.

Example:
    >>> corpus = Corpus.create("corpus/")  # doctest: +SKIP
    >>> stats = ingest_web(corpus, ["/usr/share/doc"], config=IngestConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import IngestConfig
from phicorpus.corpus import Corpus, atomic_path, remove_stale_temporaries, write_documents
from phicorpus.sources.code import IngestError, document_id, skip_summary

__all__ = ["BAD_INPUT_REASONS", "WEB_SCHEMA", "default_web_paths", "extract_main_text", "ingest_web"]

DATASET_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
WARC_SUFFIXES = (".warc", ".warc.gz")
TEXT_SUFFIXES = (".txt",)
WALK_SKIPS = (".json", ".json.gz")
ALL_SUFFIXES = DATASET_SUFFIXES + HTML_SUFFIXES + WARC_SUFFIXES + TEXT_SUFFIXES
BAD_INPUT_REASONS = ("invalid_utf8", "bad_json", "no_content", "unreadable", "bad_warc")
URL_FIELDS = ("url", "source_url", "warc_url")
ID_FIELDS = ("id", "doc_id", "warc_record_id")
LANG_FIELDS = ("language", "lang")
SCORE_FIELDS = ("score", "int_score", "quality_score", "fasttext_score")
CHUNK_DOCS = 2000
MAX_BAD_LINES_IN_A_ROW = 100
_READ_BATCH = 1024

WEB_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("source_id", pa.string()),  # the input's own id (FineWeb `id`, WARC-Record-ID)
        ("language", pa.string()),
        ("score", pa.float64()),
        ("language_score", pa.float64()),
        ("path", pa.string()),
        ("input_format", pa.string()),  # jsonl | parquet | html | warc | text
    ]
)


def default_web_paths() -> list[Path]:
    """``/usr/share/doc``: real HTML and text documentation present on every Debian machine."""
    return [Path("/usr/share/doc")]


@dataclass(frozen=True, slots=True)
class _Skip:
    path: str
    line: int
    reason: str
    detail: str | None = None


@dataclass(slots=True)
class _WebDoc:
    key: str
    text: str
    url: str | None
    source_id: str | None
    language: str | None
    score: float | None
    language_score: float | None
    path: str
    input_format: str


def extract_main_text(html: str | bytes, url: str | None = None) -> str | None:
    """The main text of an HTML page (trafilatura), ``None`` when it finds none.

    Boilerplate (navigation, footers, comments) goes; paragraphs stay separated by blank lines
    so the rephrase chunker can cut at them.
    """
    import trafilatura

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=True, deduplicate=False, favor_recall=True
    )
    if not text or not text.strip():
        return None
    # trafilatura separates paragraphs with single newlines; make them blank-line separated.
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    return "\n\n".join(paragraphs)


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    for kind, suffixes in (
        ("dataset", DATASET_SUFFIXES),
        ("html", HTML_SUFFIXES),
        ("warc", WARC_SUFFIXES),
        ("text", TEXT_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    return None


def _files(paths: Sequence[Path]) -> Iterator[tuple[Path, str] | _Skip]:
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    full = Path(dirpath) / name
                    kind = _suffix_kind(full)
                    # inside a directory a plain .json is a document's data, not a dataset
                    if kind == "dataset" and name.lower().endswith(WALK_SKIPS):
                        continue
                    if kind is not None and not full.is_symlink():
                        yield (full, kind)
        elif path.is_file():
            yield (path, _suffix_kind(path) or "text")
        else:
            yield _Skip(str(path), 0, "unreadable", "no such file or directory")


def _first(record: dict[str, Any], fields: Sequence[str]) -> Any:
    for name in fields:
        value = record.get(name)
        if value is not None and value != "":
            return value
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _record(record: Any, where: str, line: int, fmt: str, config: IngestConfig) -> _WebDoc | _Skip:
    if not isinstance(record, dict):
        return _Skip(where, line, "bad_json", "not a JSON object")
    text = record.get("text")
    if not isinstance(text, str):
        return _Skip(where, line, "no_content", "no string field 'text'")
    if not text.strip():
        return _Skip(where, line, "empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate (a JSON "\\ud800" escape): not text
        return _Skip(where, line, "invalid_utf8", f"character {exc.start}: {exc.reason}")
    if size > config.max_file_bytes:
        return _Skip(where, line, "oversized", f"{len(text)} chars")
    source_id = _first(record, ID_FIELDS)
    url = _first(record, URL_FIELDS)
    language = _first(record, LANG_FIELDS)
    return _WebDoc(
        key=str(source_id) if source_id is not None else f"{where}:{line}",
        text=text,
        url=str(url) if url is not None else None,
        source_id=str(source_id) if source_id is not None else None,
        language=str(language) if language is not None else None,
        score=_as_float(_first(record, SCORE_FIELDS)),
        language_score=_as_float(record.get("language_score")),
        path=where,
        input_format=fmt,
    )


def _dataset(path: Path, config: IngestConfig) -> Iterator[_WebDoc | _Skip]:
    where = str(path)
    try:
        if path.name.lower().endswith(".parquet"):
            pf = pq.ParquetFile(path)
            if "text" not in pf.schema_arrow.names:
                yield _Skip(
                    where, 0, "no_content", f"no column 'text' (columns: {', '.join(pf.schema_arrow.names)})"
                )
                return
            row = 0
            for batch in pf.iter_batches(batch_size=_READ_BATCH):
                for record in batch.to_pylist():
                    row += 1
                    yield _record(record, where, row, "parquet", config)
            return
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            bad_run = 0
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield _Skip(where, number, "invalid_utf8", f"byte {exc.start} of the line")
                    bad_run += 1
                    continue
                except json.JSONDecodeError as exc:
                    bad_run += 1
                    if bad_run >= MAX_BAD_LINES_IN_A_ROW:
                        yield _Skip(
                            where, number, "bad_json",
                            f"{exc.msg}; {bad_run} bad lines in a row, rest of the file skipped (not JSONL?)",
                        )  # fmt: skip
                        return
                    yield _Skip(where, number, "bad_json", exc.msg)
                    continue
                item = _record(record, where, number, "jsonl", config)
                bad_run = bad_run + 1 if isinstance(item, _Skip) and item.reason == "bad_json" else 0
                yield item
    except (OSError, EOFError, pa.ArrowException) as exc:
        yield _Skip(where, 0, "unreadable", _first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_bytes(path: Path, config: IngestConfig) -> bytes | _Skip:
    try:
        size = path.stat().st_size
        if size > config.max_file_bytes:
            return _Skip(str(path), 0, "oversized", f"{size} bytes > {config.max_file_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        return _Skip(str(path), 0, "unreadable", exc.strerror)
    if not data.strip():
        return _Skip(str(path), 0, "empty")
    return data


def _html_file(path: Path, config: IngestConfig) -> _WebDoc | _Skip:
    data = _read_bytes(path, config)
    if isinstance(data, _Skip):
        return data
    text = extract_main_text(data, url=None)
    if text is None:
        return _Skip(str(path), 0, "no_main_text")
    return _WebDoc(str(path), text, path.resolve().as_uri(), None, None, None, None, str(path), "html")


def _text_file(path: Path, config: IngestConfig) -> _WebDoc | _Skip:
    data = _read_bytes(path, config)
    if isinstance(data, _Skip):
        return data
    if b"\0" in data[:8192]:
        return _Skip(str(path), 0, "binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _Skip(str(path), line, "invalid_utf8", f"byte {exc.start}: {exc.reason}")
    return _WebDoc(str(path), text, path.resolve().as_uri(), None, None, None, None, str(path), "text")


def _warc(path: Path, config: IngestConfig) -> Iterator[_WebDoc | _Skip]:
    """HTML response records of a WARC; a record warcio cannot parse ends the file with a skip."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    where = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, the iterator reads lazily
    except OSError as exc:
        yield _Skip(where, 0, "unreadable", exc.strerror)
        return
    try:
        records = ArchiveIterator(fh, arc2warc=True)
        offset = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (ArchiveLoadFailed, ValueError, EOFError, OSError, AttributeError, KeyError) as exc:
                # warcio raises AttributeError/KeyError too on some malformed headers
                yield _Skip(where, offset, "bad_warc", _first_line(exc))
                break
            if record.rec_type != "response":
                offset = records.get_record_offset()
                continue
            uri = record.rec_headers.get_header("WARC-Target-URI")
            record_id = record.rec_headers.get_header("WARC-Record-ID")
            ctype = (record.http_headers.get_header("Content-Type") or "") if record.http_headers else ""
            if "html" not in ctype.lower():
                offset = records.get_record_offset()
                yield _Skip(where, offset, "not_html", ctype.split(";")[0] or "no content type")
                continue
            try:
                body = record.content_stream().read()
            except (OSError, ValueError, EOFError) as exc:
                yield _Skip(where, offset, "bad_warc", _first_line(exc))
                break
            # the offset is known once the record is read (warcio reads on to the record's end)
            offset = records.get_record_offset()
            if len(body) > config.max_file_bytes:
                yield _Skip(where, offset, "oversized", f"{len(body)} bytes")
                continue
            if not body.strip():
                yield _Skip(where, offset, "empty")
                continue
            text = extract_main_text(body, url=uri)
            if text is None:
                yield _Skip(where, offset, "no_main_text", uri)
                continue
            yield _WebDoc(
                key=record_id or f"{where}:{offset}",
                text=text,
                url=uri,
                source_id=record_id,
                language=None,
                score=None,
                language_score=None,
                path=where,
                input_format="warc",
            )
    finally:
        fh.close()


def _items(paths: Sequence[Path], config: IngestConfig) -> Iterator[_WebDoc | _Skip]:
    for item in _files(paths):
        if isinstance(item, _Skip):
            yield item
            continue
        path, kind = item
        if kind == "dataset":
            yield from _dataset(path, config)
        elif kind == "warc":
            yield from _warc(path, config)
        elif kind == "html":
            yield _html_file(path, config)
        else:
            yield _text_file(path, config)


def _chunks(paths: Sequence[Path], config: IngestConfig) -> Iterator[list[_WebDoc | _Skip]]:
    chunk: list[_WebDoc | _Skip] = []
    for item in _items(paths, config):
        chunk.append(item)
        if len(chunk) >= CHUNK_DOCS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ingest_web(
    corpus: Corpus,
    paths: Sequence[str | Path] | None,
    *,
    config: IngestConfig,
    source: str = "web",
) -> dict[str, Any]:
    """Ingest web documents into ``docs/<source>/`` and the catalog (resumable).

    Args:
        corpus: the corpus directory.
        paths: files or directories (see the module docstring for the formats); ``None`` or empty:
            :func:`default_web_paths`.
        config: the ``[ingest]`` section (``max_file_bytes`` caps a page or record).
        source: the source name of the documents (kind ``web``).

    Returns:
        Statistics: ``documents`` (new), ``total_documents``, ``shards_written``,
        ``shards_resumed``, ``bytes``, ``skipped`` (per reason), ``bad`` (``file:line: reason``).

    Raises:
        IngestError: not one input gave a document (the counts per reason and the first bad ones).

    Example:
        >>> ingest_web(corpus, ["sample.parquet"], config=IngestConfig())["documents"]  # doctest: +SKIP
        1000
    """
    inputs = [Path(p).resolve() for p in paths] if paths else default_web_paths()
    params = {"inputs": [str(p) for p in inputs], "max_file_bytes": config.max_file_bytes, "source": source}
    key = params_hash(params)[:8]
    out_dir = corpus.docs_dir(source)
    remove_stale_temporaries(out_dir)
    stats: dict[str, Any] = {"documents": 0, "shards_written": 0, "shards_resumed": 0}
    skipped: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    bad: list[str] = []
    with Catalog.open(corpus) as catalog:
        catalog.exec(
            "UPDATE stage_runs SET status = 'interrupted' WHERE stage = 'ingest-web' AND status = 'running'"
        )
        run = catalog.start_stage("ingest-web", params)
        catalog.ensure_source(source, "web", ", ".join(str(p) for p in inputs))
        for index, chunk in enumerate(_chunks(inputs, config)):
            shard = out_dir / f"part-{key}-{index:05d}.parquet"
            if catalog.is_registered(shard):
                stats["shards_resumed"] += 1
                continue
            docs = [d for d in chunk if isinstance(d, _WebDoc)]
            skips = [s for s in chunk if isinstance(s, _Skip)]
            stats["documents"] += _write_chunk(catalog, corpus, shard, docs, skips, source)
            stats["shards_written"] += 1
            formats.update(d.input_format for d in docs)
            for skip in skips:
                skipped[skip.reason] += 1
                if skip.reason in BAD_INPUT_REASONS and len(bad) < 50:
                    bad.append(
                        f"{skip.path}:{skip.line}: {skip.reason}"
                        + (f" ({skip.detail})" if skip.detail else "")
                    )
        catalog.refresh_views()
        totals = catalog.exec(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM documents WHERE source = ?", [source]
        )[0]
        stats["total_documents"], stats["bytes"] = int(totals[0]), int(totals[1])
        stats["input_formats"] = dict(sorted(formats.items()))
        stats["skipped"] = dict(sorted(skipped.items()))
        stats["bad"] = bad
        nothing = not formats and stats["shards_resumed"] == 0
        catalog.finish_stage(run, stats, status="failed" if nothing else "done")
    if nothing:  # as code ingestion: a run whose every input was bad (or absent) is an error
        shown = ", ".join(str(p) for p in inputs[:3]) + (
            f" and {len(inputs) - 3} more" if len(inputs) > 3 else ""
        )
        raise IngestError(f"no documents from {shown}: {skip_summary(stats)}")
    return stats


def _write_chunk(
    catalog: Catalog, corpus: Corpus, shard: Path, docs: list[_WebDoc], skips: list[_Skip], source: str
) -> int:
    """Publish one shard, then register it with its documents and skips in one transaction."""
    ids = [document_id(source, d.key, d.text) for d in docs]
    table = pa.table(
        {
            "id": ids,
            "text": [d.text for d in docs],
            "url": [d.url for d in docs],
            "source_id": [d.source_id for d in docs],
            "language": [d.language for d in docs],
            "score": [d.score for d in docs],
            "language_score": [d.language_score for d in docs],
            "path": [d.path for d in docs],
            "input_format": [d.input_format for d in docs],
        },
        schema=WEB_SCHEMA,
    )
    with atomic_path(shard) as tmp:
        write_documents(table, tmp)
    rel = corpus.relative(shard)
    names = ("id", "source", "kind", "file", "row", "provenance", "chars", "bytes", "lines", "language")
    rows: dict[str, list[Any]] = {k: [] for k in names}
    seen: set[str] = set()
    for row, (doc_id, doc) in enumerate(zip(ids, docs, strict=True)):
        if doc_id in seen:
            continue
        seen.add(doc_id)
        provenance = {"input": doc.path, "url": doc.url, "source_id": doc.source_id, "score": doc.score}
        values = (
            doc_id, source, "web", rel, row, json.dumps(provenance), len(doc.text),
            len(doc.text.encode("utf-8", "surrogatepass")), doc.text.count("\n") + 1, doc.language,
        )  # fmt: skip
        for name, value in zip(names, values, strict=True):
            rows[name].append(value)
    new_docs = pa.table(rows, schema=_DOC_SCHEMA)
    with catalog.transaction():
        catalog.con.register("_web_new", new_docs)
        try:
            existing = {r[0] for r in catalog.exec("SELECT n.id FROM _web_new n JOIN documents d USING (id)")}
        finally:
            catalog.con.unregister("_web_new")
        if existing:
            new_docs = new_docs.filter(pa.array([i not in existing for i in rows["id"]]))
        catalog.register_shard(shard, "docs", rows=len(docs), source=source, stage="ingest-web")
        inserted = catalog.insert_documents(new_docs) if new_docs.num_rows else 0
        catalog.insert_skips(source, ((s.path, s.line, s.reason, s.detail) for s in skips))
    return inserted


_DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("source", pa.string()), ("kind", pa.string()), ("file", pa.string()),
        ("row", pa.int64()), ("provenance", pa.string()), ("chars", pa.int64()), ("bytes", pa.int64()),
        ("lines", pa.int64()), ("language", pa.string()),
    ]
)  # fmt: skip

"""The tokenizer of a build and the tokenize stage.

:func:`prepare_tokenizer` puts the build's ``tokenizer.json`` in place: the given file (checked:
it must load and have an end-of-text token), or a byte-level BPE trained on a seeded sample of
the kept documents.

:class:`TokenizeStage` tokenizes each kept document once. Its work units are the document shards
(``docs/<source>/<part>.parquet``): a unit reads the kept rows of its shard and writes one token
cache shard ``cache/tokens/<build>/<source>/<part>.{bin,idx}`` (Megatron layout, one sequence per
document, end-of-text appended), in the documents' row order. The commit (driver) registers the
caches and sets ``documents.tokens``. A unit whose marker names the same tokenizer and the same
kept rows is not tokenized again (:mod:`phicorpus.stage`).

Example:
    >>> path = prepare_tokenizer(corpus, name="main", sources=["bios", "code"])  # doctest: +SKIP
    >>> pools = tokenize_sources(corpus, name="main", sources=["bios"], tokenizer_path=path)  # doctest: +SKIP
    >>> int(pools["bios"].lengths.sum())  # doctest: +SKIP
    5912811
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phicorpus import shard as shard_format
from phicorpus.catalog import Catalog, ShardRecord, kept_documents, params_hash
from phicorpus.corpus import (
    Corpus,
    CorpusError,
    publish_bytes,
    read_text_buffers,
    read_texts,
    remove_stale_temporaries,
    sha256_file,
    stream_text_buffers,
)
from phicorpus.mix import SourcePool
from phicorpus.stage import Executor, UnitResult, WorkUnit, digest_lines, run_stage
from phicorpus.tokenize.tokenizer import Tokenizer
from phicorpus.tokenize.train import train_tokenizer

__all__ = [
    "TOKEN_CACHE_DIR",
    "TokenizeStage",
    "TokenizerError",
    "load_tokenizer",
    "prepare_tokenizer",
    "read_rows",
    "tokenize_sources",
]

Echo = Callable[[str], None]
#: Token caches, relative to the corpus root: ``cache/tokens/<build>/<source>/<part>.{bin,idx}``.
TOKEN_CACHE_DIR = "cache/tokens"


class TokenizerError(ValueError):
    """The tokenizer cannot be used; the message names the file."""


def _quiet(_: str) -> None:
    pass


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a ``tokenizer.json``; it must have an end-of-text token.

    Raises:
        TokenizerError: unreadable, not a tokenizer, or no end-of-text token (one line).
    """
    try:
        tok = Tokenizer.from_file(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizerError(f"{path}: cannot read tokenizer: {first}") from exc
    except Exception as exc:  # tokenizers raises its own exception types
        raise TokenizerError(f"{path}: cannot read tokenizer: {exc}") from exc
    if tok.eos_id is None:
        raise TokenizerError(f"{path}: the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...)")
    return tok


_LOADED: dict[str, Tokenizer] = {}
_LOADING = threading.Lock()


def cached_tokenizer(path: str | Path, sha256: str) -> Tokenizer:
    """One loaded tokenizer per process and file content (``sha256`` of the file at ``path``):
    the tokenize units (threads of one process, or tasks of one Ray worker) and the shard writer
    share it instead of parsing the file again."""
    with _LOADING:
        tok = _LOADED.get(sha256)
        if tok is None:
            tok = load_tokenizer(path)
            if len(_LOADED) >= 4:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[sha256] = tok
        return tok


def read_rows(corpus: Corpus, rows: Sequence[tuple[str, int]]) -> list[str]:
    """Texts at ``(file, row)`` positions (files relative to the corpus), in the order given;
    each file is read once, consecutive rows of one file together."""
    out: list[str] = []
    i = 0
    while i < len(rows):
        file = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == file:
            j += 1
        out.extend(_read_file_rows(corpus, file, [r for _, r in rows[i:j]]))
        i = j
    return out


def _read_file_rows(corpus: Corpus, file: str, rows: Sequence[int]) -> list[str]:
    try:
        return read_texts(corpus, file, rows)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(corpus, file, exc) from exc


# -- the tokenizer of a build -----------------------------------------------------------------------


def _read_file_buffers(
    corpus: Corpus, file: str, rows: Sequence[int]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    try:
        return read_text_buffers(corpus, file, rows)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(corpus, file, exc) from exc


def _stream_file_buffers(
    corpus: Corpus, file: str, rows: Sequence[int]
) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] | None:
    try:
        return stream_text_buffers(corpus, file, rows)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(corpus, file, exc) from exc


def _unreadable(corpus: Corpus, file: str, exc: BaseException) -> CorpusError:
    return CorpusError(f"{corpus.absolute(file)}: cannot read document text: {exc}")


def prepare_tokenizer(
    corpus: Corpus,
    *,
    name: str,
    sources: Sequence[str],
    tokenizer: str | Path | None = None,
    vocab_size: int = 32_000,
    sample_bytes: int = 20_000_000,
    seed: int = 0,
    echo: Echo = _quiet,
) -> Path:
    """Put the build's ``tokenizer.json`` in ``build/<name>/`` and register it.

    With ``tokenizer`` given, that file is checked (it must load and have an end-of-text token)
    and copied. Without, a byte-level BPE of ``vocab_size`` is trained on a seeded sample of the
    kept documents of ``sources`` (about ``sample_bytes`` of text, split evenly over the sources,
    documents taken in the order of a hash of their id and the seed); the same documents and seed
    give the same file.

    Returns:
        The path of the build's ``tokenizer.json``.

    Raises:
        TokenizerError: the given file cannot be read.
        CorpusError: there is nothing to train on.
    """
    out = corpus.build_dir(name) / "tokenizer.json"
    if tokenizer:
        src = Path(tokenizer)
        load_tokenizer(src)
        data = src.read_bytes()
        if not out.is_file() or out.read_bytes() != data:
            publish_bytes(out, data)
        with Catalog.open(corpus) as catalog:
            catalog.register_shard(
                out, "tokenizer", sha256=hashlib.sha256(data).hexdigest(), size=len(data), stage="build"
            )
        return out
    with Catalog.open(corpus) as catalog:
        picked: list[tuple[str, int]] = []
        fingerprint = hashlib.sha256()
        budget = sample_bytes // max(1, len(sources))
        for source in sorted(sources):
            rows = catalog.exec(
                'SELECT id, file, "row", coalesce(bytes, chars, 2000) FROM documents '
                "WHERE source = ? AND drop_stage IS NULL",
                [source],
            )
            ranked = sorted(
                rows,
                key=lambda r: hashlib.blake2b(f"{seed}\x00{r[0]}".encode(), digest_size=8).digest(),
            )
            total = 0
            for doc_id, file, row, size in ranked:
                if total >= budget:
                    break
                picked.append((str(file), int(row)))
                fingerprint.update(f"{doc_id}\n".encode())
                total += int(size)
        params = {
            "build": name,
            "sample": fingerprint.hexdigest(),
            "documents": len(picked),
            "vocab_size": vocab_size,
            "seed": seed,
        }
        stage = f"tokenizer:{name}"
        if catalog.stage_done(stage, params) and out.is_file():
            # Done, and the file is still the one trained (not a --tokenizer copied over it since).
            row = catalog.exec_one(
                "SELECT stats FROM stage_runs WHERE stage = ? AND params_hash = ? AND status = 'done' "
                "ORDER BY id DESC LIMIT 1",
                [stage, params_hash(params)],
            )
            if row and json.loads(row[0]).get("sha256") == sha256_file(out):
                return out
        if not picked:
            raise CorpusError(f"no kept documents in {', '.join(sources)} to train a tokenizer on")
        run = catalog.start_stage(stage, params)
    picked.sort()
    echo(f"training a {vocab_size}-token byte-level BPE on {len(picked)} sampled documents")
    texts = read_rows(corpus, picked)
    train_tokenizer(texts, vocab_size, out)
    size, sha = out.stat().st_size, sha256_file(out)
    stats = {"documents": len(picked), "bytes": sum(len(t.encode()) for t in texts), "sha256": sha}
    with Catalog.open(corpus) as catalog, catalog.transaction():
        catalog.register_shard(out, "tokenizer", sha256=sha, size=size, stage="build")
        catalog.finish_stage(run, stats)
    return out


# -- the tokenize stage -----------------------------------------------------------------------------


def cache_prefix(build: str, source: str, file: str) -> str:
    """The cache shard of one document shard, relative to the corpus (no suffix)."""
    return f"{TOKEN_CACHE_DIR}/{build}/{source}/{Path(file).stem}"


@dataclass
class TokenizeStage:
    """Tokenize the kept documents of ``sources``, one unit per document shard.

    Attributes:
        build: The build name (caches are per build: the tokenizer is).
        sources: Sources to tokenize.
        tokenizer_path: The build's ``tokenizer.json``.
        threads: Rust threads per unit (0: all cores).
    """

    build: str
    sources: Sequence[str]
    tokenizer_path: Path
    threads: int = 0
    name: str = field(init=False)
    #: Filled by :meth:`units`: per unit key, the source and the ids of its documents.
    _unit_ids: dict[str, tuple[str, list[str]]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.name = f"tokenize:{self.build}"

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        tok_sha = sha256_file(self.tokenizer_path)
        tok_rel = corpus.relative(self.tokenizer_path)
        units: list[WorkUnit] = []
        self._unit_ids = {}
        with Catalog.open(corpus) as catalog:
            for source in sorted(self.sources):
                # Driver side, before any unit runs: what a killed run half-wrote goes.
                cache_dir = corpus.root / TOKEN_CACHE_DIR / self.build / source
                if cache_dir.is_dir():
                    remove_stale_temporaries(cache_dir)
                by_file: dict[str, list[tuple[str, int]]] = {}
                for doc_id, file, row in kept_documents(catalog, source):
                    by_file.setdefault(file, []).append((doc_id, row))
                for file, docs in by_file.items():
                    prefix = cache_prefix(self.build, source, file)
                    key = prefix[len(TOKEN_CACHE_DIR) + 1 :]
                    ids = [d for d, _ in docs]
                    self._unit_ids[key] = (source, ids)
                    units.append(
                        WorkUnit(
                            key=key,
                            inputs=(file,),
                            params={
                                "tokenizer": tok_rel,
                                "tokenizer_sha256": tok_sha,
                                "rows": [r for _, r in docs],
                                "ids": digest_lines(ids),
                                "out": prefix,
                            },
                        )
                    )
        return units

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        params = unit.params
        tok = cached_tokenizer(corpus.absolute(params["tokenizer"]), params["tokenizer_sha256"])
        eos = tok.eos_id
        dtype = shard_format.dtype_for_vocab(tok.max_id)
        file, rows = unit.inputs[0], params["rows"]
        # The encoder reads the Arrow buffers of the text column (no Python str per document),
        # piece by piece while a thread decodes the next Parquet pages.
        stream = _stream_file_buffers(corpus, file, rows) if tok.core is not None else None
        buffers = _read_file_buffers(corpus, file, rows) if tok.core is not None and stream is None else None
        texts = _read_file_rows(corpus, file, rows) if stream is None and buffers is None else []
        prefix = corpus.absolute(params["out"])
        prefix.parent.mkdir(parents=True, exist_ok=True)

        def fill(writer: Any) -> None:
            if stream is not None:
                try:
                    for offsets, data in stream:
                        writer.add_utf8(offsets, data, tok.core, False, self.threads or None)
                except (OSError, pa.ArrowException) as exc:
                    raise _unreadable(corpus, file, exc) from exc
            elif buffers is not None:
                writer.add_utf8(buffers[0], buffers[1], tok.core, False, self.threads or None)
            elif tok.core is not None:
                writer.add_texts(texts, tok.core, False, self.threads or None)
            else:
                flat, offsets = tok.encode_batch(texts, add_special_tokens=False)
                writer.add_ids(flat.astype(np.uint32), offsets)

        info = shard_format.write_shard(prefix, fill, dtype, eos)
        bin_rel, idx_rel = corpus.relative(info.bin_path), corpus.relative(info.idx_path)
        return UnitResult(
            unit.key,
            (bin_rel, idx_rel),
            {"documents": info.documents, "tokens": info.tokens},
            {bin_rel: info.bin_sha256, idx_rel: info.idx_sha256},
        )

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, Any]:
        # The same units with the same outputs were committed before: nothing to record again
        # (a re-run writes nothing, so readers' snapshot is not even republished).
        outputs = digest_lines(f"{r.key} {json.dumps(r.hashes, sort_keys=True)}" for r in results)
        params = {"units": [r.key for r in results], "outputs": outputs}
        if catalog.stage_done(self.name, params):
            row = catalog.exec_one(
                "SELECT stats FROM stage_runs WHERE stage = ? AND params_hash = ? AND status = 'done' "
                "ORDER BY id DESC LIMIT 1",
                [self.name, params_hash(params)],
            )
            if row and row[0]:
                return {**json.loads(row[0]), "skipped": True}
        run = catalog.start_stage(self.name, params)
        documents = tokens = 0
        with catalog.transaction():
            all_ids: list[str] = []
            all_lengths: list[np.ndarray[Any, Any]] = []
            records: list[ShardRecord] = []
            for result in results:
                source, ids = self._unit_ids[result.key]
                bin_rel, idx_rel = result.outputs
                lengths = unit_lengths(corpus, result)
                for rel, kind in ((bin_rel, "token-cache-bin"), (idx_rel, "token-cache-idx")):
                    path = corpus.absolute(rel)
                    sha = result.hashes.get(rel) or sha256_file(path)  # the unit hashed what it wrote
                    records.append(
                        ShardRecord(
                            rel, kind, source, "build", sha, path.stat().st_size, len(ids), int(lengths.sum())
                        )
                    )
                all_ids.extend(ids)
                all_lengths.append(lengths)
                documents += len(ids)
                tokens += int(lengths.sum())
            catalog.register_shards(records)
            if all_ids:
                update = pa.table(
                    {
                        "id": pa.array(all_ids, pa.string()),
                        "tokens": pa.array(np.concatenate(all_lengths), pa.int64()),
                    }
                )
                catalog.con.register("_phicorpus_tokens", update)
                try:
                    catalog.exec(
                        "UPDATE documents SET tokens = u.tokens FROM _phicorpus_tokens u "
                        "WHERE documents.id = u.id AND documents.tokens IS DISTINCT FROM u.tokens"
                    )
                finally:
                    catalog.con.unregister("_phicorpus_tokens")
            stats = {"documents": documents, "tokens": tokens}
            catalog.finish_stage(run, stats)
        return stats

    def pools(self, corpus: Corpus, results: Sequence[UnitResult]) -> dict[str, SourcePool]:
        """Source -> its documents (in unit, then row order) and token counts."""
        ids: dict[str, list[str]] = {s: [] for s in self.sources}
        lengths: dict[str, list[np.ndarray[Any, Any]]] = {s: [] for s in self.sources}
        for result in results:
            source, unit_ids = self._unit_ids[result.key]
            ids[source].extend(unit_ids)
            lengths[source].append(unit_lengths(corpus, result))
        return {
            s: SourcePool(ids[s], np.concatenate(lengths[s]) if lengths[s] else np.zeros(0, np.int64))
            for s in sorted(self.sources)
        }

    def unit_sources(self) -> dict[str, str]:
        """Unit key -> its source (after :meth:`units`)."""
        return {k: s for k, (s, _) in self._unit_ids.items()}


def unit_lengths(corpus: Corpus, result: UnitResult) -> np.ndarray[Any, Any]:
    """Tokens per document (end-of-text included) of a tokenize unit's cache shard."""
    bin_rel = result.outputs[0]
    prefix = corpus.absolute(bin_rel[: -len(".bin")])
    return np.asarray(shard_format.IndexedDataset(prefix).sequence_lengths, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class TokenCaches:
    """The tokenize stage's outcome: pools for the mix plan and the cache shards behind them."""

    pools: dict[str, SourcePool]
    #: Per source (sorted), its cache prefixes (relative, no suffix) in pool order, and the first
    #: pool index of each.
    shards: dict[str, list[tuple[str, int]]]


def tokenize_sources(
    corpus: Corpus,
    *,
    name: str,
    sources: Sequence[str],
    tokenizer_path: Path,
    threads: int = 0,
    executor: Executor | None = None,
    echo: Echo = _quiet,
) -> TokenCaches:
    """Run :class:`TokenizeStage` and return the pools and cache shards of ``sources``."""
    stage = TokenizeStage(name, list(sources), tokenizer_path, threads)
    with Catalog.open(corpus, read_only=False) as catalog:
        counts = catalog.exec(
            "SELECT source, count(*) FROM documents WHERE drop_stage IS NULL AND tokens IS NULL "
            "GROUP BY source ORDER BY source"
        )
    for source, n in counts:
        if source in sources:
            echo(f"tokenizing {int(n)} documents of {source}")
    results_holder = run_stage(stage, corpus, executor).results
    pools = stage.pools(corpus, results_holder)
    unit_source = stage.unit_sources()
    shards: dict[str, list[tuple[str, int]]] = {s: [] for s in sorted(sources)}
    offset: dict[str, int] = dict.fromkeys(sources, 0)
    for result in results_holder:
        source = unit_source[result.key]
        shards[source].append((result.outputs[0][: -len(".bin")], offset[source]))
        offset[source] += len(stage._unit_ids[result.key][1])
    return TokenCaches(pools, shards)

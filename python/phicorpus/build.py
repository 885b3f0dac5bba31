"""The main job, ``phicorpus build``: plan, run every stage not done yet, tokenize, mix, write shards.

The last three steps are :func:`build_shards` (callable on its own once documents are in the
catalog): :func:`prepare_tokenizer` (the given ``tokenizer.json``, or a byte-level BPE trained on a
seeded sample of the kept documents), :func:`tokenize_sources` (each kept document tokenized once,
into a per-source cache shard ``build/<name>/tokens/<source>.{bin,idx}``), then
:class:`~phicorpus.mix.MixPlan` and :func:`write_build` (``train-NNNNN``/``valid-NNNNN`` shards,
``manifest.json``). Every step records a ``stage_runs`` row and is skipped when it is done with the
same parameters; shards are published one by one and registered in the catalog, so a killed build
re-run writes only what is missing and ends with byte-identical files.

Limits: the mix plan holds two int64 per training document pick in memory (16 bytes per pick,
about 0.5 GB for 30M picks); texts are read one Parquet file at a time and token caches are read by
positional reads, so the corpus itself need not fit in memory.

Example:
    >>> from phicorpus.config import BuildConfig
    >>> config = BuildConfig(mix="bios:0.8,code:0.2")
    >>> manifest = build_shards(Corpus.open("corpus/"), config)  # doctest: +SKIP
    >>> manifest["sources"]["code"]["epochs"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog, params_hash
from phicorpus.config import BuildConfig, Config, IngestConfig
from phicorpus.corpus import Corpus, atomic_path, publish_bytes, remove_stale_temporaries, sha256_file
from phicorpus.mix import (
    LLM_SOURCES,
    OFFLINE_SOURCES,
    SHARE_TOLERANCE,
    MixPlan,
    MixSpec,
    SourcePool,
    default_groups,
)
from phicorpus.shard import (
    IndexedDataset,
    ShardInfo,
    ShardReader,
    ShardWriter,
    dtype_for_vocab,
    write_shard,
)
from phicorpus.tokenize import Tokenizer, train_tokenizer

__all__ = [
    "BuildError",
    "build_shards",
    "describe_plan",
    "kept_documents",
    "prepare_tokenizer",
    "read_texts",
    "run_build",
    "tokenize_sources",
    "write_build",
]

Echo = Callable[[str], None]
#: Every source name a mix may use, besides the groups.
KNOWN_SOURCES = ("code", *LLM_SOURCES, *OFFLINE_SOURCES)
MANIFEST_FORMAT = "phicorpus-megatron-v1"


class BuildError(ValueError):
    """The build cannot go on; the message says why in one line."""


def _quiet(_: str) -> None:
    pass


# -- documents ------------------------------------------------------------------------------------


def kept_documents(catalog: Catalog, source: str) -> list[tuple[str, str, int]]:
    """``(id, file, row)`` of the kept documents of ``source`` (``drop_stage IS NULL``), in file
    and row order."""
    rows = catalog.exec(
        'SELECT id, file, "row" FROM documents WHERE source = ? AND drop_stage IS NULL ORDER BY file, "row"',
        [source],
    )
    return [(str(i), str(f), int(r)) for i, f, r in rows]


def kept_counts(catalog: Catalog) -> dict[str, tuple[int, int]]:
    """Source -> (kept documents, their tokens): counted tokens once every kept document of the
    source is tokenized, else characters / 4 (0 where unknown)."""
    rows = catalog.exec(
        "SELECT source, count(*), count(tokens), coalesce(sum(tokens), 0), coalesce(sum(chars), 0) "
        "FROM documents WHERE drop_stage IS NULL GROUP BY source ORDER BY source"
    )
    return {str(s): (int(n), int(t) if k == n else int(c) // 4) for s, n, k, t, c in rows}


def read_texts(corpus: Corpus, rows: Sequence[tuple[str, int]]) -> list[str]:
    """Texts at ``(file, row)`` positions (files relative to the corpus), in the order given.

    Each file is read once (its ``text`` column); consecutive rows of one file are taken together.
    """
    out: list[str] = []
    i = 0
    while i < len(rows):
        file = rows[i][0]
        j = i
        while j < len(rows) and rows[j][0] == file:
            j += 1
        path = corpus.absolute(file)
        try:
            column = pq.read_table(path, columns=["text"]).column("text")
        except (OSError, pa.ArrowException) as exc:
            raise BuildError(f"{path}: cannot read document text: {exc}") from exc
        take = pa.array([r for _, r in rows[i:j]], type=pa.int64())
        out.extend(column.take(take).to_pylist())
        i = j
    return out


def _ids_digest(ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for doc_id in ids:
        digest.update(doc_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


# -- tokenizer ------------------------------------------------------------------------------------


def _load_tokenizer(path: Path) -> Tokenizer:
    try:
        tok = Tokenizer.from_file(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"{path}: cannot read tokenizer: {first}") from exc
    except Exception as exc:  # tokenizers raises its own exception types
        raise BuildError(f"{path}: cannot read tokenizer: {exc}") from exc
    if tok.eos_id is None:
        raise BuildError(f"{path}: the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...)")
    return tok


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
        BuildError: the given file cannot be read, or there is nothing to train on.
    """
    out = corpus.build_dir(name) / "tokenizer.json"
    if tokenizer:
        src = Path(tokenizer)
        _load_tokenizer(src)
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
            raise BuildError(f"no kept documents in {', '.join(sources)} to train a tokenizer on")
        run = catalog.start_stage(stage, params)
    picked.sort()
    echo(f"training a {vocab_size}-token byte-level BPE on {len(picked)} sampled documents")
    texts = read_texts(corpus, picked)
    train_tokenizer(texts, vocab_size, out)
    size, sha = out.stat().st_size, sha256_file(out)
    stats = {"documents": len(picked), "bytes": sum(len(t.encode()) for t in texts), "sha256": sha}
    with Catalog.open(corpus) as catalog, catalog.transaction():
        catalog.register_shard(out, "tokenizer", sha256=sha, size=size, stage="build")
        catalog.finish_stage(run, stats)
    return out


# -- tokenize -------------------------------------------------------------------------------------


def _cache_prefix(corpus: Corpus, name: str, source: str) -> Path:
    return corpus.build_dir(name) / "tokens" / source


def tokenize_sources(
    corpus: Corpus,
    *,
    name: str,
    sources: Sequence[str],
    tokenizer_path: Path,
    tokenizer: Tokenizer | None = None,
    threads: int = 0,
    echo: Echo = _quiet,
) -> dict[str, SourcePool]:
    """Tokenize each kept document of ``sources`` once into ``build/<name>/tokens/<source>``.

    The cache is a Megatron shard (one sequence per document, end-of-text appended) plus
    ``<source>.ids.parquet`` (the document ids in the same order). ``documents.tokens`` is set
    for every document. A source whose kept documents and tokenizer are unchanged is not
    tokenized again. Texts are read one Parquet file at a time, the next file while the Rust
    core tokenizes the current one.

    Args:
        tokenizer: ``tokenizer_path`` already loaded (else it is loaded here).
        threads: Rust threads (0: all cores).

    Returns:
        Source -> its document ids and token counts (end-of-text included).
    """
    tok = tokenizer or _load_tokenizer(tokenizer_path)
    tok_sha = sha256_file(tokenizer_path)
    eos = tok.eos_id
    dtype = dtype_for_vocab(tok.max_id)
    pools: dict[str, SourcePool] = {}
    with Catalog.open(corpus) as catalog, ThreadPoolExecutor(1, "phicorpus-read") as reader:
        # First pass: what each source needs, so the reader can fetch the next source's first
        # Parquet file while the current source's last one is tokenized.
        todo: list[tuple[str, list[str], dict[str, Any], list[list[tuple[str, int]]]]] = []
        for source in sorted(sources):
            prefix = _cache_prefix(corpus, name, source)
            docs = kept_documents(catalog, source)
            ids = [d[0] for d in docs]
            params = {
                "build": name,
                "source": source,
                "tokenizer": tok_sha,
                "documents": len(ids),
                "ids": _ids_digest(ids),
            }
            cached = all(p.is_file() for p in (prefix.with_name(source + ".ids.parquet"), *_pair(prefix)))
            if cached and catalog.stage_done(f"tokenize:{name}:{source}", params):
                pools[source] = SourcePool(ids, IndexedDataset(prefix).sequence_lengths.astype(np.int64))
                continue
            groups: list[list[tuple[str, int]]] = []
            for _, file, row in docs:
                if not groups or groups[-1][0][0] != file:
                    groups.append([])
                groups[-1].append((file, row))
            todo.append((source, ids, params, groups))
        ahead: dict[int, Future[list[str]]] = {}

        def first_read(i: int) -> Future[list[str]] | None:
            if i >= len(todo) or not todo[i][3]:
                return None
            if i not in ahead:
                ahead[i] = reader.submit(read_texts, corpus, todo[i][3][0])
            return ahead[i]

        for position, (source, ids, params, files) in enumerate(todo):
            prefix = _cache_prefix(corpus, name, source)
            ids_path = prefix.with_name(source + ".ids.parquet")
            stage = f"tokenize:{name}:{source}"
            run = catalog.start_stage(stage, params)
            echo(f"tokenizing {len(ids)} documents of {source}")
            remove_stale_temporaries(prefix.parent)

            def fill(
                writer: Any, files: list[list[tuple[str, int]]] = files, position: int = position
            ) -> None:
                pending = first_read(position)
                for k in range(len(files)):
                    assert pending is not None
                    texts = pending.result()
                    if k + 1 < len(files):
                        pending = reader.submit(read_texts, corpus, files[k + 1])
                    else:  # the next source's first file, read while this one is tokenized
                        first_read(position + 1)
                    if tok.core is not None:
                        writer.add_texts(texts, tok.core, False, threads or None)
                    else:
                        flat, offsets = tok.encode_batch(texts, add_special_tokens=False)
                        writer.add_ids(flat.astype(np.uint32), offsets)

            info = write_shard(prefix, fill, dtype, eos)
            with atomic_path(ids_path) as tmp:
                pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), tmp)
            lengths = IndexedDataset(prefix).sequence_lengths.astype(np.int64)
            with catalog.transaction():
                _register_pair(catalog, info, "token-cache", source=source)
                catalog.register_shard(
                    ids_path,
                    "token-cache-ids",
                    rows=len(ids),
                    source=source,
                    stage="build",
                )
                update = pa.table({"id": pa.array(ids, pa.string()), "tokens": pa.array(lengths, pa.int64())})
                catalog.con.register("_phicorpus_tokens", update)
                try:
                    catalog.exec(
                        "UPDATE documents SET tokens = u.tokens FROM _phicorpus_tokens u "
                        "WHERE documents.id = u.id"
                    )
                finally:
                    catalog.con.unregister("_phicorpus_tokens")
                catalog.finish_stage(run, {"documents": info.documents, "tokens": info.tokens})
            pools[source] = SourcePool(ids, lengths)
    return pools


def _pair(prefix: Path) -> tuple[Path, Path]:
    return prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")


def _register_pair(catalog: Catalog, info: ShardInfo, kind: str, source: str | None = None) -> None:
    base = kind
    catalog.register_shard(
        info.bin_path,
        f"{base}-bin",
        sha256=info.bin_sha256,
        size=info.bin_bytes,
        rows=info.documents,
        tokens=info.tokens,
        source=source,
        stage="build",
    )
    catalog.register_shard(
        info.idx_path,
        f"{base}-idx",
        sha256=info.idx_sha256,
        size=info.idx_bytes,
        rows=info.documents,
        tokens=info.tokens,
        source=source,
        stage="build",
    )


# -- shards ---------------------------------------------------------------------------------------


def _shard_bounds(lengths: np.ndarray[Any, Any], shard_tokens: int) -> list[tuple[int, int]]:
    """Consecutive pick ranges; a document goes to the shard its first token falls in."""
    if lengths.size == 0:
        return []
    starts = np.cumsum(lengths) - lengths
    shard_of = starts // shard_tokens
    cuts = np.flatnonzero(np.diff(shard_of)) + 1
    edges = [0, *cuts.tolist(), int(lengths.size)]
    return list(itertools.pairwise(edges))


def _plan_fingerprint(plan: MixPlan) -> str:
    digest = hashlib.sha256()
    for arr in (plan.train_source, plan.train_doc, plan.valid_source, plan.valid_doc):
        digest.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        digest.update(b"|")
    digest.update("\x00".join(plan.order).encode())
    return digest.hexdigest()


def write_build(
    corpus: Corpus,
    plan: MixPlan,
    *,
    name: str,
    mix: str,
    tokenizer_path: Path,
    shard_tokens: int,
    tokenizer: Tokenizer | None = None,
    echo: Echo = _quiet,
) -> dict[str, Any]:
    """Write the train/valid shards of ``plan`` from the token caches, then ``manifest.json``.

    Shards already published and registered by an interrupted run with the same plan are kept;
    the manifest is written last and the stage marked done after it, so a finished build is one
    whose manifest is registered. Returns the manifest.
    """
    with Catalog.open(corpus) as catalog:
        return _write_build(corpus, catalog, plan, name, mix, tokenizer_path, shard_tokens, tokenizer, echo)


def _write_build(
    corpus: Corpus,
    catalog: Catalog,
    plan: MixPlan,
    name: str,
    mix: str,
    tokenizer_path: Path,
    shard_tokens: int,
    tokenizer: Tokenizer | None,
    echo: Echo,
) -> dict[str, Any]:
    build_dir = corpus.build_dir(name)
    tok = tokenizer or _load_tokenizer(tokenizer_path)
    tok_sha = sha256_file(tokenizer_path)
    dtype = dtype_for_vocab(tok.max_id)
    readers = []
    cache_shas = {}
    for source in plan.order:
        prefix = _cache_prefix(corpus, name, source)
        readers.append(ShardReader(str(prefix) + ".bin", str(prefix) + ".idx"))
        cache_shas[source] = sha256_file(str(prefix) + ".idx")
    params = {
        "build": name,
        "plan": _plan_fingerprint(plan),
        "shard_tokens": shard_tokens,
        "tokenizer": tok_sha,
        "caches": cache_shas,
        "mix": mix,
    }
    stage = f"shards:{name}"
    manifest_path = build_dir / "manifest.json"
    if catalog.stage_done(stage, params) and manifest_path.is_file():
        done: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        return done
    last = catalog.exec_one(
        "SELECT params_hash FROM stage_runs WHERE stage = ? ORDER BY id DESC LIMIT 1", [stage]
    )
    if last is not None and last[0] != params_hash(params):
        _clear_build_outputs(corpus, catalog, build_dir)
    remove_stale_temporaries(build_dir)
    run = catalog.start_stage(stage, params)
    registered = {r.path: r for r in catalog.shards() if r.kind in ("tokens-bin", "tokens-idx")}

    lengths_by_source = [np.asarray(r.lengths(), dtype=np.int64) for r in readers]
    base = np.cumsum([0, *[x.size for x in lengths_by_source]])
    all_lengths = np.concatenate(lengths_by_source) if lengths_by_source else np.zeros(0, np.int64)
    splits: dict[str, Any] = {}
    for split, src, doc in (
        ("train", plan.train_source, plan.train_doc),
        ("valid", plan.valid_source, plan.valid_doc),
    ):
        pick_len = all_lengths[base[src] + doc] if src.size else np.zeros(0, np.int64)
        entries = []
        for k, (a, b) in enumerate(_shard_bounds(pick_len, shard_tokens)):
            prefix = build_dir / f"{split}-{k:05d}"
            rel_bin = corpus.relative(build_dir) + f"/{split}-{k:05d}.bin"
            rel_idx = corpus.relative(build_dir) + f"/{split}-{k:05d}.idx"
            have_bin, have_idx = registered.get(rel_bin), registered.get(rel_idx)
            if (
                have_bin is not None
                and have_idx is not None
                and corpus.absolute(rel_bin).is_file()
                and corpus.absolute(rel_idx).is_file()
                and corpus.absolute(rel_bin).stat().st_size == have_bin.bytes
            ):
                entry = {
                    "bin": f"{split}-{k:05d}.bin",
                    "idx": f"{split}-{k:05d}.idx",
                    "sha256": have_bin.sha256,
                    "idx_sha256": have_idx.sha256,
                    "bytes": have_bin.bytes,
                    "documents": have_bin.rows,
                    "tokens": have_bin.tokens,
                }
            else:
                s_part, d_part = src[a:b], doc[a:b]

                def fill(w: ShardWriter, s: Any = s_part, d: Any = d_part) -> None:
                    w.add_from(readers, s, d)

                info = write_shard(prefix, fill, dtype, None)
                with catalog.transaction():
                    _register_pair(catalog, info, "tokens")
                entry = {
                    "bin": info.bin_path.name,
                    "idx": info.idx_path.name,
                    "sha256": info.bin_sha256,
                    "idx_sha256": info.idx_sha256,
                    "bytes": info.bin_bytes,
                    "documents": info.documents,
                    "tokens": info.tokens,
                }
                echo(f"wrote {entry['bin']}: {info.documents} documents, {info.tokens} tokens")
            entries.append(entry)
        splits[split] = {
            "documents": int(pick_len.size),
            "tokens": int(pick_len.sum()),
            "shards": entries,
        }
    train_total = splits["train"]["tokens"]
    sources = {}
    for name_s, sp in plan.sources.items():
        summary = sp.summary()
        summary["actual_share"] = round(sp.train_tokens / train_total, 8) if train_total else 0.0
        sources[name_s] = summary
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "build": name,
        "mix": mix,
        "seed": plan.seed,
        "dtype": dtype,
        "eos_id": tok.eos_id,
        "shard_tokens": shard_tokens,
        "share_tolerance": SHARE_TOLERANCE,
        "target_tokens": plan.total_target,
        "tokenizer": {"file": "tokenizer.json", "sha256": tok_sha, "vocab_size": tok.vocab_size},
        "sources": sources,
        "splits": splits,
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    publish_bytes(manifest_path, data)
    with catalog.transaction():
        catalog.register_shard(
            manifest_path,
            "manifest",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            rows=splits["train"]["documents"],
            tokens=train_total,
            stage="build",
        )
        catalog.finish_stage(run, {"train_tokens": train_total, "valid_tokens": splits["valid"]["tokens"]})
    return manifest


def _clear_build_outputs(corpus: Corpus, catalog: Catalog, build_dir: Path) -> None:
    """Remove the shards and manifest of an earlier, different plan of this build."""
    rel = corpus.relative(build_dir) if build_dir.exists() else None
    if rel is None:
        return
    for record in catalog.shards():
        if record.kind in ("tokens-bin", "tokens-idx", "manifest") and record.path.startswith(rel + "/"):
            corpus.absolute(record.path).unlink(missing_ok=True)
            catalog.exec("DELETE FROM shards WHERE path = ?", [record.path])
    for pattern in ("train-*.bin", "train-*.idx", "valid-*.bin", "valid-*.idx", "manifest.json"):
        for path in build_dir.glob(pattern):
            path.unlink(missing_ok=True)


# -- the mix --------------------------------------------------------------------------------------


def resolve_mix(
    mix: str, catalog: Catalog, *, llm: bool
) -> tuple[MixSpec, dict[str, tuple[str, ...]], dict[str, tuple[int, int]]]:
    """Parse ``mix`` against the groups and the sources in the catalog."""
    groups = default_groups(llm)
    counts = kept_counts(catalog)
    available = sorted({*groups, *KNOWN_SOURCES, *counts})
    return MixSpec.parse(mix, available), groups, counts


def build_shards(
    corpus: Corpus,
    config: BuildConfig,
    *,
    llm: bool = False,
    echo: Echo = _quiet,
) -> dict[str, Any]:
    """Tokenize, mix and write the shards of the documents already in the catalog.

    Args:
        corpus: The corpus.
        config: ``[build]``: mix, tokens, seed, split, epochs cap, shard size, tokenizer.
        llm: Whether ``synthetic`` means the LLM sources (else the offline generators).
        echo: Where progress lines go.

    Returns:
        The manifest (also in ``build/<name>/manifest.json``).

    Raises:
        MixError: bad spec, empty source, too many epochs, a target that cannot be met.
        BuildError: the tokenizer cannot be read, a document file cannot be read.
    """
    with Catalog.open(corpus) as catalog:
        spec, groups, counts = resolve_mix(config.mix, catalog, llm=llm)
        tokens_guess = {s: max(t, n) for s, (n, t) in counts.items()}
        shares_guess = spec.shares(groups, tokens_guess)  # fails early on an empty source
    sources = sorted(shares_guess)
    tokenizer_path = prepare_tokenizer(
        corpus,
        name=config.name,
        sources=sources,
        tokenizer=config.tokenizer or None,
        vocab_size=config.vocab_size,
        sample_bytes=config.tokenizer_sample_bytes,
        seed=config.seed,
        echo=echo,
    )
    tok = _load_tokenizer(tokenizer_path)
    pools = tokenize_sources(
        corpus,
        name=config.name,
        sources=sources,
        tokenizer_path=tokenizer_path,
        tokenizer=tok,
        threads=config.threads,
        echo=echo,
    )
    shares = spec.shares(groups, {s: int(p.lengths.sum()) for s, p in pools.items()})
    plan = MixPlan.create(
        shares,
        pools,
        total_tokens=config.tokens or None,
        seed=config.seed,
        valid_fraction=config.valid_fraction,
        max_epochs=config.max_epochs,
    )
    for line in format_mix_plan(plan):
        echo(line)
    return write_build(
        corpus,
        plan,
        name=config.name,
        mix=str(spec),
        tokenizer_path=tokenizer_path,
        shard_tokens=config.shard_tokens,
        tokenizer=tok,
        echo=echo,
    )


def format_mix_plan(plan: MixPlan) -> list[str]:
    """The exact plan, once documents are tokenized: one line per source."""
    lines = [
        f"{'source':<10} {'share':>7} {'target':>14} {'train tokens':>14} {'documents':>10} "
        f"{'epochs':>7} {'valid tokens':>12}"
    ]
    for name, sp in plan.sources.items():
        lines.append(
            f"{name:<10} {sp.share:>7.2%} {sp.target:>14,} {sp.train_tokens:>14,} "
            f"{sp.train_picks.size:>10,} {sp.epochs:>7.3f} {sp.valid_tokens:>12,}"
        )
    return lines


# -- the plan printed before any work ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildInputs:
    """What ``phicorpus build`` was given besides ``[build]``."""

    llm: str | None = None
    model: str | None = None
    code: tuple[Path, ...] = ()
    web: tuple[Path, ...] = ()
    benchmarks: tuple[Path, ...] = ()
    #: Hard cap in USD on everything this corpus's generation journal has spent (0: no cap).
    max_cost: float = 0.0
    api_key: str = ""


def _origin(source: str, inputs: BuildInputs, config: BuildConfig) -> str:
    if source == "code":
        if inputs.code:
            return "code ingested from " + ", ".join(str(p) for p in inputs.code)
        return f"code: the Python standard library of {sys.executable}"
    if source in OFFLINE_SOURCES:
        opts = f"multi={config.bios_multi}{', permute' if config.bios_permute else ''}"
        opts += ", fullname" if config.bios_fullname else ""
        people = f"{config.bios_people:,} people"
        return f"offline bioS generator ({people}, {opts}, seed {config.seed}); not LLM output"
    if not inputs.llm:
        return "documents already generated into this corpus (no --llm: nothing new is generated)"
    return f"LLM generation ({inputs.model or 'model?'} at {inputs.llm})"


def _estimate_source(
    source: str, inputs: BuildInputs, config: BuildConfig, ingest: IngestConfig | None
) -> tuple[int, int] | None:
    """(documents, tokens) a source not made yet will give, tokens as characters / 4.

    bioS: a 200-person sample of the same generator; code: the sizes of the files ingestion would
    read (before its skips, filter and dedup). ``None`` where nothing cheap can tell (LLM sources:
    the generation stage prints its own estimate).
    """
    if source in OFFLINE_SOURCES:
        from phicorpus.sources.bios import generate_bios

        sample = min(config.bios_people, 200)
        docs, _ = generate_bios(
            sample, config.seed, config.bios_multi, config.bios_permute, config.bios_fullname
        )
        chars = sum(len(t) for t in docs.column("text").to_pylist())
        n_docs = config.bios_people * config.bios_multi
        return n_docs, int(chars / max(docs.num_rows, 1) * n_docs / 4)
    if source == "code" and ingest is not None:
        from phicorpus.sources.code import VENDORED_DIRS, default_code_paths

        roots = [Path(p) for p in inputs.code] or default_code_paths()
        if any(p.suffix in (".jsonl", ".parquet", ".json") for p in roots):
            return None
        skip = {*ingest.skip_dirs, *VENDORED_DIRS}
        n_files = n_bytes = 0
        for root in roots:
            walk = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root)
            for folder, dirs, names in walk:
                dirs[:] = [d for d in dirs if d not in skip]
                for name in names:
                    if name.endswith(ingest.extensions):
                        size = os.path.getsize(os.path.join(folder, name))
                        if size <= ingest.max_file_bytes:
                            n_files += 1
                            n_bytes += size
        return n_files, n_bytes // 4
    return None


def describe_plan(
    corpus: Corpus, config: BuildConfig, inputs: BuildInputs, ingest: IngestConfig | None = None
) -> list[str]:
    """The plan printed before any work: each source, share, token target, origin, documents and
    epochs (estimated from characters / 4 until tokenized), and the LLM cost.

    Raises:
        MixError: a bad mix spec (before anything is done).
    """
    llm = bool(inputs.llm)
    groups = default_groups(llm)
    counts: dict[str, tuple[int, int]] = {}
    if corpus.catalog_path.is_file():
        with Catalog.open(corpus) as catalog:
            counts = kept_counts(catalog)
    spec = MixSpec.parse(config.mix, sorted({*groups, *KNOWN_SOURCES, *counts}))
    for name, _ in spec.entries:
        for member in groups.get(name, (name,)):
            if member not in counts and (guess := _estimate_source(member, inputs, config, ingest)):
                counts[member] = guess
    lines = [f"build {config.name!r} in {corpus.root}: mix {spec}, seed {config.seed}"]
    if not llm:
        lines.append(
            "no LLM configured: 'synthetic' is filled by the offline generators (bioS), not by LLM output"
        )
    est: dict[str, int] = {}
    for name, _ in spec.entries:
        for member in groups.get(name, (name,)):
            est[member] = counts.get(member, (0, 0))[1]
    # Shares before documents exist: split a group's weight evenly over its members.
    shares: dict[str, float] = {}
    for name, weight in spec.entries:
        members = groups.get(name, (name,))
        known = [m for m in members if est.get(m)]
        use = known or list(members)
        total = sum(est.get(m, 0) for m in use)
        for m in use:
            part = est.get(m, 0) / total if total else 1 / len(use)
            shares[m] = shares.get(m, 0.0) + weight * part
    total_tokens = config.tokens or (
        min((est[s] / sh for s, sh in shares.items() if sh > 0 and est.get(s)), default=0)
        if all(est.get(s) for s in shares)
        else 0
    )
    lines.append(
        f"{'source':<10} {'share':>7} {'target tokens':>14} {'documents':>10} {'est. epochs':>11}  from "
        "(tokens estimated as characters / 4 until tokenized)"
    )
    for source, share in sorted(shares.items()):
        n = counts.get(source, (0, 0))[0]
        target = int(share * total_tokens) if total_tokens else 0
        epochs = f"{target / est[source]:.2f}" if est.get(source) and target else "-"
        lines.append(
            f"{source:<10} {share:>7.2%} {f'{target:,}' if target else 'from data':>14} "
            f"{f'{n:,}' if n else 'to make':>10} "
            f"{epochs:>11}  {_origin(source, inputs, config)}"
        )
    if llm:
        lines.append("LLM cost: estimated by the generation stage before it sends any request")
    else:
        lines.append("LLM cost: $0.00, 0 requests (no LLM)")
    return lines


# -- the main job ---------------------------------------------------------------------------------


#: Extra responses asked for beyond the token target, for the ones the filters and verification drop.
LLM_OVERGENERATE = 1.15


def llm_format_shares(
    spec: MixSpec, groups: dict[str, tuple[str, ...]], weights: dict[str, float]
) -> dict[str, float]:
    """Each generated format's share of the training tokens: a group's weight split over its
    formats by ``[prompts] format_weights`` (rewrite is only made when named on its own)."""
    shares: dict[str, float] = {}
    for name, weight in spec.entries:
        members = [m for m in groups.get(name, (name,)) if m in LLM_SOURCES and m != "rewrite"]
        if not members or weight <= 0:
            continue
        w = {m: max(weights.get(m, 0.0), 0.0) for m in members}
        total = sum(w.values())
        for m in members:
            shares[m] = shares.get(m, 0.0) + weight * (w[m] / total if total else 1 / len(members))
    return shares


def plan_llm_prompts(
    config: Config, inputs: BuildInputs, spec: MixSpec, groups: dict[str, tuple[str, ...]]
) -> pa.Table:
    """Render (in memory, nothing sent) the prompts whose responses fill the LLM sources' share of
    ``--tokens``: per format, target tokens x (1 + valid fraction) x :data:`LLM_OVERGENERATE` over
    that format's expected tokens per response, then one :func:`render_prompts` call so topics are
    shared out across formats (every topic used before any is used twice).

    Raises:
        BuildError: no ``--model``, or no ``--tokens`` (an LLM corpus has no natural size).
    """
    import dataclasses

    from phicorpus.prompts import prompts_for_tokens, render_prompts

    if not inputs.model:
        raise BuildError("--llm needs --model (the model name at that endpoint)")
    if not config.build.tokens:
        raise BuildError("with --llm, give --tokens N: how many training tokens to generate for")
    shares = llm_format_shares(spec, groups, dict(config.prompts.format_weights))
    counts: dict[str, int] = {}
    if not shares:
        raise BuildError("the mix names no generated format (textbook, exercises, stories)")
    for fmt, share in shares.items():
        probe = render_prompts(32, formats=(fmt,), seed=config.build.seed, config=config.prompts)
        per_response = float(np.mean(probe.column("expected_tokens").to_numpy()))
        target = share * config.build.tokens * (1 + config.build.valid_fraction) * LLM_OVERGENERATE
        counts[fmt] = prompts_for_tokens(int(target), per_response * config.generate.samples)
    n = sum(counts.values())
    prompts_config = dataclasses.replace(
        config.prompts, format_weights={fmt: c / n for fmt, c in counts.items()}
    )
    return render_prompts(
        n, formats=tuple(counts), seed=config.build.seed, web=inputs.web, config=prompts_config
    )


def describe_llm_plan(prompts: pa.Table, config: Config, inputs: BuildInputs) -> list[str]:
    """The generation lines of the plan: prompts per format, samples, estimated dollars and time."""
    from phicorpus.generate import GenerationParams, estimate_cost

    params = GenerationParams.from_config(config.generate)
    usd, seconds = estimate_cost(prompts, inputs.model or "", params, config.generate)
    formats = prompts.column("format").to_pylist()
    per = ", ".join(f"{f} {formats.count(f):,}" for f in sorted(set(formats)))
    price = "no price for this model in [generate.prices]" if usd != usd else f"${usd:,.2f}"
    cap = f"; --max-cost ${inputs.max_cost:,.2f} is a hard cap" if inputs.max_cost else "; no --max-cost cap"
    return [
        f"LLM: {inputs.model} at {inputs.llm}: {prompts.num_rows:,} prompts ({per}) x "
        f"{params.samples} sample(s)",
        f"LLM cost estimate: {price} (prices of {config.generate.prices_date}), about "
        f"{seconds / 3600:.1f} h at concurrency {config.generate.concurrency}{cap}",
    ]


def generate_llm_sources(
    corpus: Corpus, config: Config, inputs: BuildInputs, prompts: pa.Table, *, echo: Echo = print
) -> dict[str, Any]:
    """Publish the prompts, generate their responses (journaled: a re-run never pays twice), then
    verify the programming exercises in the sandbox (ReST^EM: failing ones are dropped).

    Raises:
        BuildError: the run stopped on the cost cap or an exhausted quota (re-run to resume).
    """
    from phicorpus.generate import GenerationParams, run_generation
    from phicorpus.prompts import write_prompts
    from phicorpus.verify.exercises import verify_exercises

    path = write_prompts(corpus, prompts)
    stats = run_generation(
        corpus,
        path,
        endpoints=[inputs.llm or ""],
        model=inputs.model or "",
        params=GenerationParams.from_config(config.generate),
        max_cost=inputs.max_cost,
        config=config.generate,
        api_key=inputs.api_key,
        echo=echo,
    )
    if stats.get("stop_reason"):
        raise BuildError(
            f"generation stopped: {stats['stop_reason']}; what was received is kept, re-run to resume"
        )
    if "exercises" in set(prompts.column("format").to_pylist()):
        verify_exercises(corpus, config=config.generate, echo=echo)
    return dict(stats)


def _stage(module: str, func: str) -> Callable[..., Any]:
    """A stage entry point of another part of phicorpus, imported when it is needed."""
    import importlib

    try:
        return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise BuildError(f"stage {module}.{func} is not available in this phicorpus ({exc})") from exc


def run_build(corpus: Corpus, config: Config, inputs: BuildInputs, *, echo: Echo = print) -> dict[str, Any]:
    """``phicorpus build``: print the plan, then run every stage not done yet and write the shards.

    Stages (each skips itself when done with the same parameters): the synthetic sources (LLM
    generation, or the offline bioS generator), code ingestion, filter, dedup, decontamination
    (with ``inputs.benchmarks``), then :func:`build_shards`.
    """
    for path in inputs.code:
        if not Path(path).exists():
            raise BuildError(f"{path}: no such file or directory (--code)")
    if config.build.tokenizer:
        _load_tokenizer(Path(config.build.tokenizer))  # an unreadable file fails before any work
    for line in describe_plan(corpus, config.build, inputs, config.ingest):
        echo(line)
    llm = bool(inputs.llm)
    with Catalog.open(corpus) as catalog:
        spec, groups, _ = resolve_mix(config.build.mix, catalog, llm=llm)
        have = kept_counts(catalog)
    wanted = {m for name, w in spec.entries if w > 0 for m in groups.get(name, (name,))}
    missing = sorted(s for s in wanted & set(LLM_SOURCES) if not have.get(s, (0, 0))[0])
    if missing and not llm:
        raise BuildError(
            f"{', '.join(missing)}: no documents in this corpus and no LLM to generate them; give "
            "--llm URL --model M (or $OPENAI_BASE_URL), or mix the offline 'bios' / 'synthetic'"
        )
    prompts = None
    if llm and wanted & set(LLM_SOURCES):
        prompts = plan_llm_prompts(config, inputs, spec, groups)
        for line in describe_llm_plan(prompts, config, inputs):
            echo(line)
    # The resolved configuration, re-used by re-runs (DESIGN.md, "Corpus directory").
    publish_bytes(corpus.config_path, config.to_toml().encode())
    if wanted & set(OFFLINE_SOURCES):
        _stage("phicorpus.sources.bios", "write_bios")(
            corpus,
            config.build.bios_people,
            seed=config.build.seed,
            multi=config.build.bios_multi,
            permute=config.build.bios_permute,
            fullname=config.build.bios_fullname,
        )
    if prompts is not None:
        generate_llm_sources(corpus, config, inputs, prompts, echo=echo)
    if "code" in wanted:
        _stage("phicorpus.sources.code", "ingest_code")(
            corpus, list(inputs.code) or None, config=config.ingest
        )
    _stage("phicorpus.filter.stage", "run_filter")(corpus, config.filter)
    _stage("phicorpus.dedup.stage", "run_dedup")(corpus, config.dedup)
    if inputs.benchmarks:
        _stage("phicorpus.decontam", "run_decontam")(corpus, list(inputs.benchmarks), config.decontam)
    return build_shards(corpus, config.build, llm=llm, echo=echo)

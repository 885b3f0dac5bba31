"""The shard stage: the train/valid shards of a mix plan, written from the token caches.

:func:`write_build` stores the plan's picks once (``cache/plans/<build>/<fingerprint>/``: per
split, the cache shard and the document within it of every pick, as ``.npy``), then runs
:class:`ShardStage`, whose units are the output shards ``train-NNNNN`` / ``valid-NNNNN``: a unit
reads its slice of the picks and copies those sequences out of the cache shards into
``build/<name>/<split>-NNNNN.{bin,idx}``. The commit (driver) registers the shards, then writes
``manifest.json`` last, so a finished build is one whose manifest is registered. A killed build
re-run writes only the shards whose markers are missing and ends with byte-identical files.

Example:
    >>> manifest = write_build(corpus, plan, caches=caches, name="main", mix="bios:0.8,code:0.2",
    ...                        tokenizer_path=path, shard_tokens=100_000_000)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from phicorpus import shard as shard_format
from phicorpus.catalog import Catalog, ShardRecord, params_hash
from phicorpus.corpus import (
    Corpus,
    CorpusError,
    atomic_path,
    publish_bytes,
    remove_stale_temporaries,
    sha256_file,
)
from phicorpus.mix import SHARE_TOLERANCE, MixPlan
from phicorpus.shard import trainers
from phicorpus.stage import Executor, UnitResult, WorkUnit, clear_markers, marker_path, run_stage
from phicorpus.tokenize.stage import TokenCaches, cached_tokenizer

__all__ = ["MANIFEST_FORMAT", "PLANS_DIR", "ShardStage", "check_build_files", "shard_bounds", "write_build"]

Echo = Callable[[str], None]
MANIFEST_FORMAT = "phicorpus-megatron-v1"
#: Stored mix plans, relative to the corpus root.
PLANS_DIR = "cache/plans"


def _quiet(_: str) -> None:
    pass


def shard_bounds(lengths: npt.NDArray[np.int64], shard_tokens: int) -> list[tuple[int, int]]:
    """Consecutive pick ranges; a document goes to the shard its first token falls in."""
    if lengths.size == 0:
        return []
    starts = np.cumsum(lengths) - lengths
    shard_of = starts // shard_tokens
    cuts = np.flatnonzero(np.diff(shard_of)) + 1
    edges = [0, *cuts.tolist(), int(lengths.size)]
    return list(itertools.pairwise(edges))


def plan_fingerprint(plan: MixPlan) -> str:
    """sha256 of the plan's picks and source order."""
    digest = hashlib.sha256()
    arrays = [plan.train_source, plan.train_doc, plan.valid_source, plan.valid_doc]
    if plan.train_take is not None:  # only a plan with a cut document (earlier plans keep their hash)
        arrays.append(plan.train_take)
    for arr in arrays:
        digest.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        digest.update(b"|")
    digest.update("\x00".join(plan.order).encode())
    return digest.hexdigest()


def _pick_locations(
    plan: MixPlan, caches: TokenCaches, src: npt.NDArray[np.int64], doc: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """``(n, 2)``: for each pick (source index in ``plan.order``, document in its pool), the
    cache shard (index into the flattened reader list) and the sequence within it."""
    out = np.empty((src.size, 2), dtype=np.int64)
    base = 0
    for i, source in enumerate(plan.order):
        shards = caches.shards[source]
        starts = np.array([first for _, first in shards], dtype=np.int64)
        mask = src == i
        d = doc[mask]
        local = np.searchsorted(starts, d, side="right") - 1
        out[mask, 0] = base + local
        out[mask, 1] = d - starts[local]
        base += len(shards)
    return out


@dataclass
class ShardStage:
    """Write the shards of one stored plan; one unit per output shard."""

    build: str
    #: The stored plan (relative to the corpus): ``<dir>/<split>.npy`` of ``(cache, sequence)``,
    #: or ``(cache, sequence, take)`` when a document is cut (``take`` tokens of it; 0: whole).
    plan_dir: str
    #: Cache shard prefixes (relative, no suffix), in reader-index order.
    readers: list[str]
    #: Per split, the ``(start, end)`` pick range of each shard.
    bounds: dict[str, list[tuple[int, int]]]
    dtype: str
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"shards:{self.build}"

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        units = []
        for split in ("train", "valid"):
            for k, (a, b) in enumerate(self.bounds.get(split, [])):
                units.append(
                    WorkUnit(
                        key=f"{split}-{k:05d}",
                        inputs=tuple(r + ".bin" for r in self.readers),
                        params={
                            "plan": self.plan_dir,
                            "split": split,
                            "range": [a, b],
                            "dtype": self.dtype,
                            "out": corpus.relative(corpus.build_dir(self.build)) + f"/{split}-{k:05d}",
                        },
                    )
                )
        return units

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        p = unit.params
        a, b = p["range"]
        picks = np.load(corpus.absolute(f"{p['plan']}/{p['split']}.npy"), mmap_mode="r")[a:b]
        used = np.unique(picks[:, 0]) if picks.size else np.zeros(0, np.int64)
        # Open only the cache shards this shard takes from.
        remap = np.full(len(self.readers), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        readers = [
            shard_format.ShardReader(
                str(corpus.absolute(self.readers[r])) + ".bin", str(corpus.absolute(self.readers[r])) + ".idx"
            )
            for r in used.tolist()
        ]
        sources = np.ascontiguousarray(remap[picks[:, 0]], dtype=np.int64)
        docs = np.ascontiguousarray(picks[:, 1], dtype=np.int64)
        cuts = np.flatnonzero(picks[:, 2]).tolist() if picks.ndim == 2 and picks.shape[1] > 2 else []

        def fill(w: Any) -> None:
            start = 0
            for row in [*cuts, sources.size]:
                w.add_from(readers, sources[start:row], docs[start:row])
                if row < sources.size:  # a cut: its first tokens, then its own end-of-text
                    full = readers[int(sources[row])].document(int(docs[row]))
                    take = int(picks[row, 2])
                    ids = np.concatenate([full[: take - 1], full[-1:]]).astype(np.uint32)
                    w.add_ids(ids, np.array([0, ids.size], dtype=np.int64))
                start = row + 1

        info = shard_format.write_shard(corpus.absolute(p["out"]), fill, p["dtype"], None)
        bin_rel, idx_rel = corpus.relative(info.bin_path), corpus.relative(info.idx_path)
        return UnitResult(
            unit.key,
            (bin_rel, idx_rel),
            {
                "documents": info.documents,
                "tokens": info.tokens,
                "sha256": info.bin_sha256,
                "idx_sha256": info.idx_sha256,
                "bytes": info.bin_bytes,
                "idx_bytes": info.idx_bytes,
            },
            {bin_rel: info.bin_sha256, idx_rel: info.idx_sha256},
        )

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, Any]:
        records = [
            ShardRecord(rel, kind, None, "build", sha, int(size), int(s["documents"]), int(s["tokens"]))
            for s, outputs in ((r.stats, r.outputs) for r in results)
            for rel, kind, sha, size in (
                (outputs[0], "tokens-bin", s["sha256"], s["bytes"]),
                (outputs[1], "tokens-idx", s["idx_sha256"], s["idx_bytes"]),
            )
        ]
        with catalog.transaction():
            catalog.register_shards(records)
        return {"shards": len(results), "tokens": sum(int(r.stats["tokens"]) for r in results)}


def check_build_files(corpus: Corpus, name: str, manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Verify's check on every shard a build's manifest lists: present, same size, same sha256.

    Returns:
        ``(unit key, problem)`` per bad shard pair (``train-00000``: ``train-00000.bin: missing``).
    """
    build_dir = corpus.build_dir(name)
    bad: list[tuple[str, str]] = []
    for split in ("train", "valid"):
        for entry in (manifest.get("splits", {}).get(split) or {}).get("shards", []):
            checks = [
                (entry["bin"], entry.get("bytes"), entry["sha256"]),
                (entry["idx"], None, entry["idx_sha256"]),
            ]
            for file, size, sha in checks:
                path = build_dir / file
                try:
                    actual = path.stat().st_size
                except OSError:
                    bad.append((Path(file).stem, f"{file}: missing"))
                    break
                if size is not None and actual != int(size):
                    bad.append((Path(file).stem, f"{file}: size {actual}, expected {size}"))
                    break
                if sha256_file(path) != sha:
                    bad.append((Path(file).stem, f"{file}: sha256 differs"))
                    break
    return bad


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_build(
    corpus: Corpus,
    plan: MixPlan,
    *,
    caches: TokenCaches,
    name: str,
    mix: str,
    tokenizer_path: Path,
    shard_tokens: int,
    executor: Executor | None = None,
    echo: Echo = _quiet,
) -> dict[str, Any]:
    """Write the train/valid shards of ``plan`` from the token caches, then ``manifest.json``.

    Shards already written (their markers say so) by an interrupted run of the same plan are
    kept; the manifest is written last and the stage marked done after it. Every build ends
    with ``phicorpus verify``'s check (size and sha256) on the shards of the manifest, a finished
    one skipped by a re-run included: a shard missing or corrupt is rewritten (its marker
    dropped, its unit run again), and the build fails only if it stays bad. Returns the manifest.
    """
    forced = False
    for _attempt in range(3):
        manifest = _write_build_once(
            corpus, plan, caches=caches, name=name, mix=mix, tokenizer_path=tokenizer_path,
            shard_tokens=shard_tokens, executor=executor, echo=echo, force=forced,
        )  # fmt: skip
        bad = check_build_files(corpus, name, manifest)
        if not bad:
            return manifest
        echo(f"rewriting {len(bad)} shard(s) that fail verify's check: " + "; ".join(p for _, p in bad[:3]))
        stage_name = f"shards:{name}"
        for key, _problem in bad:
            shard_format.remove_pair(corpus.build_dir(name) / key)
            marker_path(corpus, stage_name, key).unlink(missing_ok=True)
        forced = True
    raise CorpusError(
        f"{corpus.build_dir(name)}: shards still fail verify's check after rewriting them "
        f"({bad[0][1]}); is the disk failing?"
    )


def _write_build_once(
    corpus: Corpus,
    plan: MixPlan,
    *,
    caches: TokenCaches,
    name: str,
    mix: str,
    tokenizer_path: Path,
    shard_tokens: int,
    executor: Executor | None,
    echo: Echo,
    force: bool,
) -> dict[str, Any]:
    """One pass of :func:`write_build`; ``force``: do not trust a done stage (shards were bad)."""
    build_dir = corpus.build_dir(name)
    tok_sha = sha256_file(tokenizer_path)
    tok = cached_tokenizer(tokenizer_path, tok_sha)  # the tokenize stage's, when it ran here
    dtype = shard_format.dtype_for_vocab(tok.max_id)
    readers = [prefix for source in plan.order for prefix, _ in caches.shards[source]]
    cache_shas = {prefix: sha256_file(corpus.absolute(prefix + ".idx")) for prefix in readers}
    fingerprint = plan_fingerprint(plan)
    params = {
        "build": name,
        "plan": fingerprint,
        "shard_tokens": shard_tokens,
        "tokenizer": tok_sha,
        "caches": cache_shas,
        "mix": mix,
    }
    stage_name = f"shards:{name}"
    manifest_path = build_dir / "manifest.json"
    with Catalog.open(corpus) as catalog:
        last = catalog.exec_one(
            "SELECT params_hash, status FROM stage_runs WHERE stage = ? ORDER BY id DESC LIMIT 1",
            [stage_name],
        )
        # Done only if the last run is this plan's (an earlier one's files were written over by
        # the plan in between: another --seed of the same build name) and the files are intact.
        if not force and last == (params_hash(params), "done"):
            done = _read_manifest(manifest_path)
            if (
                done is not None
                and catalog.is_registered(manifest_path)
                and _manifest_intact(catalog, corpus, manifest_path)
            ):
                return done
        if last is not None and last[0] != params_hash(params):
            _clear_build_outputs(corpus, catalog, build_dir)
            clear_markers(corpus, stage_name)
        run = catalog.start_stage(stage_name, params)
    remove_stale_temporaries(build_dir)

    pools = [caches.pools[s] for s in plan.order]
    base = np.cumsum([0, *[p.lengths.size for p in pools]])
    all_lengths = np.concatenate([p.lengths for p in pools]) if pools else np.zeros(0, np.int64)
    plan_dir = f"{PLANS_DIR}/{name}/{fingerprint[:32]}"
    bounds: dict[str, list[tuple[int, int]]] = {}
    split_totals: dict[str, tuple[int, int]] = {}
    for split, src, doc, take in (
        ("train", plan.train_source, plan.train_doc, plan.train_take),
        ("valid", plan.valid_source, plan.valid_doc, None),
    ):
        src64, doc64 = np.asarray(src, np.int64), np.asarray(doc, np.int64)
        pick_len = all_lengths[base[src64] + doc64] if src64.size else np.zeros(0, np.int64)
        if take is not None:
            pick_len = np.where(take > 0, take, pick_len)
        bounds[split] = shard_bounds(pick_len, shard_tokens)
        split_totals[split] = (int(pick_len.size), int(pick_len.sum()))
        path = corpus.absolute(f"{plan_dir}/{split}.npy")
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            locations = _pick_locations(plan, caches, src64, doc64)
            if take is not None:
                locations = np.column_stack([locations, np.asarray(take, np.int64)])
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, locations)
    stage = ShardStage(name, plan_dir, readers, bounds, dtype)
    outcome = run_stage(stage, corpus, executor)
    splits: dict[str, Any] = {}
    by_split: dict[str, list[dict[str, Any]]] = {"train": [], "valid": []}
    for unit, result in zip(stage.units(corpus), outcome.results, strict=True):
        s = result.stats
        by_split[unit.params["split"]].append(
            {
                "bin": Path(result.outputs[0]).name,
                "idx": Path(result.outputs[1]).name,
                "sha256": s["sha256"],
                "idx_sha256": s["idx_sha256"],
                "bytes": int(s["bytes"]),
                "documents": int(s["documents"]),
                "tokens": int(s["tokens"]),
            }
        )
    for split, entries in by_split.items():
        n_docs, n_tokens = split_totals[split]
        splits[split] = {"documents": n_docs, "tokens": n_tokens, "shards": entries}
    if outcome.stats["units_run"]:
        echo(
            f"wrote {outcome.stats['units_run']} of {outcome.stats['units']} shards "
            f"({outcome.stats['units_resumed']} already written)"
        )
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
    # What trainers read besides the shards (phicorpus.shard.trainers), written before the manifest
    # that marks the build finished.
    assert tok.eos_id is not None  # load_tokenizer refuses a tokenizer without one
    eos_token = tok.id_to_token(tok.eos_id) or trainers.eos_token_of(tokenizer_path.read_bytes(), tok.eos_id)
    manifest["megatron"] = trainers.megatron_section(manifest, eos_token)
    extras = {
        build_dir / trainers.TOKENIZER_CONFIG: (
            json.dumps(trainers.tokenizer_config(eos_token), indent=2, sort_keys=True) + "\n"
        ).encode(),
        build_dir / trainers.BUILD_README: trainers.build_readme(manifest).encode(),
    }
    for path, blob in extras.items():
        publish_bytes(path, blob)
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    publish_bytes(manifest_path, data)
    with Catalog.open(corpus) as catalog, catalog.transaction():

        def record(path: Path, kind: str, blob: bytes, rows: int | None, tokens: int | None) -> ShardRecord:
            sha = hashlib.sha256(blob).hexdigest()
            return ShardRecord(corpus.relative(path), kind, None, "build", sha, len(blob), rows, tokens)

        catalog.register_shards(
            [record(path, "build-file", blob, None, None) for path, blob in extras.items()]
            + [record(manifest_path, "manifest", data, splits["train"]["documents"], train_total)]
        )
        catalog.finish_stage(run, {"train_tokens": train_total, "valid_tokens": splits["valid"]["tokens"]})
    return manifest


def _manifest_intact(catalog: Catalog, corpus: Corpus, path: Path) -> bool:
    """The manifest on disk is the one registered (same size and sha256)."""
    record = next((r for r in catalog.shards(kind="manifest") if r.path == corpus.relative(path)), None)
    try:
        same_size = record is not None and path.stat().st_size == record.bytes
        return same_size and record is not None and sha256_file(path) == record.sha256
    except OSError:
        return False


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

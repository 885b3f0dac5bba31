"""The main job, ``phicorpus build``: a short orchestrator that chains the stages.

    plan (mix.planning) -> bioS (sources.bios) | LLM generation (generate) + sandbox (verify)
    -> code ingestion (sources.code) -> filter -> dedup -> decontam -> tokenizer + tokenize
    (tokenize.stage) -> mix plan (mix) -> shards + manifest (shard.stage)

Every stage skips itself when it is done with the same parameters, so a re-run resumes. The
stages that work unit by unit (filter, decontam, tokenize, shards: :mod:`phicorpus.stage`) run
on the executor given (the local one by default); on any other executor (Ray) dedup runs as its
sharded steps (:mod:`phicorpus.dedup.sharded`, the same decisions). The others run here.

Example:
    >>> from phicorpus.config import Config
    >>> manifest = run_build(Corpus.open("corpus/"), Config(), BuildInputs())  # doctest: +SKIP
    >>> manifest["sources"]["code"]["epochs"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog, kept_counts, params_hash
from phicorpus.config import BuildConfig, Config, ExecutorConfig
from phicorpus.corpus import (
    Corpus,
    file_kind_problem,
    publish_bytes,
    read_texts,
    remove_stale_temporaries,
    sha256_file,
)
from phicorpus.decontam import run_decontam
from phicorpus.dedup.sharded import run_dedup_sharded
from phicorpus.dedup.stage import run_dedup
from phicorpus.filter.stage import run_filter
from phicorpus.mix import LLM_SOURCES, OFFLINE_SOURCES, REPHRASE_SOURCES, WEB_SOURCES, MixPlan, MixSpec
from phicorpus.mix.planning import (
    LLM_OVERGENERATE,
    BuildError,
    BuildInputs,
    check_llm_inputs,
    describe_llm_plan,
    format_mix_plan,
    llm_format_shares,
    plan_build,
    plan_llm_prompts,
    resolve_mix,
)
from phicorpus.prompts import write_prompts
from phicorpus.shard.stage import check_build_files, write_build
from phicorpus.sources.bios import write_bios
from phicorpus.sources.code import ingest_code, skip_summary
from phicorpus.sources.web import ingest_web
from phicorpus.stage import Executor
from phicorpus.tokenize.fitness import FITNESS_SAMPLE, check_training_tokenizer
from phicorpus.tokenize.stage import load_tokenizer, prepare_tokenizer, tokenize_sources

__all__ = ["BuildError", "BuildInputs", "build_shards", "generate_llm_sources", "run_build"]

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def build_shards(
    corpus: Corpus,
    config: BuildConfig,
    *,
    llm: bool = False,
    executor: Executor | None = None,
    echo: Echo = _quiet,
    member_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Tokenize, mix and write the shards of the documents already in the catalog.

    Args:
        corpus: The corpus.
        config: ``[build]``: mix, tokens, seed, split, epochs cap, shard size, tokenizer.
        llm: Whether ``synthetic`` means the LLM sources (else the offline generators).
        executor: Where the tokenize and shard units run (default: this machine).
        echo: Where progress lines go.
        member_weights: Split of a group's weight over its members (the LLM formats'
            ``[prompts] format_weights``; default: by the tokens each has).

    Returns:
        The manifest (also in ``build/<name>/manifest.json``).

    Raises:
        MixError: bad spec, empty source, too many epochs, a target that cannot be met.
        TokenizerError: the tokenizer cannot be read.
        CorpusError: a document file cannot be read.
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
    caches = tokenize_sources(
        corpus,
        name=config.name,
        sources=sources,
        tokenizer_path=tokenizer_path,
        threads=config.threads,
        executor=executor,
        echo=echo,
    )
    shares = spec.shares(groups, {s: int(p.lengths.sum()) for s, p in caches.pools.items()}, member_weights)
    plan = MixPlan.create(
        shares,
        caches.pools,
        total_tokens=config.tokens or None,
        seed=config.seed,
        valid_fraction=config.valid_fraction,
        max_epochs=config.max_epochs,
    )
    for line in format_mix_plan(plan):
        echo(line)
    manifest = write_build(
        corpus,
        plan,
        caches=caches,
        name=config.name,
        mix=str(spec),
        tokenizer_path=tokenizer_path,
        shard_tokens=config.shard_tokens,
        executor=executor,
        echo=echo,
    )
    split_note = valid_split_check(manifest, config.valid_fraction, caches.pools)
    if split_note is not None:
        echo(split_note)
    return manifest


def valid_split_check(manifest: dict[str, Any], fraction: float, pools: Any) -> str | None:
    """A line saying why the validation split is more than 20% off ``fraction`` (None when it is not).

    The split is by document: a source of few documents cannot hold out a small fraction exactly.
    """
    train = int(manifest["splits"]["train"]["tokens"])
    valid = int(manifest["splits"]["valid"]["tokens"])
    if fraction <= 0 or train <= 0:
        return None
    actual = valid / train
    if abs(actual / fraction - 1.0) <= 0.2:
        return None
    few = sorted((len(p.lengths), s) for s, p in pools.items() if len(p.lengths) * fraction < 5)
    why = (
        "the split is by document and "
        + ", ".join(f"{s} has {n:,} documents" for n, s in few)
        + f" (under 5 documents' worth at {fraction:.1%})"
        if few
        else "the split is by document and the held-out documents are not of average length"
    )
    return f"note: validation split is {actual:.2%} of training tokens, not {fraction:.2%}: {why}"


def generate_llm_sources(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    prompts: pa.Table,
    *,
    executor: Executor | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """Publish the prompts, generate their responses (journaled: a re-run never pays twice), then
    verify the programming exercises in the sandbox (ReST^EM: failing ones are dropped).

    On the Ray executor the requests are sent by ``[executor] workers`` Ray actors
    (:func:`phicorpus.generate.cluster.run_generation_cluster`), under the same cap.

    Raises:
        BuildError: the run stopped on the cost cap or an exhausted quota (re-run to resume).
    """
    # Imported here: the LLM client (openai) takes about a second to import, which a re-run of
    # an offline build that has nothing to do should not pay.
    from phicorpus.generate import GenerationParams
    from phicorpus.generate.cluster import generate_on
    from phicorpus.prompts import write_prompts
    from phicorpus.verify.exercises import verify_exercises

    path = write_prompts(corpus, prompts)
    stats = generate_on(
        executor,
        corpus,
        path,
        endpoints=[inputs.llm or ""],
        model=inputs.model or "",
        params=GenerationParams.from_config(config.generate),
        max_cost=inputs.max_cost,
        config=config.generate,
        workers=config.executor.workers,
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


def rephrase_web_documents(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    spec: MixSpec,
    groups: dict[str, tuple[str, ...]],
    *,
    executor: Executor | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """The ``rephrased`` sources: plan the prompts of the kept web documents for the rephrased
    share of ``--tokens`` (all of them without ``--tokens``), print their plan and cost, then
    decontaminate the sources, generate (journaled), gate and decontaminate the outputs.

    Raises:
        BuildError: the run stopped on the cost cap or an exhausted quota (re-run to resume).
    """
    from phicorpus.rephrase import plan_rephrase_prompts, run_rephrase

    formats: set[str] = set()
    share = 0.0
    for name, weight in spec.entries:
        members = [m for m in groups.get(name, (name,)) if m in REPHRASE_SOURCES]
        if members and weight > 0:
            formats.update(members)
            share += weight
    target = 0
    if config.build.tokens:
        target = int(share * config.build.tokens * (1 + config.build.valid_fraction) * LLM_OVERGENERATE)
    chosen = [f for f in REPHRASE_SOURCES if f in formats]
    if inputs.benchmarks:
        run_decontam(corpus, list(inputs.benchmarks), config.decontam)  # before planning: no laundering
    prompts = plan_rephrase_prompts(corpus, config, target_tokens=target, formats=chosen)
    if prompts.num_rows:
        for line in describe_llm_plan(prompts, config, inputs):
            echo("rephrase " + line)
    # Rounds (as for the generated sources): while the kept rephrases are short of the target, a
    # larger target takes more documents in the same seeded order; the prompts already answered
    # are in the journal and are not sent again.
    cap = max(1, config.build.llm_rounds) if target else 1
    stopped = f"round cap {cap} reached"
    stats: dict[str, Any] = {}
    kept = 0
    for round_no in range(1, cap + 1):
        stats = run_rephrase(
            corpus,
            config,
            endpoints=[inputs.llm or ""],
            model=inputs.model or "",
            max_cost=inputs.max_cost,
            api_key=inputs.api_key,
            benchmarks=(),  # sources done above; the outputs go through the build's decontam stage
            prompts=prompts,
            formats=chosen,
            target_tokens=target,
            executor=executor,
            echo=echo,
        )
        if stats["generate"].get("stop_reason"):
            raise BuildError(
                f"rephrasing stopped: {stats['generate']['stop_reason']}; what was received is kept, "
                "re-run to resume"
            )
        if not target:
            stopped = "every kept document rephrased"
            break
        kept = sum(n for s, n in kept_chars_tokens(corpus).items() if s in chosen)
        echo(f"rephrase round {round_no}: kept tokens {kept:,}/{target:,}")
        if kept >= target:
            stopped = "the rephrased sources reached their target"
            break
        if round_no == cap:
            break
        expected = int(pc.sum(prompts.column("expected_tokens")).as_py() or 0)
        per_expected = max(kept / expected, 0.05) if expected else 1.0
        more = plan_rephrase_prompts(
            corpus, config, target_tokens=expected + int((target - kept) * 1.1 / per_expected), formats=chosen
        )
        if more.num_rows <= prompts.num_rows:
            stopped = f"every kept {config.rephrase.source!r} document is rephrased"
            break
        echo(
            f"rephrase round {round_no + 1}: {more.num_rows - prompts.num_rows:,} more prompts from "
            f"documents not rephrased yet, sized from the kept tokens per expected token of this round"
        )
        prompts = more
    echo(f"rephrase: {round_no} round(s); {stopped}")
    if target and kept < target:
        stats["warnings"] = [
            f"rephrased: {kept:,} of {target:,} tokens kept after {round_no} round(s) ({stopped}); "
            "the mix repeats what was kept (see epochs): give more --web documents, raise "
            "[build] llm_rounds or --max-tokens, or use a stronger model"
        ]
    return stats


def run_build(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    *,
    executor: Executor | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """``phicorpus build``: print the plan, then run every stage not done yet and write the shards.

    Stages (each skips itself when done with the same parameters): the synthetic sources (LLM
    generation, or the offline bioS generator), code ingestion, filter, dedup, decontamination
    (with ``inputs.benchmarks``), then :func:`build_shards`.
    """
    # Every input is checked, and every check the plan can make is made, before anything is
    # written: the configuration is saved only for a build that passed them (issue 14).
    for path in inputs.code:
        problem = file_kind_problem(path) if not Path(path).is_dir() else None
        if problem is not None:
            raise BuildError(f"{path}: {problem} (--code)")
    for path in (*inputs.web, *inputs.benchmarks):
        # --web may name directories (of HTML, WARC, JSONL files), like --code
        problem = None if path in inputs.web and Path(path).is_dir() else file_kind_problem(path)
        if problem is not None:
            raise BuildError(f"{path}: {problem} ({'--web' if path in inputs.web else '--benchmarks'})")
    if config.build.tokenizer:
        tok = load_tokenizer(Path(config.build.tokenizer))  # an unreadable file fails before any work
        fit = check_training_tokenizer(
            tok, _tokenizer_sample(corpus), allow_lossy=config.build.allow_lossy_tokenizer
        )
        echo(fit.describe())
    check_llm_inputs(config, inputs)  # the flags an LLM build needs, before any plan figure
    plan_lines, planned_tokens = plan_build(
        corpus,
        config.build,
        inputs,
        config.ingest,
        rephrase_formats=config.rephrase.formats,
        format_weights=dict(config.prompts.format_weights) if inputs.llm else None,
    )
    for line in plan_lines:
        echo(line)
    for line in plan_warnings(corpus, config, inputs):
        echo(f"warning: {line}")
    # The build is the corpus's one writer: whatever a killed run half-wrote anywhere (a stage
    # whose re-run is skipped included, e.g. bioS's qa.parquet) goes now.
    for folder in ("docs", "qa", "prompts", "cache", "build"):
        remove_stale_temporaries(corpus.root / folder)
    llm = bool(inputs.llm)
    with Catalog.open(corpus) as catalog:
        spec, groups, _ = resolve_mix(
            config.build.mix, catalog, llm=llm, rephrase_formats=config.rephrase.formats
        )
        have = kept_counts(catalog)
    wanted = {m for name, w in spec.entries if w > 0 for m in groups.get(name, (name,))}
    missing = sorted(s for s in wanted & set(LLM_SOURCES) if not have.get(s, (0, 0))[0])
    rephrase = sorted(wanted & set(REPHRASE_SOURCES))
    if rephrase and not llm and not any(have.get(s, (0, 0))[0] for s in rephrase):
        missing.append("rephrased")
    if (rephrase or wanted & set(WEB_SOURCES)) and not inputs.web and not have.get("web", (0, 0))[0]:
        raise BuildError(
            "the mix names web or rephrased documents but this corpus has none: give --web PATH "
            "(JSONL/Parquet with a text column, HTML files, WARC files, or directories of them)"
        )
    if rephrase and llm and not inputs.model:
        raise BuildError("--llm needs --model (the model name at that endpoint)")
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
    # The resolved configuration, re-used by re-runs (DESIGN.md, "Corpus directory"). Saved once
    # the plan and inputs passed their checks; a build that then fails puts the previous one back,
    # so its flags do not stick (a killed or interrupted build keeps them: its re-run resumes).
    previous = corpus.config_path.read_bytes() if corpus.config_path.is_file() else None
    toml = config.to_toml().encode()
    if previous != toml:
        publish_bytes(corpus.config_path, toml)
    build_params = _build_params(config, inputs)
    unchanged = _unchanged_build(corpus, config.build.name, build_params)
    if unchanged is not None:
        echo("nothing changed since this build finished: every stage is done")
        return unchanged
    try:
        manifest, warnings = _run_stages(
            corpus, config, inputs, wanted, prompts, executor, echo, mix=(spec, groups)
        )
    except Exception:
        if previous is None:
            corpus.config_path.unlink(missing_ok=True)
        elif previous != toml:
            publish_bytes(corpus.config_path, previous)
        raise
    with Catalog.open(corpus) as catalog, catalog.transaction():
        run = catalog.start_stage(f"build:{config.build.name}", build_params)
        catalog.finish_stage(run, {"state": _catalog_state(catalog)})
    for line in warnings + _smaller_than_planned(manifest, planned_tokens):
        echo(f"warning: {line}")
    return manifest


def _run_stages(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    wanted: set[str],
    prompts: pa.Table | None,
    executor: Executor | None,
    echo: Echo,
    mix: tuple[MixSpec, dict[str, tuple[str, ...]]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Every stage of the build in order, a progress line before and after each; the manifest and
    the stages' warnings."""
    clock = _Clock(echo)
    if wanted & set(OFFLINE_SOURCES):
        clock.start(f"bioS: {config.build.bios_people:,} people x {config.build.bios_multi}")
        stats = write_bios(
            corpus,
            config.build.bios_people,
            seed=config.build.bios_seed,
            multi=config.build.bios_multi,
            permute=config.build.bios_permute,
            fullname=config.build.bios_fullname,
        )
        clock.done("already written" if stats.get("skipped") else f"{stats.get('documents', 0):,} documents")
    if "code" in wanted:
        clock.start("ingest code: " + (", ".join(map(str, inputs.code)) or "the Python standard library"))
        stats = ingest_code(corpus, list(inputs.code) or None, config=config.ingest, progress=echo)
        said = f"{stats.get('documents', 0):,} new documents, {stats.get('total_documents', 0):,} in all"
        clock.done(said + (f"; {skip_summary(stats)}" if stats.get("skipped") else ""))
    rephrase = wanted & set(REPHRASE_SOURCES)
    if (rephrase or wanted & set(WEB_SOURCES)) and inputs.web:
        clock.start("ingest web: " + ", ".join(map(str, inputs.web)))
        stats = ingest_web(corpus, list(inputs.web), config=config.ingest)
        said = f"{stats.get('documents', 0):,} new documents, {stats.get('total_documents', 0):,} in all"
        clock.done(said + (f"; {skip_summary(stats)}" if stats.get("skipped") else ""))
    warnings: list[str] = []

    def clean() -> None:
        """Filter, dedup and (with benchmarks) decontaminate; each skips itself when done."""
        nonlocal warnings
        warnings += clean_documents(corpus, config, inputs, executor=executor, clock=clock)

    if prompts is not None:
        assert mix is not None
        # Generation in rounds until the kept (cleaned) tokens reach the targets (issue 11).
        outcome = generate_to_target(
            corpus, config, inputs, *mix, prompts, clean=clean, executor=executor, echo=echo
        )
        warnings += outcome["warnings"]
    for rounds in range(2 if rephrase and inputs.llm and mix else 1):
        if rounds == 1:  # the web documents are filtered and deduplicated: rephrase the kept ones
            assert mix is not None
            stats = rephrase_web_documents(corpus, config, inputs, *mix, executor=executor, echo=echo)
            warnings += stats.get("warnings", [])
        clean()
    llm = bool(inputs.llm)
    weights = dict(config.prompts.format_weights) if llm else None
    manifest = build_shards(
        corpus, config.build, llm=llm, executor=executor, echo=echo, member_weights=weights
    )
    return manifest, warnings


def clean_documents(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    *,
    executor: Executor | None = None,
    clock: _Clock | None = None,
) -> list[str]:
    """Filter, dedup and (with benchmarks) decontaminate, each skipped when already done with the
    same parameters and inputs; returns the stages' warnings."""
    clock = clock or _Clock(_quiet)
    warnings: list[str] = []
    clock.start("filter")
    stats = run_filter(corpus, config.filter, executor=executor)
    warnings += list(stats.get("warnings", []))
    clock.done(f"{sum(stats.get('dropped', {}).values()):,} dropped, {stats.get('kept_total', 0):,} kept")
    clock.start("dedup")
    if executor is None or not executor.distributed:
        stats = run_dedup(corpus, config.dedup)  # one process: the fastest on one machine
    else:
        threads = config.build.threads or None
        stats = run_dedup_sharded(corpus, config.dedup, executor=executor, threads=threads)
    warnings += stats.get("warnings", [])
    exact, near = stats.get("exact_duplicates", 0), stats.get("near_duplicates", 0)
    clock.done(f"{exact:,} exact and {near:,} near duplicates")
    if inputs.benchmarks:
        clock.start("decontam")
        run_decontam(corpus, list(inputs.benchmarks), config.decontam, executor=executor)
        clock.done("done")
    return warnings


class _Clock:
    """``stage ...`` before a stage and ``stage: what it did (1.2 s)`` after it."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.name = ""
        self.began = 0.0

    def start(self, name: str) -> None:
        import time

        self.name, self.began = name, time.monotonic()
        self.echo(f"{name} ...")

    def done(self, what: str) -> None:
        import time

        self.echo(f"{self.name.split(':')[0]}: {what} ({time.monotonic() - self.began:.1f} s)")


#: A build with fewer training tokens than this share of its --tokens target is called out.
FAR_SMALLER = 0.5


def _smaller_than_planned(manifest: dict[str, Any], planned: int) -> list[str]:
    got = int(manifest["splits"]["train"]["tokens"])
    if planned and got < FAR_SMALLER * planned:
        share = f"{got / planned:.1%}"
        return [f"the build has {got:,} training tokens, {share} of the {planned:,} its plan showed"]
    return []


def plan_warnings(corpus: Corpus, config: Config, inputs: BuildInputs) -> list[str]:
    """Settings that will throw most of the data away, and what a new --code does to the old code."""
    lines = []
    if config.dedup.threshold < 0.5:
        lines.append(
            f"dedup threshold {config.dedup.threshold:g}: documents sharing a small part of their word "
            "5-grams count as duplicates; expect most of every source dropped (default 0.8)"
        )
    if config.filter.min_edu >= 4:
        lines.append(f"--min-edu {config.filter.min_edu:g} keeps only documents the classifier scores "
                     f">= {config.filter.min_edu:g} of 5; expect most documents dropped")  # fmt: skip
    if corpus.catalog_path.is_file():
        current = [str(Path(p).resolve()) for p in inputs.code] or None
        with Catalog.open(corpus) as catalog:
            rows = catalog.exec(
                "SELECT provenance->>'input', count(*) FROM documents WHERE source = 'code' GROUP BY ALL"
            )
        if current is not None:
            earlier = sum(int(n) for src, n in rows if not any(str(src).startswith(c) for c in current))
            if earlier:
                lines.append(
                    f"'code' already holds {earlier:,} documents ingested from other inputs; they stay "
                    "in the mix beside --code's (a source only grows; use a new corpus to replace it)"
                )
    return lines


def _tokenizer_sample(corpus: Corpus, n: int = 64) -> list[str]:
    """Up to ``n`` kept documents of the corpus (by id), else a fixed text, for the [UNK] rate."""
    if corpus.catalog_path.is_file():
        with Catalog.open(corpus) as catalog:
            rows = catalog.exec(
                'SELECT file, "row" FROM documents WHERE drop_stage IS NULL ORDER BY id LIMIT ?', [n]
            )
        texts: list[str] = []
        for file in sorted({f for f, _ in rows}):
            texts += read_texts(corpus, file, [int(r) for f, r in rows if f == file])
        if texts:
            return texts
    return list(FITNESS_SAMPLE)


# -- a re-run with nothing to do ------------------------------------------------------------------
#
# Every stage skips itself when done with the same parameters and inputs; asking each one still
# costs a pass over the documents (the tokenizer sample, the mix plan). So a finished build
# records what it was given and the catalog's state after it; a re-run given the same, on a
# catalog nothing has touched since (no stage run, file or document added or dropped) and with
# the build's files in place, is done at once.


def _build_params(config: Config, inputs: BuildInputs) -> dict[str, Any]:
    tokenizer = Path(config.build.tokenizer) if config.build.tokenizer else None
    return {
        # Not where units ran: outputs are byte-identical whatever executor ran them.
        "config": dataclasses.replace(config, executor=ExecutorConfig()).to_toml(),
        "llm": inputs.llm or "",
        "model": inputs.model or "",
        "max_cost": inputs.max_cost,
        "code": [str(Path(p).resolve()) for p in inputs.code],
        "web": [str(Path(p).resolve()) for p in inputs.web],
        "benchmarks": [str(Path(p).resolve()) for p in inputs.benchmarks],
        "tokenizer_sha256": sha256_file(tokenizer) if tokenizer else "",
    }


def _catalog_state(catalog: Catalog) -> list[Any]:
    row = catalog.exec_one(
        "SELECT (SELECT max(id) FROM stage_runs), (SELECT count(*) FROM shards), "
        "(SELECT max(created_at)::VARCHAR FROM shards), (SELECT count(*) FROM documents), "
        "(SELECT count(*) FROM documents WHERE drop_stage IS NULL)"
    )
    return list(row or ())


def _unchanged_build(corpus: Corpus, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of build ``name`` when it finished with ``params`` and nothing changed since."""
    if not corpus.writer_catalog_path.is_file() and not corpus.catalog_path.is_file():
        return None
    with Catalog.open(corpus) as catalog:
        row = catalog.exec_one(
            "SELECT stage, params_hash, status, stats FROM stage_runs ORDER BY id DESC LIMIT 1"
        )
        if row is None or row[0] != f"build:{name}" or row[1] != params_hash(params) or row[2] != "done":
            return None
        if json.loads(row[3] or "{}").get("state") != _catalog_state(catalog):
            return None
    build_dir = corpus.build_dir(name)
    try:
        manifest: dict[str, Any] = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))
        (build_dir / "tokenizer.json").stat()
        # verify's check (size + sha256) on every shard, as a build that runs ends with.
        if check_build_files(corpus, name, manifest):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def generate_to_target(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    spec: MixSpec,
    groups: dict[str, tuple[str, ...]],
    prompts: pa.Table,
    *,
    clean: Callable[[], None] | None = None,
    executor: Executor | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """Generate in rounds until every LLM source's *kept* tokens (after post-processing, the
    sandbox, filter and dedup) reach its target: share x ``--tokens`` x (1 + valid fraction) x
    :data:`LLM_OVERGENERATE`.

    Each round after the first renders prompts from topics not used yet (another seed), as many
    per format as its shortfall over the kept tokens per request observed in the round before.
    ``[build] llm_rounds`` and ``--max-cost`` bound it; the summary line says how many rounds ran
    and why they stopped. Returns ``{"rounds", "stopped", "kept", "targets"}``.

    Raises:
        BuildError: the first round stopped on the cost cap or an exhausted quota.
    """
    weights = dict(config.prompts.format_weights)
    shares = llm_format_shares(spec, groups, weights)
    scale = config.build.tokens * (1 + config.build.valid_fraction) * LLM_OVERGENERATE
    targets = {fmt: int(share * scale) for fmt, share in shares.items()}
    cap = max(1, config.build.llm_rounds)
    # The rounds' prompt files, recorded so that a re-run (or a resume after a kill) replays the
    # same rounds, sending nothing already answered, instead of sizing new ones.
    fingerprint = hashlib.sha256(
        json.dumps(
            [inputs.model, config.build.tokens, str(spec), sorted(weights.items()), config.build.seed,
             config.generate.samples, config.generate.max_tokens],
            default=str,
        ).encode()
    ).hexdigest()[:16]  # fmt: skip
    record = corpus.prompts_dir / f"rounds-{fingerprint}.json"
    recorded: list[str] = json.loads(record.read_text()) if record.is_file() else []
    used_topics: set[str] = set()
    stopped = f"round cap {cap} reached"
    kept: dict[str, int] = {}
    rounds = 0
    for round_no in range(1, cap + 1):
        rounds = round_no
        if round_no <= len(recorded):
            prompts = pq.read_table(corpus.root / recorded[round_no - 1])
        else:
            recorded.append(corpus.relative(write_prompts(corpus, prompts)))
            publish_bytes(record, json.dumps(recorded).encode())
        before = kept_chars_tokens(corpus)
        try:
            stats = generate_llm_sources(corpus, config, inputs, prompts, executor=executor, echo=echo)
        except BuildError as exc:
            if round_no == 1:
                raise
            stopped = f"round {round_no} stopped: {exc}"
            break
        if clean is not None:
            clean()
        else:
            clean_documents(corpus, config, inputs)
        kept = kept_chars_tokens(corpus)
        formats = prompts.column("format").to_pylist()
        used_topics.update(t for t in prompts.column("topic_id").to_pylist() if t)
        short = {f: t - kept.get(f, 0) for f, t in targets.items() if kept.get(f, 0) < t}
        echo(
            f"round {round_no}: kept tokens "
            + ", ".join(f"{f} {kept.get(f, 0):,}/{t:,}" for f, t in sorted(targets.items()))
        )
        if not short:
            stopped = "every LLM source reached its target"
            break
        if stats.get("stop_reason"):
            stopped = f"generation stopped: {stats['stop_reason']}"
            break
        if round_no == cap:
            break
        if round_no < len(recorded):
            continue  # the next round was sized and written by an earlier run: replay it
        counts: dict[str, int] = {}
        for fmt, deficit in short.items():
            asked = formats.count(fmt) * config.generate.samples
            gained = kept.get(fmt, 0) - before.get(fmt, 0)
            if asked and gained > 0:
                per_request = gained / asked
            else:  # nothing kept last round: assume a quarter of the expected answer survives
                per_request = max(1.0, 0.25 * config.generate.expected_tokens)
            counts[fmt] = max(1, math.ceil(round_size(deficit / per_request) / config.generate.samples))
        prompts = render_round(config, inputs, counts, seed=config.build.seed + round_no, used=used_topics)
        echo(
            f"round {round_no + 1}: {prompts.num_rows:,} more prompts ("
            + ", ".join(f"{f} {n:,}" for f, n in sorted(counts.items()))
            + ") from topics not used yet, sized from the kept tokens per request of this round"
        )
    echo(f"LLM generation: {rounds} round(s); {stopped}")
    warnings = short_source_warnings(corpus, targets, kept, rounds)
    return {"rounds": rounds, "stopped": stopped, "kept": kept, "targets": targets, "warnings": warnings}


def short_source_warnings(
    corpus: Corpus, targets: dict[str, int], kept: dict[str, int], rounds: int
) -> list[str]:
    """One line per LLM source the rounds left below its target: what it kept, its commonest drop
    reasons, and what the mix does about it (repeats it, or gives its share to the others)."""
    lines: list[str] = []
    short = sorted(f for f, t in targets.items() if kept.get(f, 0) < t)
    if not short:
        return lines
    with Catalog.open(corpus) as catalog:
        for fmt in short:
            drops = catalog.exec(
                "SELECT drop_reason, count(*) AS n FROM documents "
                "WHERE source = ? AND drop_reason IS NOT NULL "
                "GROUP BY ALL ORDER BY n DESC, drop_reason LIMIT 3",
                [fmt],
            )
            why = ", ".join(f"{reason} {n:,}" for reason, n in drops) or "no answers"
            after = (
                "its share of the mix goes to the other formats of its group"
                if not kept.get(fmt)
                else "the mix repeats its documents (see epochs)"
            )
            lines.append(
                f"{fmt}: {kept.get(fmt, 0):,} of {targets[fmt]:,} tokens kept after {rounds} round(s) "
                f"(dropped: {why}); {after}; "
                "raise [build] llm_rounds or --max-tokens, or use a stronger model"
            )
    return lines


def round_size(expected: float) -> float:
    """Requests for a top-up round whose mean need is ``expected`` requests (shortfall over kept
    tokens per request): 10% over it, and at least enough that a kept share as noisy as a coin
    flip per request (spread about equal to the mean) still reaches the shortfall at two standard
    deviations: ``n - 2 sqrt(n) >= expected``, that is ``sqrt(n) >= 1 + sqrt(expected + 1)``.
    A small shortfall gets a few requests more than its mean (3 -> 9), a large one 10% more."""
    return max(1.1 * expected, (1.0 + math.sqrt(expected + 1.0)) ** 2)


def kept_chars_tokens(corpus: Corpus) -> dict[str, int]:
    """Kept tokens per source as characters / 4: the one unit the rounds measure in, before and
    after the build's tokenizer exists (so a re-run sizes nothing differently)."""
    with Catalog.open(corpus) as catalog:
        rows = catalog.exec(
            "SELECT source, coalesce(sum(chars), 0) FROM documents WHERE drop_stage IS NULL GROUP BY source"
        )
    return {str(s): int(c) // 4 for s, c in rows}


def render_round(
    config: Config, inputs: BuildInputs, counts: dict[str, int], *, seed: int, used: set[str]
) -> pa.Table:
    """Prompts for one top-up round: ``counts`` per format, topics not in ``used`` first."""
    import dataclasses

    from phicorpus.prompts import render_prompts
    from phicorpus.topics import load_topics

    topics = load_topics(config.prompts.topics_dir or None)
    fresh = [t for t in topics if t.id not in used] or topics
    n = sum(counts.values())
    prompts_config = dataclasses.replace(
        config.prompts, format_weights={fmt: c / n for fmt, c in counts.items()}
    )
    return render_prompts(
        n, formats=tuple(counts), seed=seed, web=inputs.web, config=prompts_config, topics=fresh
    )

"""The main job, ``phicorpus build``: a short orchestrator that chains the stages.

    plan (mix.planning) -> bioS (sources.bios) | LLM generation (generate) + sandbox (verify)
    -> code ingestion (sources.code) -> filter -> dedup -> decontam -> tokenizer + tokenize
    (tokenize.stage) -> mix plan (mix) -> shards + manifest (shard.stage)

Every stage skips itself when it is done with the same parameters, so a re-run resumes. The
stages that work unit by unit (tokenize, shards: :mod:`phicorpus.stage`) run on the executor
given (the local one by default); the others run here, in this process.

Example:
    >>> from phicorpus.config import Config
    >>> manifest = run_build(Corpus.open("corpus/"), Config(), BuildInputs())  # doctest: +SKIP
    >>> manifest["sources"]["code"]["epochs"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phicorpus.catalog import Catalog, kept_counts
from phicorpus.config import BuildConfig, Config
from phicorpus.corpus import Corpus, publish_bytes, remove_stale_temporaries
from phicorpus.decontam import run_decontam
from phicorpus.dedup.stage import run_dedup
from phicorpus.filter.stage import run_filter
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.mix import LLM_SOURCES, OFFLINE_SOURCES, MixPlan
from phicorpus.mix.planning import (
    LLM_OVERGENERATE,
    BuildError,
    BuildInputs,
    describe_llm_plan,
    describe_plan,
    format_mix_plan,
    llm_format_shares,
    plan_llm_prompts,
    resolve_mix,
)
from phicorpus.mix.spec import MixSpec
from phicorpus.prompts import write_prompts
from phicorpus.shard.stage import write_build
from phicorpus.sources.bios import write_bios
from phicorpus.sources.code import ingest_code
from phicorpus.stage import Executor
from phicorpus.tokenize.stage import load_tokenizer, prepare_tokenizer, tokenize_sources
from phicorpus.verify.exercises import verify_exercises

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
    shares = spec.shares(
        groups, {s: int(p.lengths.sum()) for s, p in caches.pools.items()}, member_weights
    )
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
    few = sorted(
        (len(p.lengths), s) for s, p in pools.items() if len(p.lengths) * fraction < 5
    )
    why = (
        "the split is by document and "
        + ", ".join(f"{s} has {n:,} documents" for n, s in few)
        + f" (under 5 documents' worth at {fraction:.1%})"
        if few
        else "the split is by document and the held-out documents are not of average length"
    )
    return f"note: validation split is {actual:.2%} of training tokens, not {fraction:.2%}: {why}"


def generate_llm_sources(
    corpus: Corpus, config: Config, inputs: BuildInputs, prompts: pa.Table, *, echo: Echo = print
) -> dict[str, Any]:
    """Publish the prompts, generate their responses (journaled: a re-run never pays twice), then
    verify the programming exercises in the sandbox (ReST^EM: failing ones are dropped).

    Raises:
        BuildError: the run stopped on the cost cap or an exhausted quota (re-run to resume).
    """
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
    for path in inputs.code:
        if not Path(path).exists():
            raise BuildError(f"{path}: no such file or directory (--code)")
    if config.build.tokenizer:
        load_tokenizer(Path(config.build.tokenizer))  # an unreadable file fails before any work
    for line in describe_plan(
        corpus, config.build, inputs, config.ingest, format_weights=dict(config.prompts.format_weights)
    ):
        echo(line)
    # The build is the corpus's one writer: whatever a killed run half-wrote anywhere (a stage
    # whose re-run is skipped included, e.g. bioS's qa.parquet) goes now.
    for folder in ("docs", "prompts", "cache", "build"):
        remove_stale_temporaries(corpus.root / folder)
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
        write_bios(
            corpus,
            config.build.bios_people,
            seed=config.build.seed,
            multi=config.build.bios_multi,
            permute=config.build.bios_permute,
            fullname=config.build.bios_fullname,
        )
    if "code" in wanted:
        ingest_code(
            corpus, list(inputs.code) or None, config=config.ingest
        )
    if prompts is not None:
        generate_to_target(corpus, config, inputs, spec, groups, prompts, echo=echo)
    else:
        clean_documents(corpus, config, inputs)
    weights = dict(config.prompts.format_weights) if llm else None
    return build_shards(
        corpus, config.build, llm=llm, executor=executor, echo=echo, member_weights=weights
    )


def clean_documents(corpus: Corpus, config: Config, inputs: BuildInputs) -> None:
    """Filter, dedup and (with benchmarks) decontaminate: each skips itself when already done."""
    run_filter(corpus, config.filter)
    run_dedup(corpus, config.dedup)
    if inputs.benchmarks:
        run_decontam(corpus, list(inputs.benchmarks), config.decontam)


def generate_to_target(
    corpus: Corpus,
    config: Config,
    inputs: BuildInputs,
    spec: MixSpec,
    groups: dict[str, tuple[str, ...]],
    prompts: pa.Table,
    *,
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
            stats = generate_llm_sources(corpus, config, inputs, prompts, echo=echo)
        except BuildError as exc:
            if round_no == 1:
                raise
            stopped = f"round {round_no} stopped: {exc}"
            break
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
            counts[fmt] = max(1, math.ceil(deficit * 1.1 / per_request / config.generate.samples))
        prompts = render_round(config, inputs, counts, seed=config.build.seed + round_no, used=used_topics)
        echo(
            f"round {round_no + 1}: {prompts.num_rows:,} more prompts ("
            + ", ".join(f"{f} {n:,}" for f, n in sorted(counts.items()))
            + ") from topics not used yet, sized from the kept tokens per request of this round"
        )
    echo(f"LLM generation: {rounds} round(s); {stopped}")
    return {"rounds": rounds, "stopped": stopped, "kept": kept, "targets": targets}


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

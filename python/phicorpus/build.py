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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from phicorpus.catalog import Catalog, kept_counts
from phicorpus.config import BuildConfig, Config
from phicorpus.corpus import Corpus, publish_bytes, remove_stale_temporaries
from phicorpus.decontam import run_decontam
from phicorpus.dedup.stage import run_dedup
from phicorpus.filter.stage import run_filter
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.mix import LLM_SOURCES, OFFLINE_SOURCES, MixPlan
from phicorpus.mix.planning import (
    BuildError,
    BuildInputs,
    describe_llm_plan,
    describe_plan,
    format_mix_plan,
    plan_llm_prompts,
    resolve_mix,
)
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
) -> dict[str, Any]:
    """Tokenize, mix and write the shards of the documents already in the catalog.

    Args:
        corpus: The corpus.
        config: ``[build]``: mix, tokens, seed, split, epochs cap, shard size, tokenizer.
        llm: Whether ``synthetic`` means the LLM sources (else the offline generators).
        executor: Where the tokenize and shard units run (default: this machine).
        echo: Where progress lines go.

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
    shares = spec.shares(groups, {s: int(p.lengths.sum()) for s, p in caches.pools.items()})
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
    return write_build(
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
    for line in describe_plan(corpus, config.build, inputs, config.ingest):
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
    if prompts is not None:
        generate_llm_sources(corpus, config, inputs, prompts, echo=echo)
    if "code" in wanted:
        ingest_code(
            corpus, list(inputs.code) or None, config=config.ingest
        )
    run_filter(corpus, config.filter)
    run_dedup(corpus, config.dedup)
    if inputs.benchmarks:
        run_decontam(corpus, list(inputs.benchmarks), config.decontam)
    return build_shards(corpus, config.build, llm=llm, executor=executor, echo=echo)

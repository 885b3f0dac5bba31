"""The plan of a build, printed before any work, and the exact mix plan printed once tokenized.

:func:`describe_plan` says, per source, its share, token target, where its documents come from,
how many there are and the epochs they would be repeated for (estimated from characters / 4 until
tokenized); with an LLM, :func:`plan_llm_prompts` renders (in memory: nothing is sent) the
prompts whose answers fill the LLM sources' share and :func:`describe_llm_plan` prices them.
:func:`format_mix_plan` prints the token-exact :class:`~phicorpus.mix.MixPlan` once documents
are tokenized.

Example:
    >>> for line in describe_plan(Corpus.open("corpus/"), BuildConfig(), BuildInputs()):  # doctest: +SKIP
    ...     print(line)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from phicorpus.catalog import Catalog, kept_counts
from phicorpus.config import BuildConfig, Config, IngestConfig
from phicorpus.corpus import Corpus
from phicorpus.mix.plan import SHARE_TOLERANCE, MixPlan
from phicorpus.mix.spec import (
    LLM_SOURCES,
    OFFLINE_SOURCES,
    REPHRASE_SOURCES,
    WEB_SOURCES,
    MixSpec,
    default_groups,
)

__all__ = [
    "KNOWN_SOURCES",
    "LLM_OVERGENERATE",
    "MAX_SHARD_FILES",
    "BuildError",
    "BuildInputs",
    "check_llm_inputs",
    "describe_llm_plan",
    "describe_plan",
    "format_mix_plan",
    "llm_format_shares",
    "plan_build",
    "plan_llm_prompts",
    "resolve_mix",
]

Echo = Callable[[str], None]
#: Every source name a mix may use, besides the groups.
KNOWN_SOURCES = ("code", *LLM_SOURCES, *OFFLINE_SOURCES, *WEB_SOURCES, *REPHRASE_SOURCES)


class BuildError(ValueError):
    """The build cannot go on; the message says why in one line."""


def resolve_mix(
    mix: str, catalog: Catalog, *, llm: bool, rephrase_formats: Sequence[str] | None = None
) -> tuple[MixSpec, dict[str, tuple[str, ...]], dict[str, tuple[int, int]]]:
    """Parse ``mix`` against the groups and the sources in the catalog (``rephrase_formats``:
    the members of ``rephrased``, default every rephrase format)."""
    groups = default_groups(llm, rephrase_formats)
    counts = kept_counts(catalog)
    available = sorted({*groups, *KNOWN_SOURCES, *counts})
    return MixSpec.parse(mix, available), groups, counts


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
    cut = [f"{name} ({sp.cut_tokens:,} tokens)" for name, sp in plan.sources.items() if sp.cut_tokens]
    if cut:
        lines.append(
            "one document cut to land on its target exactly (whole documents could not come within "
            f"{SHARE_TOLERANCE:.1%}): " + ", ".join(cut)
        )
    return lines


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
    if source in WEB_SOURCES:
        if inputs.web:
            return "web documents ingested from " + ", ".join(str(p) for p in inputs.web)
        return "web documents already ingested into this corpus"
    if source in REPHRASE_SOURCES:
        if not inputs.llm:
            return "rephrases already generated into this corpus (no --llm: nothing new is generated)"
        return f"LLM rephrasing of the kept web documents ({inputs.model or 'model?'} at {inputs.llm})"
    if source in OFFLINE_SOURCES:
        opts = f"multi={config.bios_multi}{', permute' if config.bios_permute else ''}"
        opts += ", fullname" if config.bios_fullname else ""
        people = f"{config.bios_people:,} people"
        return f"offline bioS generator ({people}, {opts}, seed {config.bios_seed}); not LLM output"
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
            sample, config.bios_seed, config.bios_multi, config.bios_permute, config.bios_fullname
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
    corpus: Corpus,
    config: BuildConfig,
    inputs: BuildInputs,
    ingest: IngestConfig | None = None,
    rephrase_formats: Sequence[str] | None = None,
    format_weights: Mapping[str, float] | None = None,
) -> list[str]:
    """The plan printed before any work: each source, share, token target, origin, documents and
    epochs (estimated from characters / 4 until tokenized), and the LLM cost.

    Raises:
        MixError: a bad mix spec (before anything is done).
        BuildError: a check the plan can make fails (see :func:`plan_build`).
    """
    return plan_build(corpus, config, inputs, ingest, rephrase_formats, format_weights)[0]


def plan_build(
    corpus: Corpus,
    config: BuildConfig,
    inputs: BuildInputs,
    ingest: IngestConfig | None = None,
    rephrase_formats: Sequence[str] | None = None,
    format_weights: Mapping[str, float] | None = None,
) -> tuple[list[str], int]:
    """:func:`describe_plan`'s lines and the training tokens the plan expects (0: unknown).

    Raises:
        MixError: a bad mix spec.
        BuildError: a source would be repeated more than ``--max-epochs`` times, a target is
            smaller than one document, or ``--shard-tokens`` would write too many files.
    """
    llm = bool(inputs.llm)
    groups = default_groups(llm, rephrase_formats)
    counts: dict[str, tuple[int, int]] = {}
    counted: dict[str, tuple[int, int]] = {}  # sources whose every kept document is tokenized
    if corpus.catalog_path.is_file():
        with Catalog.open(corpus) as catalog:
            counts = kept_counts(catalog)
            counted = _tokenized_counts(catalog)
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
    # Shares before documents exist: the LLM formats by [prompts] format_weights (the split the
    # prompts and the final mix use too), other groups evenly over their members.
    shares: dict[str, float] = (
        llm_format_shares(spec, groups, dict(format_weights or {})) if llm and format_weights else {}
    )
    for name, weight in spec.entries:
        members = groups.get(name, (name,))
        if any(m in shares for m in members):
            continue
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
    _check_plan(config, shares, est, counts, total_tokens, exact=set(counted))
    for source, share in sorted(shares.items()):
        n = counts.get(source, (0, 0))[0]
        target = int(share * total_tokens) if total_tokens else 0
        epochs = f"{target / est[source]:.2f}" if est.get(source) and target else "-"
        lines.append(
            f"{source:<10} {share:>7.2%} {f'{target:,}' if target else 'from data':>14} "
            f"{f'{n:,}' if n else 'to make':>10} "
            f"{epochs:>11}  {_origin(source, inputs, config)}"
        )
    if any(s in REPHRASE_SOURCES for s in shares) and llm:
        lines.append(
            "rephrased: prompts and their cost are planned once the web documents are ingested, "
            "filtered and deduplicated, and printed before any request is sent"
        )
    if llm:
        lines.append("LLM cost: estimated by the generation stage before it sends any request")
    else:
        lines.append("LLM cost: $0.00, 0 requests (no LLM)")
    return lines, int(total_tokens)


#: Most shard files a build may write (``--shard-tokens`` too small for ``--tokens`` is refused).
MAX_SHARD_FILES = 10_000
#: An estimate (characters / 4) may be this far off: epochs over the cap by more are refused at the
#: plan; within it the exact check after tokenization decides.
ESTIMATE_SLACK = 1.5


def _tokenized_counts(catalog: Catalog) -> dict[str, tuple[int, int]]:
    rows = catalog.exec(
        "SELECT source, count(*), coalesce(sum(tokens), 0) FROM documents WHERE drop_stage IS NULL "
        "GROUP BY source HAVING count(tokens) = count(*)"
    )
    return {str(src): (int(n), int(t)) for src, n, t in rows}


def _check_plan(
    config: BuildConfig,
    shares: dict[str, float],
    est: dict[str, int],
    counts: dict[str, tuple[int, int]],
    total_tokens: float,
    *,
    exact: set[str],
) -> None:
    """The checks the plan can make before any work (issue 14: they used to fail at the end).

    Raises:
        BuildError: a source would be repeated more than ``--max-epochs`` times, a target is
            smaller than one of the source's documents, or ``--shard-tokens`` would write more
            than :data:`MAX_SHARD_FILES` files.
    """
    if not total_tokens:
        return
    for source, share in sorted(shares.items()):
        tokens, docs = est.get(source, 0), counts.get(source, (0, 0))[0]
        target = share * total_tokens
        if not tokens or share <= 0:
            continue
        epochs = target / tokens
        limit = config.max_epochs * (1.0 if source in exact else ESTIMATE_SLACK)
        if epochs > limit:
            kind = "" if source in exact else " (estimated)"
            raise BuildError(
                f"--tokens {int(total_tokens):,} needs {epochs:.2f} epochs of {source!r}{kind}, more than "
                f"--max-epochs {config.max_epochs:g}; lower --tokens (at most "
                f"~{int(tokens * config.max_epochs / share):,}) or raise --max-epochs"
            )
        if docs and target < tokens / docs:
            raise BuildError(
                f"--tokens {int(total_tokens):,} gives {source!r} a target of {int(target):,} tokens, less "
                f"than one of its documents (~{tokens // docs:,} tokens); raise --tokens (at least "
                f"~{int(tokens / docs / share):,})"
            )
    files = total_tokens / config.shard_tokens
    if files > MAX_SHARD_FILES:
        raise BuildError(
            f"--shard-tokens {config.shard_tokens:,} would write ~{int(files):,} shard files for "
            f"{int(total_tokens):,} tokens (at most {MAX_SHARD_FILES:,}); raise --shard-tokens to at least "
            f"{int(total_tokens / MAX_SHARD_FILES) + 1:,}"
        )


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


def check_llm_inputs(config: Config, inputs: BuildInputs) -> None:
    """What an LLM build needs before anything else is planned.

    Raises:
        BuildError: ``--llm`` without ``--model``, or without ``--tokens``.
    """
    if not inputs.llm:
        return
    if not inputs.model:
        raise BuildError("--llm needs --model (the model name at that endpoint)")
    if not config.build.tokens:
        raise BuildError("with --llm, give --tokens N: how many training tokens to generate for")


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

    check_llm_inputs(config, inputs)
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
    web = _excerpt_files(inputs.web)
    return render_prompts(n, formats=tuple(counts), seed=config.build.seed, web=web, config=prompts_config)


def _excerpt_files(web: Sequence[Path]) -> list[Path]:
    """The ``--web`` inputs textbook excerpts are drawn from: JSONL/Parquet files with a ``text``
    column (HTML, WARC and directories are for the ``web`` and ``rephrased`` sources)."""
    return [Path(p) for p in web if not Path(p).is_dir() and Path(p).suffix in (".jsonl", ".parquet")]


def describe_llm_plan(prompts: pa.Table, config: Config, inputs: BuildInputs) -> list[str]:
    """The generation lines of the plan: prompts per format, samples, tokens, dollars or "no price".

    Time is not estimated: it depends on the server, and the progress line measures it.
    """
    from phicorpus.generate import GenerationParams
    from phicorpus.generate.cost import model_price
    from phicorpus.generate.requests import build_requests
    from phicorpus.generate.run import estimate, local_price

    params = GenerationParams.from_config(config.generate)
    price = model_price(inputs.model or "", config.generate)
    free = price is None and local_price([inputs.llm or ""])
    if free:
        from phicorpus.config import ModelPrice

        price = ModelPrice(0.0, 0.0)
    requests = build_requests(prompts.to_pylist(), inputs.model or "", params)
    plan = estimate(requests, price, config.generate)
    formats = prompts.column("format").to_pylist()
    per = ", ".join(f"{f} {formats.count(f):,}" for f in sorted(set(formats)))
    cap = f"; --max-cost ${inputs.max_cost:,.2f} is a hard cap" if inputs.max_cost else "; no --max-cost cap"
    return [
        f"LLM: {inputs.model} at {inputs.llm}: {prompts.num_rows:,} prompts ({per}) x "
        f"{params.samples} sample(s) in round 1, then up to {config.build.llm_rounds - 1} top-up "
        "round(s) until the kept tokens reach the targets",
        f"LLM round 1: {plan.describe()}"
        + (" (a local endpoint without a price: $0)" if free else "")
        + (f" (prices of {config.generate.prices_date})" if price and not free else "")
        + cap,
    ]

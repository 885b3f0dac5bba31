"""The mix spec: ``name:weight,...`` over source groups and single sources.

Example:
    >>> spec = MixSpec.parse("synthetic:0.8,code:0.2", available=["synthetic", "code", "bios"])
    >>> spec.shares({"synthetic": ("bios",), "code": ("code",)}, {"bios": 900, "code": 100})
    {'bios': 0.8, 'code': 0.2}
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from phicorpus.config import REPHRASE_FORMAT_NAMES

__all__ = [
    "LLM_SOURCES",
    "OFFLINE_SOURCES",
    "REPHRASE_SOURCES",
    "WEB_SOURCES",
    "MixError",
    "MixSpec",
    "default_groups",
]

#: Sources the LLM generation stage writes (CONTRACTS.md), group ``synthetic`` with an LLM.
LLM_SOURCES = ("textbook", "exercises", "stories", "rewrite")
#: Offline generators, group ``synthetic`` without an LLM.
OFFLINE_SOURCES = ("bios",)
#: Rephrased web documents, one source per format (group ``rephrased``).
REPHRASE_SOURCES = REPHRASE_FORMAT_NAMES
#: The ingested web documents themselves (the originals of the rephrases).
WEB_SOURCES = ("web",)
#: How far the weights may be from summing to 1 (rounding in hand-written specs like 1/3).
SUM_TOLERANCE = 1e-6


class MixError(ValueError):
    """A bad mix spec or a mix that cannot be built; one line that lists what is available."""


def default_groups(llm: bool, rephrase_formats: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """The source groups: ``synthetic`` (with an LLM the generated textbooks, exercises and stories;
    without, the offline generators), ``code``, and ``rephrased`` (every rephrase format of the
    web documents). ``rewrite`` is named on its own."""
    generated = tuple(s for s in LLM_SOURCES if s != "rewrite")
    return {
        "synthetic": generated if llm else OFFLINE_SOURCES,
        "code": ("code",),
        "rephrased": tuple(rephrase_formats) if rephrase_formats else REPHRASE_SOURCES,
    }


@dataclass(frozen=True, slots=True)
class MixSpec:
    """Parsed ``name:weight`` entries, in the order written; weights sum to 1."""

    entries: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str, available: Collection[str]) -> MixSpec:
        """Parse ``text``; ``available`` lists the names a spec may use (groups and sources).

        Raises:
            MixError: an unknown or repeated name, a missing, non-numeric, negative or
                non-finite weight, or weights that do not sum to 1; the message lists ``available``.
        """
        names = ", ".join(sorted(available)) or "(none)"
        where = f"--mix {text!r}"
        entries: list[tuple[str, float]] = []
        if not text.strip():
            raise MixError(f"{where}: empty; write name:weight,... (available: {names})")
        for part in text.split(","):
            item = part.strip()
            if not item:
                raise MixError(f"{where}: empty entry; write name:weight,... (available: {names})")
            name, sep, weight_text = item.partition(":")
            name = name.strip()
            if not sep or not weight_text.strip():
                raise MixError(f"{where}: {name!r} has no weight; write {name}:WEIGHT (available: {names})")
            if name not in available:
                raise MixError(f"{where}: unknown source {name!r} (available: {names})")
            if any(name == seen for seen, _ in entries):
                raise MixError(f"{where}: {name!r} is named twice (available: {names})")
            try:
                weight = float(weight_text)
            except ValueError:
                raise MixError(
                    f"{where}: weight of {name!r} is not a number: {weight_text.strip()!r} "
                    f"(available: {names})"
                ) from None
            if not math.isfinite(weight) or weight < 0:
                raise MixError(f"{where}: weight of {name!r} must be >= 0, got {weight_text.strip()}")
            entries.append((name, weight))
        total = math.fsum(w for _, w in entries)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise MixError(
                f"{where}: weights sum to {total:g}, not 1 (they are shares of the training tokens)"
            )
        return cls(tuple(entries))

    def __str__(self) -> str:
        return ",".join(f"{name}:{weight:g}" for name, weight in self.entries)

    def shares(
        self,
        groups: Mapping[str, Sequence[str]],
        tokens: Mapping[str, int],
        member_weights: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """Each source's share of the training tokens.

        A group's weight is split over its member sources in proportion to the tokens each has,
        or, where ``member_weights`` weighs every member that has documents (the LLM formats:
        ``[prompts] format_weights``), in proportion to those weights; members without documents
        get nothing. Zero weights are left out.

        Args:
            groups: Group name to member sources.
            tokens: Tokens available per source (kept documents).
            member_weights: Fixed split of a group's weight over its members (optional).

        Raises:
            MixError: a named source or every member of a named group has no documents.
        """
        have = ", ".join(f"{s} ({n} tokens)" for s, n in sorted(tokens.items()) if n > 0) or "none"
        out: dict[str, float] = {}
        for name, weight in self.entries:
            if weight == 0:
                continue
            members = tuple(groups.get(name, (name,)))
            sizes = {m: int(tokens.get(m, 0)) for m in members}
            total = sum(sizes.values())
            if total <= 0:
                what = f"group {name!r} ({', '.join(members)})" if name in groups else f"source {name!r}"
                raise MixError(f"{what} has no documents to mix (sources with documents: {have})")
            present = [m for m, size in sizes.items() if size > 0]
            fixed = {m: (member_weights or {}).get(m, 0.0) for m in present}
            if len(members) > 1 and member_weights and all(w > 0 for w in fixed.values()):
                norm = sum(fixed.values())
                for member in present:
                    out[member] = out.get(member, 0.0) + weight * fixed[member] / norm
                continue
            for member, size in sizes.items():
                if size > 0:
                    out[member] = out.get(member, 0.0) + weight * size / total
        return out

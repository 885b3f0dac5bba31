"""Warnings for settings that throw most of the data away (a dedup threshold of 0, --min-edu 5).

A stage that drops more than :data:`HEAVY_DROP` of a source's documents says so in its summary,
and the build repeats it in the plan and the final summary: the run is not an error (the user
may mean it), but it must never be silent.

Example:
    >>> heavy_drop_warnings("dedup", np.array(["code", "code"]), np.array([True, True]))
    ["dedup dropped 100.0% of source 'code' (2 of 2 documents)"]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["HEAVY_DROP", "heavy_drop_warnings", "heavy_drop_warnings_from_counts"]

#: Share of a source's documents whose loss to one stage earns a warning.
HEAVY_DROP = 0.9


def heavy_drop_warnings(
    stage: str, sources: npt.NDArray[np.object_] | npt.NDArray[np.str_], dropped: npt.NDArray[np.bool_]
) -> list[str]:
    """One line per source of which ``stage`` dropped more than :data:`HEAVY_DROP`.

    Args:
        stage: the stage's name, for the message.
        sources: each input document's source.
        dropped: whether the stage dropped it.
    """
    counts: dict[str, tuple[int, int]] = {}
    for source in sorted(set(sources.tolist())):
        mask = sources == source
        counts[str(source)] = (int(dropped[mask].sum()), int(mask.sum()))
    return heavy_drop_warnings_from_counts(stage, counts.items())


def heavy_drop_warnings_from_counts(stage: str, counts: Iterable[tuple[str, tuple[int, int]]]) -> list[str]:
    """Like :func:`heavy_drop_warnings`, from ``(source, (dropped, inputs))`` pairs."""
    lines = []
    for source, (dropped, total) in counts:
        if total and dropped / total > HEAVY_DROP:
            share = f"{dropped / total:.1%}"
            lines.append(f"{stage} dropped {share} of source {source!r} ({dropped:,} of {total:,} documents)")
    return lines

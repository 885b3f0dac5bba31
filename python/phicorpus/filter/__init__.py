"""Quality filtering: heuristic signals (Gopher, C4, FineWeb) computed in the Rust core.

Example:
    >>> from phicorpus.filter import quality_signals
    >>> sig = quality_signals(["Some text."])
    >>> len(sig), bool(sig.kept[0])
    (1, False)
"""

from __future__ import annotations

from phicorpus.filter.signals import (
    REASONS,
    SIGNAL_NAMES,
    QualitySignals,
    QualityThresholds,
    drop_reasons,
    quality_signals,
)

__all__ = [
    "REASONS",
    "SIGNAL_NAMES",
    "QualitySignals",
    "QualityThresholds",
    "drop_reasons",
    "quality_signals",
]

"""Token-exact mixing: the mix spec, the plan of which documents go where, and shard writing.

Example:
    >>> from phicorpus.mix import MixSpec, MixPlan
    >>> spec = MixSpec.parse("synthetic:0.8,code:0.2", available=["synthetic", "code"])
"""

from __future__ import annotations

from phicorpus.mix.plan import SHARE_TOLERANCE, MixPlan, SourcePlan, SourcePool, valid_mask
from phicorpus.mix.spec import (
    LLM_SOURCES,
    OFFLINE_SOURCES,
    REPHRASE_SOURCES,
    WEB_SOURCES,
    MixError,
    MixSpec,
    default_groups,
)

__all__ = [
    "LLM_SOURCES",
    "OFFLINE_SOURCES",
    "REPHRASE_SOURCES",
    "SHARE_TOLERANCE",
    "WEB_SOURCES",
    "MixError",
    "MixPlan",
    "MixSpec",
    "SourcePlan",
    "SourcePool",
    "default_groups",
    "valid_mask",
]

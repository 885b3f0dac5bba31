"""The ``phicorpus`` command line. It only parses arguments and calls the stages.

Commands live in one module per area and register themselves on :data:`main`:
``corpus`` (ingest, filter, dedup, decontam, sql, verify, classifier), ``prompts`` (topics,
prompts), ``generate`` (generate, verify-exercises, grade), ``build`` (build, stats), ``export`` (export).
"""

from __future__ import annotations

from phicorpus.cli._group import main, one_line_errors

__all__ = ["main", "one_line_errors"]

# Importing a command module registers its commands on ``main``.
from phicorpus.cli import build as _build  # noqa: F401
from phicorpus.cli import corpus as _corpus  # noqa: F401
from phicorpus.cli import export as _export  # noqa: F401
from phicorpus.cli import generate as _generate  # noqa: F401
from phicorpus.cli import prompts as _prompts  # noqa: F401

if __name__ == "__main__":  # pragma: no cover
    main()

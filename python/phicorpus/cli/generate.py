"""``phicorpus`` commands: generate."""

from __future__ import annotations

from phicorpus.cli._group import main, one_line_errors

__all__ = ["main", "one_line_errors"]

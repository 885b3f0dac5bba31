from __future__ import annotations

from click.testing import CliRunner

import phicorpus
from phicorpus.cli import main


def test_version_matches_core() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert phicorpus.__version__ in result.output


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output

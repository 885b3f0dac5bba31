"""Config loading: defaults, TOML round trip, errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from phicorpus.config import Config, ConfigError


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    path = tmp_path / "phicorpus.toml"
    path.write_text(Config().to_toml())
    assert Config.load(path) == Config()


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "phicorpus.toml"
    path.write_text("[dedup]\nno_such_key = 1\n")
    with pytest.raises(ConfigError, match=r"phicorpus.toml: unknown key dedup.no_such_key"):
        Config.load(path)


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "phicorpus.toml"
    path.write_text("[dedup\n")
    with pytest.raises(ConfigError, match=r"phicorpus\.toml"):
        Config.load(path)

"""Executor choice: ``[executor]`` in phicorpus.toml, the local default, Ray missing."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from phicorpus.config import Config, ConfigError, ExecutorConfig
from phicorpus.executors import RAY_MISSING, ExecutorError, RayExecutor, make_executor
from phicorpus.stage import LocalExecutor


def test_executor_section(tmp_path: Path) -> None:
    path = tmp_path / "phicorpus.toml"
    path.write_text('[executor]\nkind = "ray"\nray_address = "auto"\nmax_retries = 5\n')
    config = Config.load(path)
    assert config.executor == ExecutorConfig(kind="ray", ray_address="auto", max_retries=5)
    assert "[executor]" in config.to_toml()
    path.write_text('[executor]\nkind = "slurm"\n')
    with pytest.raises(ConfigError, match=r"phicorpus.toml: executor: executor.kind must be local or ray"):
        Config.load(path)
    assert Config().override(executor={"kind": "ray", "ray_address": None}).executor.kind == "ray"


def test_make_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_executor(ExecutorConfig()) == LocalExecutor(workers=2)
    assert make_executor(ExecutorConfig(workers=1)) == LocalExecutor(workers=1)
    ray = make_executor(ExecutorConfig(kind="ray", ray_address="ray://head:10001", max_retries=1))
    assert isinstance(ray, RayExecutor) and ray.address == "ray://head:10001" and ray.max_retries == 1
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import ray fails
    with pytest.raises(ExecutorError) as info:
        make_executor(ExecutorConfig(kind="ray"))
    assert (
        str(info.value)
        == RAY_MISSING
        == ("--executor ray needs Ray, which is not installed: pip install 'phicorpus[ray]'")
    )


def test_no_cluster_at_the_address_is_one_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ExecutorError, match=rf"^Ray at {address}: no cluster answers \("):
            RayExecutor(address=address).start()
    with pytest.raises(ExecutorError, match="expected HOST:PORT"):
        RayExecutor(address="head:port").start()


def test_executor_flags_are_this_runs_only(tmp_path: Path) -> None:
    """--executor / --ray-address choose where this run's units go; phicorpus.toml keeps its own
    [executor] (a saved cluster address would break the next run once that cluster is gone)."""
    from click.testing import CliRunner

    from phicorpus.cli import main

    out = tmp_path / "c"
    out.mkdir()
    (out / "phicorpus.toml").write_text(
        "[build]\nvocab_size = 600\ntokenizer_sample_bytes = 100000\nbios_people = 200\n\n"
        '[executor]\nkind = "local"\nworkers = 1\n'
    )
    args = ["build", str(out), "--mix", "bios:1", "--executor", "local", "--ray-address", "ray://head:10001"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    saved = Config.load(out / "phicorpus.toml").executor
    assert saved == ExecutorConfig(kind="local", workers=1) and saved.ray_address == ""

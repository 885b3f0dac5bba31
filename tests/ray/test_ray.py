"""The Ray executor on a real local cluster of two nodes (one CPU each) started here.

One cluster serves every test of this module (Ray's start-up is the slow part).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray.cloudpickle
from ray.cluster_utils import Cluster

import ray
from phicorpus.catalog import Catalog
from phicorpus.config import DedupConfig
from phicorpus.corpus import Corpus, atomic_path, sha256_file
from phicorpus.dedup.sharded import run_dedup_sharded
from phicorpus.dedup.stage import run_dedup
from phicorpus.executors import RayExecutor
from phicorpus.stage import LocalExecutor, UnitResult, WorkUnit, run_stage

sys.path.insert(0, str(Path(__file__).parent.parent / "dedup"))
from test_sharded import _corpus, _planted, _state

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test stages travel by value

MB = 1 << 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a second node, one CPU each; the address ``ray.init`` joins."""
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * MB, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1, object_store_memory=80 * MB)
    nodes.wait_for_nodes()
    try:
        yield str(nodes.address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.shutdown()


@pytest.fixture
def executor(cluster: str) -> Iterator[RayExecutor]:
    ex = RayExecutor(address=cluster, max_retries=3)
    yield ex
    ex.close()


@dataclass(slots=True)
class SquareStage:
    """A stage of ``units`` units, each writing ``out/<k>.txt`` from ``in/<k>.txt``; unit 2's first
    attempt writes half its output, then its pid, then waits to be killed."""

    units_count: int = 4
    name: str = "square"
    pause: str = ""
    log: list[str] = field(default_factory=list)

    def units(self, corpus: Corpus) -> list[WorkUnit]:
        return [WorkUnit(f"{k}", (f"in/{k}.txt",), {"power": 2}) for k in range(self.units_count)]

    def run_unit(self, corpus: Corpus, unit: WorkUnit) -> UnitResult:
        n = int(corpus.absolute(unit.inputs[0]).read_text())
        out = corpus.absolute(f"out/{unit.key}.txt")
        if self.pause and unit.key == "2":
            pid_file = Path(self.pause)
            if not pid_file.exists():
                out.parent.mkdir(exist_ok=True)
                out.write_text("partial")  # not atomic, on purpose: the re-run must overwrite it
                with atomic_path(pid_file) as tmp:
                    tmp.write_text(str(os.getpid()))
                time.sleep(120)
        with atomic_path(out) as tmp:
            tmp.write_text(f"{n ** int(unit.params['power'])} from {unit.key}\n")
        return UnitResult(unit.key, (f"out/{unit.key}.txt",), {"pid": os.getpid(), "node": os.uname()[1]})

    def commit(self, corpus: Corpus, catalog: Catalog, results: Sequence[UnitResult]) -> dict[str, int]:
        return {"written": len(results)}


def _square_corpus(root: Path) -> Corpus:
    corpus = Corpus.create(root)
    Catalog.open(corpus).close()
    for k in range(4):
        path = corpus.absolute(f"in/{k}.txt")
        path.parent.mkdir(exist_ok=True)
        path.write_text(str(k + 3))
    return corpus


def _files(root: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((root / "out").iterdir())}


def test_stage_on_ray_equals_local_and_a_killed_worker_is_retried(
    tmp_path: Path, executor: RayExecutor
) -> None:
    local = _square_corpus(tmp_path / "local")
    run_stage(SquareStage(), local, LocalExecutor())
    on_ray = _square_corpus(tmp_path / "ray")
    pid_file = tmp_path / "victim.pid"
    outcome: dict[str, object] = {}

    def kill_when_paused() -> None:
        while not pid_file.exists():
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        outcome["killed"] = True

    killer = threading.Thread(target=kill_when_paused, daemon=True)
    killer.start()
    done = run_stage(SquareStage(pause=str(pid_file)), on_ray, executor)
    killer.join(timeout=5)
    assert outcome.get("killed")
    assert done.stats["written"] == 4 and done.stats["units_run"] == 4
    assert _files(on_ray.root) == _files(local.root)
    # Every unit has its marker; a second run runs nothing.
    again = run_stage(SquareStage(), on_ray, executor)
    assert again.stats["units_run"] == 0 and again.stats["units_resumed"] == 4


def test_sharded_dedup_on_ray_decides_as_run_dedup(tmp_path: Path, executor: RayExecutor) -> None:
    shards = _planted(5)
    one = _corpus(tmp_path / "one", shards, 2)
    many = _corpus(tmp_path / "many", shards, 2)
    want = run_dedup(one, DedupConfig())
    got = run_dedup_sharded(many, DedupConfig(), executor=executor, threads=1)
    assert {k: got[k] for k in want} == want
    assert _state(one) == _state(many)
    pids = {u["pid"] for step in got["units"].values() for u in step}
    assert len(pids) >= 2, "units ran in more than one worker process"


_PHICORPUS = str(Path(sys.executable).with_name("phicorpus"))
CONFIG = """[build]
bios_people = 1500
vocab_size = 1500
tokenizer_sample_bytes = 1000000
"""


def _build(corpus: Path, code: Path, *flags: str) -> subprocess.Popen[bytes]:
    corpus.mkdir(exist_ok=True)
    if not (corpus / "phicorpus.toml").exists():
        (corpus / "phicorpus.toml").write_text(CONFIG)
    command = [_PHICORPUS, "build", "--mix", "synthetic:0.7,code:0.3"]
    return subprocess.Popen(
        [*command, "--out", str(corpus), "--code", str(code), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


def _build_outputs(corpus: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((corpus / "build" / "main").iterdir()) if p.is_file()}


def _decisions(corpus: Path) -> list[tuple[object, ...]]:
    with Catalog.open(Corpus.open(corpus), read_only=True) as cat:
        return cat.exec("SELECT id, drop_stage, drop_reason, dup_cluster FROM documents ORDER BY id")


def _kill_one_busy_worker(done: threading.Event, killed: list[str]) -> None:
    """SIGKILL the first Ray worker seen running a phicorpus unit (its title is
    ``ray::phicorpus:<stage>`` while it runs one, ``ray::IDLE`` otherwise)."""
    while not done.is_set():
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::phicorpus:"):
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(title.split(b"\0")[0].decode())
                    return
        time.sleep(0.005)


def test_build_on_ray_is_byte_identical_and_resumes_after_the_driver_is_killed(
    tmp_path: Path, cluster: str
) -> None:
    code = tmp_path / "code"
    src = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json", "html", "http"):
        shutil.copytree(src / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    _finish(_build(tmp_path / "local", code, "--executor", "local"))
    expected = _build_outputs(tmp_path / "local")
    assert {"manifest.json", "tokenizer.json", "train-00000.bin", "train-00000.idx"} <= set(expected)

    # The driver is killed once the dedup steps are running on the cluster, then re-run.
    victim = _build(tmp_path / "ray", code, "--executor", "ray", "--ray-address", cluster)
    markers = tmp_path / "ray" / "cache" / "markers"
    deadline = time.monotonic() + 300
    while victim.poll() is None and time.monotonic() < deadline:
        if list(markers.glob("dedup-*/*/*.json")):
            break
        time.sleep(0.02)
    assert victim.poll() is None, "the build ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "ray" / "build" / "main" / "manifest.json").exists()
    # The re-run, with one worker SIGKILLed while it runs a unit: Ray re-runs the unit.
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_busy_worker, args=(done, killed), daemon=True)
    killer.start()
    _finish(_build(tmp_path / "ray", code, "--executor", "ray", "--ray-address", cluster))
    done.set()
    killer.join()
    assert killed, "no worker was seen running a unit"
    assert _build_outputs(tmp_path / "ray") == expected
    assert _decisions(tmp_path / "ray") == _decisions(tmp_path / "local")
    assert not list((tmp_path / "ray").rglob(".*.tmp"))


def test_without_ray_the_executor_fails_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    command = [_PHICORPUS, "build", "--out", str(tmp_path / "c"), "--executor", "ray"]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: --executor ray needs Ray, which is not installed: pip install 'phicorpus[ray]'"
    )
    assert not (tmp_path / "c" / "catalog.duckdb").exists()

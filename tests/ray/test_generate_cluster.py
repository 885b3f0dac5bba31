"""Generation over Ray actors on a real local cluster of two nodes, against the loopback server.

One cluster (and one driver connection to it) serves every test of this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from ray.cluster_utils import Cluster
from tests.generate.conftest import fast_config, write_prompts
from tests.generate.fake_server import FakeServer

import ray
from phicorpus.build import BuildInputs, generate_llm_sources
from phicorpus.catalog import Catalog
from phicorpus.config import Config, GenerateConfig
from phicorpus.corpus import Corpus
from phicorpus.executors import RAY_MISSING, ExecutorError, RayExecutor
from phicorpus.generate import GenerationParams, run_generation
from phicorpus.generate.cluster import CostLedger, run_generation_cluster
from phicorpus.generate.cost import prompt_tokens_upper, worst_case_cost
from phicorpus.generate.journal import iter_journal, segments
from phicorpus.generate.requests import build_requests, load_prompts

MB = 1 << 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a second node, one CPU each; this process joined to it as the driver."""
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * MB, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1, object_store_memory=80 * MB)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    try:
        yield str(nodes.address)
    finally:
        ray.shutdown()
        nodes.shutdown()


def _cluster_run(
    root: Path,
    prompts: Path,
    urls: list[str],
    config: GenerateConfig,
    max_cost: float = 0.0,
    workers: int = 2,
) -> tuple[Corpus, dict[str, Any]]:
    corpus = Corpus.create(root)
    stats = run_generation_cluster(
        corpus,
        prompts,
        endpoints=urls,
        model="m",
        params=GenerationParams.from_config(config),
        max_cost=max_cost,
        config=config,
        workers=workers,
        echo=lambda s: None,
    )
    return corpus, stats


def _texts(corpus: Corpus) -> dict[str, str]:
    """Document id -> text, from the Parquet shards the catalog names."""
    out: dict[str, str] = {}
    with Catalog.open(corpus, read_only=True) as cat:
        rows = cat.exec('SELECT id, file, "row" FROM documents ORDER BY id')
    tables: dict[str, Any] = {}
    for doc_id, file, row in rows:
        if file not in tables:
            tables[file] = pq.read_table(corpus.absolute(file))
        assert tables[file].column("id")[row].as_py() == doc_id
        out[doc_id] = tables[file].column("text")[row].as_py()
    return out


def _journals(corpus: Corpus) -> list[Path]:
    main = corpus.requests_dir / "generate.jsonl"
    return [main, *segments(main)]


def _results(corpus: Corpus) -> dict[str, float]:
    """Key -> cost of its result, over the single journal and every segment."""
    out: dict[str, float] = {}
    for path in _journals(corpus):
        for record in iter_journal(path):
            if record["t"] == "result":
                out.setdefault(record["key"], float(record.get("cost") or 0.0))
    return out


def test_two_actors_make_the_documents_a_local_run_makes(tmp_path: Path, cluster: str) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 30)
    config = fast_config(concurrency=4)
    with FakeServer(latency=0.01) as server:
        local = Corpus.create(tmp_path / "local")
        run_generation(
            local,
            prompts,
            endpoints=[server.url],
            model="m",
            params=GenerationParams.from_config(config),
            max_cost=0.0,
            config=config,
            echo=lambda s: None,
        )
    with FakeServer(latency=0.01) as one, FakeServer(latency=0.01) as two:
        corpus, stats = _cluster_run(tmp_path / "ray", prompts, [one.url, two.url], config)
        # Each actor sent its own partition to its own endpoint, each request once.
        assert len(one.calls) + len(two.calls) == 30
        assert {c.n for c in one.calls + two.calls} == {1}
        assert not {c.key for c in one.calls} & {c.key for c in two.calls}
        assert one.calls and two.calls
    assert stats["done"] == 30 and stats["failed"] == 0 and stats["stop_reason"] is None
    assert len(stats["actors"]) == 2 and {a["index"] for a in stats["actors"]} == {0, 1}
    assert sorted(p.name for p in segments(corpus.requests_dir / "generate.jsonl")) == [
        "generate-0.jsonl",
        "generate-1.jsonl",
    ]
    want = _texts(local)
    assert len(want) == 30
    assert _texts(corpus) == want
    with Catalog.open(corpus, read_only=True) as cat:
        (status,) = cat.exec_one("SELECT status FROM stage_runs ORDER BY id DESC LIMIT 1")  # type: ignore[misc]
    assert status == "done"
    # A local run over the cluster's corpus sees every segment: nothing is sent again.
    with FakeServer() as server:
        again = run_generation(
            corpus,
            prompts,
            endpoints=[server.url],
            model="m",
            params=GenerationParams.from_config(config),
            max_cost=0.0,
            config=config,
            echo=lambda s: None,
        )
        assert again["sent"] == 0 and again["already_answered"] == 30 and not server.calls


def _kill_one_actor(segment_dir: Path, killed: list[int], done: threading.Event) -> None:
    """Once some results are journaled, SIGKILL the first generation actor seen running ``run``."""
    while not done.is_set():
        got = sum(
            1 for p in segment_dir.glob("generate-*.jsonl") for r in iter_journal(p) if r["t"] == "result"
        )
        if got >= 6:
            break
        time.sleep(0.02)
    while not done.is_set():
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::GenerationActor"):
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
                    return
        time.sleep(0.01)


def test_a_killed_actor_is_restarted_and_sends_no_answered_request_again(
    tmp_path: Path, cluster: str
) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 60)
    config = fast_config(concurrency=3, max_concurrency=3)
    root = tmp_path / "ray"
    corpus = Corpus.create(root)
    killed: list[int] = []
    done = threading.Event()
    before: dict[str, float] = {}
    mark = [0]
    with FakeServer(latency=0.08) as server:

        def kill_and_snapshot() -> None:
            _kill_one_actor(corpus.requests_dir, killed, done)
            before.update(_results(corpus))  # after the kill: every result journaled by then
            mark[0] = len(server.calls)  # calls from here on came after those results

        killer = threading.Thread(target=kill_and_snapshot, daemon=True)
        killer.start()
        _, stats = _cluster_run(root, prompts, [server.url], config, max_cost=1.0)
        done.set()
        killer.join(10)
        assert killed, "no actor was seen running"
        assert before and len(before) < 60
        resent = [c.key for c in server.calls[mark[0] :] if c.key in before]
        assert resent == [], "a request answered before the kill was sent again"
        # The restarted actor finished its partition in the same run.
        assert len(_results(corpus)) == 60 and stats["stop_reason"] is None
        assert stats["ledger"]["starts"] and max(stats["ledger"]["starts"]) >= 2
        assert stats["ledger"]["peak"] <= 1.0
        calls = len(server.calls)
        # A second run: every key has a result somewhere, nothing is sent.
        _, again = _cluster_run(root, prompts, [server.url], config, max_cost=1.0)
        assert again["sent"] == 0 and again["already_answered"] == 60
        assert len(server.calls) == calls
    assert len(_texts(corpus)) == 60
    # No key answered more than once by the server's count of successful answers either, except a
    # key in flight when its actor was killed (answered, but the result never reached the journal).
    twice = {c.key for c in server.calls if c.n > 1}
    assert not twice & set(before)


def _billed(corpus: Corpus, prompts: Path, config: GenerateConfig) -> tuple[float, float]:
    """(spent, possibly billed) over every journal: results' costs, and the worst case of each
    ``send`` with no outcome and each failure that may have been billed."""
    price = config.prices["m"]
    requests = {
        r.key: r
        for r in build_requests(load_prompts(prompts), "m", GenerationParams.from_config(config), where="x")
    }
    spent = 0.0
    possibly = 0.0
    for path in _journals(corpus):
        open_sends: dict[str, int] = {}
        for record in iter_journal(path):
            key = record["key"]
            if record["t"] == "send":
                open_sends[key] = open_sends.get(key, 0) + 1
            elif record["t"] in ("result", "fail", "partial"):
                open_sends[key] = max(0, open_sends.get(key, 0) - 1)
                if record["t"] == "result":
                    spent += float(record.get("cost") or 0.0)
                if record["t"] == "fail" and record.get("billed"):
                    possibly += _worst(requests[key], price)
        possibly += sum(n * _worst(requests[k], price) for k, n in open_sends.items())
    return spent, possibly


def _worst(request: Any, price: Any) -> float:
    return worst_case_cost(price, prompt_tokens_upper(request.messages), int(request.api["max_tokens"]))


def test_the_cap_holds_across_actors_and_a_slow_actors_share_goes_to_the_fast_one(
    tmp_path: Path, cluster: str
) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 60)
    config = fast_config(concurrency=2, max_concurrency=2)
    cap = 0.012  # about 23 answers of ~$0.00052 (worst case ~$0.0011 each): 60 would need ~$0.031
    with FakeServer(latency=0.01) as fast, FakeServer(latency=0.4) as slow:
        corpus, stats = _cluster_run(tmp_path / "ray", prompts, [fast.url, slow.url], config, max_cost=cap)
        fast_calls, slow_calls = len(fast.calls), len(slow.calls)
    assert stats["stop_reason"] == "cost cap"
    spent, possibly = _billed(corpus, prompts, config)
    assert spent + possibly <= cap + 1e-12
    assert abs(spent - stats["spent_usd"]) < 1e-6
    assert stats["ledger"]["peak"] <= cap + 1e-12
    # The budget the slow actor could not use went to the fast one: more than a half share, and
    # the run spent close to the whole cap (within a few worst cases), not half of it.
    by_actor = {a["index"]: a for a in stats["actors"]}
    assert by_actor[0]["spent_usd"] > cap / 2, by_actor
    assert fast_calls > 2 * slow_calls
    worst = max(_worst(r, config.prices["m"]) for r in build_requests(load_prompts(prompts), "m",
                GenerationParams.from_config(config), where="x"))  # fmt: skip
    assert spent >= cap - 4 * worst, (spent, cap, worst)
    assert len(_texts(corpus)) == len(_results(corpus)) < 60


def test_the_ledger_never_grants_past_the_cap() -> None:
    ledger = CostLedger(cap=1.0, base=0.25, workers=2)
    assert ledger.ask(0, 0.0, 0.1, idle=True) == (0.125, False)  # a slice: cap / (4 N)
    granted, _ = ledger.ask(1, 0.0, 0.6, idle=True)
    assert granted == 0.6 and ledger.free() == pytest.approx(0.025)
    assert ledger.ask(0, 0.0, 0.1, idle=False) == (0.0, False)  # something in flight: wait
    assert ledger.ask(0, 0.125, 0.1, idle=True) == (0.125, False)  # its lease back, then a grant
    ledger.finish(1, 0.5)  # used 0.5 of its 0.6: the rest is free again
    assert ledger.free() == pytest.approx(0.125)
    assert ledger.ask(0, 0.125, 0.3, idle=True) == (0.0, True)  # the only one running, refused: stop
    ledger.register(0)  # a restart: its lease (0 now) counts as spent
    assert ledger.base + sum(ledger.leases) <= ledger.cap


def test_without_ray_the_cluster_path_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    prompts = write_prompts(tmp_path / "prompts.parquet", 2)
    with pytest.raises(ExecutorError) as info:
        _cluster_run(tmp_path / "c", prompts, ["http://127.0.0.1:9/v1"], fast_config())
    assert str(info.value) == RAY_MISSING
    assert not (tmp_path / "c" / "requests" / "generate-0.jsonl").exists()


_PHICORPUS = str(Path(sys.executable).with_name("phicorpus"))


def _generate_cli(prompts: Path, out: Path, url: str, *flags: str, env: dict[str, str] | None = None) -> Any:
    command = [_PHICORPUS, "generate", "--prompts", str(prompts), "--out", str(out), "--llm", url]
    return subprocess.run(
        [*command, "--model", "m", "--max-tokens", "100", *flags], capture_output=True, text=True, env=env
    )


def test_cli_generate_on_ray_with_workers(tmp_path: Path, cluster: str) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 12)
    out = tmp_path / "c"
    with FakeServer(latency=0.01) as server:
        done = _generate_cli(
            prompts, out, server.url, "--executor", "ray", "--ray-address", cluster, "--workers", "3"
        )
        assert done.returncode == 0, done.stderr
        assert "over 3 Ray actors" in done.stdout and "generate (3 Ray actors): 12 done" in done.stdout
        assert len(server.calls) == 12
    assert len(segments(out / "requests" / "generate.jsonl")) == 3
    assert len(_texts(Corpus.open(out))) == 12


def test_cli_generate_without_ray_fails_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    prompts = write_prompts(tmp_path / "prompts.parquet", 2)
    out = _generate_cli(prompts, tmp_path / "c", "http://127.0.0.1:9/v1", "--executor", "ray", env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error: {RAY_MISSING}"
    assert not (tmp_path / "c" / "catalog.duckdb").exists()


TOML = """[generate]
concurrency = 3
max_concurrency = 3
max_tokens = 100
min_chars = 20
backoff_base = 0.01

[generate.prices.m]
input = 1.0
output = 10.0
"""


def test_a_killed_driver_then_a_rerun_sends_no_answered_request_again(tmp_path: Path, cluster: str) -> None:
    prompts = write_prompts(tmp_path / "prompts.parquet", 60)
    out = tmp_path / "c"
    out.mkdir()
    (out / "phicorpus.toml").write_text(TOML)
    flags = ("--executor", "ray", "--ray-address", cluster, "--workers", "2", "--max-cost", "1")
    command = [_PHICORPUS, "generate", "--prompts", str(prompts), "--out", str(out), "--model", "m"]
    with FakeServer(latency=0.08) as server:
        victim = subprocess.Popen(
            [*command, "--llm", server.url, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while victim.poll() is None and time.monotonic() < deadline:
            got = sum(
                1
                for p in out.glob("requests/generate-*.jsonl")
                for r in iter_journal(p)
                if r["t"] == "result"
            )
            if got >= 6:
                break
            time.sleep(0.02)
        assert victim.poll() is None, "the run ended before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        corpus = Corpus.open(out)
        before = _results(corpus)
        mark = len(server.calls)
        assert before and len(before) < 60
        done = _generate_cli(prompts, out, server.url, *flags)
        assert done.returncode == 0, done.stderr
        resent = [c.key for c in server.calls[mark:] if c.key in before]
        assert resent == [], "a request answered before the kill was sent again"
        assert not {c.key for c in server.calls if c.n > 1} & set(before)
    assert len(_results(corpus)) == 60
    assert len(_texts(corpus)) == 60


def test_build_on_ray_generates_its_llm_sources_with_actors(tmp_path: Path, cluster: str) -> None:
    prompts = pq.read_table(write_prompts(tmp_path / "prompts.parquet", 10))
    config = dataclasses.replace(Config(), generate=fast_config(concurrency=2))
    corpus = Corpus.create(tmp_path / "c")
    with FakeServer(latency=0.01) as server:
        stats = generate_llm_sources(
            corpus,
            config,
            BuildInputs(llm=server.url, model="m", max_cost=1.0),
            prompts,
            executor=RayExecutor(address=cluster),
            echo=lambda s: None,
        )
        assert len(server.calls) == 10
    assert stats["workers"] == config.executor.workers == 2 and stats["done"] == 10
    assert len(segments(corpus.requests_dir / "generate.jsonl")) == 2
    assert len(_texts(corpus)) == 10


def test_rephrase_on_ray_sends_from_the_actors_and_keeps_provenance(tmp_path: Path, cluster: str) -> None:
    """The rephrase stage on the Ray executor generates through the actors (one segment each)
    and records every rephrase's original, as a local run does; a re-run sends nothing."""
    import json

    from tests.test_rephrase import _config, _documents, answer

    from phicorpus.config import IngestConfig
    from phicorpus.rephrase import run_rephrase
    from phicorpus.sources.web import ingest_web

    src = tmp_path / "web.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in _documents()))
    corpus = Corpus.create(tmp_path / "c")
    ingest_web(corpus, [src], config=IngestConfig())
    config = _config()
    executor = RayExecutor(address=cluster)
    with FakeServer(plan=answer) as server:
        stats = run_rephrase(
            corpus, config, endpoints=[server.url], model="m", executor=executor, echo=lambda _: None
        )
        sent = len(server.calls)
        again = run_rephrase(
            corpus, config, endpoints=[server.url], model="m", executor=executor, echo=lambda _: None
        )
        assert len(server.calls) == sent  # nothing paid twice
    assert stats["generate"]["workers"] == config.executor.workers == 2
    assert len(segments(corpus.requests_dir / "generate.jsonl")) == 2
    assert again["generate"]["already_answered"] == stats["generate"]["requests"] == stats["prompts"]
    with Catalog.open(corpus, read_only=True) as catalog:
        orphans = catalog.exec(
            "SELECT count(*) FROM rephrases r LEFT JOIN documents s ON s.id = r.source_id WHERE s.id IS NULL"
        )
        (rows,) = catalog.exec_one("SELECT count(*) FROM rephrases")  # type: ignore[misc]
    assert orphans == [(0,)] and rows == stats["prompts"]

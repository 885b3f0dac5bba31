"""``phicorpus build`` with an LLM: prompts rendered and priced before any request, generation
through the real SDK against the loopback server, exercises verified, shares met, a re-run sends
nothing and rewrites nothing."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import sysconfig
from pathlib import Path

import pytest
from tests.generate.conftest import fast_config
from tests.generate.fake_server import Action, Call, FakeServer

from phicorpus.build import BuildError, BuildInputs, run_build
from phicorpus.catalog import Catalog
from phicorpus.config import BuildConfig, Config, ModelPrice
from phicorpus.corpus import Corpus, sha256_file
from phicorpus.mix import SHARE_TOLERANCE

WORDS = [
    "energy",
    "system",
    "water",
    "light",
    "plant",
    "animal",
    "number",
    "pattern",
    "force",
    "motion",
    "city",
    "river",
    "market",
    "price",
    "story",
    "friend",
    "school",
    "teacher",
    "garden",
    "language",
    "history",
    "island",
    "machine",
    "signal",
    "reason",
    "method",
    "problem",
    "answer",
    "result",
    "value",
    "change",
    "growth",
    "season",
    "weather",
    "family",
    "village",
    "journey",
    "question",
]


def prose(seed: str, extra: list[str]) -> str:
    """Plain varied prose that passes the Gopher/C4/FineWeb rules (a textbook section stand-in)."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(24):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 11))]
        sentences.append(f"The {' and the '.join(words[:2])} of a {words[2]} is {' '.join(words[3:])}.")
    words_line = " ".join(f"The {w} was there." for w in extra)
    return "\n\n".join([" ".join(sentences[:8]), " ".join(sentences[8:16]), " ".join(sentences[16:])]) + (
        f" {words_line}" if extra else ""
    )


def answer(call: Call) -> Action:
    user = next(m["content"] for m in call.body["messages"] if m["role"] == "user")
    if "### Solution" in user:  # the programming-exercise layout
        name = "f_" + re.sub(r"\W", "", call.key)[:10]
        text = (
            f"### Problem\nWrite {name}(a, b) returning their sum.\n\n"
            f"### Solution\n```python\ndef {name}(a, b):\n    return a + b\n```\n\n"
            f"### Tests\n```python\nassert {name}(1, 2) == 3\nassert {name}(-1, 1) == 0\n```\n"
        )
        return Action(text=text)
    required = re.findall(r'"([a-z]+)"', user)
    return Action(text=prose(call.key, required))


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    out = tmp_path / "code"
    for name in ("json", "email", "html", "http", "urllib", "wsgiref"):
        shutil.copytree(src / name, out / name, ignore=shutil.ignore_patterns("__pycache__"))
    return out


def test_build_with_an_llm(tmp_path: Path, code_dir: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    config = Config(
        generate=fast_config(prices={"m": ModelPrice(1.0, 10.0)}),
        build=BuildConfig(mix="synthetic:0.7,code:0.3", tokens=100_000, vocab_size=600, seed=3),
    )
    calls_when: dict[str, int] = {}
    with FakeServer(plan=answer) as server:
        inputs = BuildInputs(llm=server.url, model="m", code=(code_dir,), max_cost=5.0, api_key="k")

        def echo(line: str) -> None:
            if line.startswith("LLM round 1:"):
                calls_when["estimate"] = len(server.calls)

        manifest = run_build(corpus, config, inputs, echo=echo)
        sent = len(server.calls)
        assert calls_when["estimate"] == 0 and sent > 0  # the estimate came before any request
        sources = manifest["sources"]
        assert {"textbook", "exercises", "stories", "code"} <= set(sources)
        synthetic = sum(sources[s]["train_tokens"] for s in ("textbook", "exercises", "stories"))
        total = synthetic + sources["code"]["train_tokens"]
        assert abs(synthetic / total - 0.7) <= SHARE_TOLERANCE
        assert abs(sources["code"]["train_tokens"] / total - 0.3) <= SHARE_TOLERANCE
        with Catalog.open(corpus) as cat:
            verdicts = dict(cat.exec("SELECT status, count(*) FROM verifications GROUP BY ALL"))
            paid = cat.exec_one("SELECT sum(cost) FROM requests")
        assert verdicts.get("passed", 0) + verdicts.get("unverified", 0) > 0 and not verdicts.get("failed")
        assert paid is not None and 0 < paid[0] <= 5.0

        shards = {p.name: sha256_file(p) for p in corpus.build_dir("main").glob("*.bin")}
        again = run_build(corpus, config, inputs, echo=lambda _: None)
        assert len(server.calls) == sent  # nothing paid twice
        assert {p.name: sha256_file(p) for p in corpus.build_dir("main").glob("*.bin")} == shards
        assert json.dumps(again["splits"], sort_keys=True) == json.dumps(manifest["splits"], sort_keys=True)


def test_llm_build_needs_a_model_and_a_token_target(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path)
    with pytest.raises(BuildError, match="--model"):
        run_build(corpus, Config(build=BuildConfig(tokens=1000)), BuildInputs(llm="http://127.0.0.1:9/v1"))
    with pytest.raises(BuildError, match="--tokens"):
        run_build(corpus, Config(), BuildInputs(llm="http://127.0.0.1:9/v1", model="m"))


def test_generated_source_without_documents_or_llm_fails_before_any_work(tmp_path: Path) -> None:
    corpus = Corpus.create(tmp_path)
    with pytest.raises(BuildError, match="textbook: no documents in this corpus and no LLM"):
        run_build(corpus, Config(build=BuildConfig(mix="textbook:0.5,code:0.5")), BuildInputs())
    assert not list(tmp_path.glob("docs/*"))  # nothing ingested or generated


def test_generation_tops_up_in_rounds_from_unused_topics(tmp_path: Path, code_dir: Path) -> None:
    corpus = Corpus.create(tmp_path / "corpus")
    config = Config(
        generate=fast_config(prices={"m": ModelPrice(1.0, 10.0)}),
        build=BuildConfig(mix="synthetic:0.7,code:0.3", tokens=300_000, vocab_size=600, seed=3, llm_rounds=3),
    )

    def half_short(call: Call) -> Action:
        # About half the requests get an answer too short to keep: chosen by request key, not by
        # arrival order, so which prompts fall short (and so the rounds) do not depend on timing.
        if hashlib.sha256(call.key.encode()).digest()[0] % 2 == 0:
            return Action(text="Too short.")
        return answer(call)

    lines: list[str] = []
    with FakeServer(plan=half_short) as server:
        inputs = BuildInputs(llm=server.url, model="m", code=(code_dir,), max_cost=5.0, api_key="k")
        manifest = run_build(corpus, config, inputs, echo=lines.append)
    summary = next(line for line in lines if line.startswith("LLM generation: "))
    rounds = int(summary.split()[2])
    assert rounds >= 2 and "every LLM source reached its target" in summary, lines
    assert any(line.startswith("round 2: ") and "from topics not used yet" in line for line in lines)
    record = json.loads(next(corpus.prompts_dir.glob("rounds-*.json")).read_text())
    assert len(record) == rounds
    import pyarrow.parquet as pq

    topics = [set(pq.read_table(corpus.root / p).column("topic_id").to_pylist()) - {None} for p in record]
    assert not topics[0] & topics[1]  # round 2 took topics round 1 did not use
    assert manifest["splits"]["train"]["tokens"] > 0
    train = manifest["splits"]["train"]["tokens"]
    ratio = manifest["splits"]["valid"]["tokens"] / train
    noted = any(line.startswith("note: validation split") for line in lines)
    assert abs(ratio / config.build.valid_fraction - 1) <= 0.2 or noted, (ratio, lines[-5:])


def test_a_small_shortfall_gets_a_margin_for_noise_and_a_large_one_ten_percent() -> None:
    from phicorpus.build import round_size

    assert round_size(3.0) == pytest.approx(9.0)  # (1 + sqrt(4))^2: a coin-flip kept share still lands
    assert round_size(1000.0) == pytest.approx(1100.0)
    rng = random.Random(0)
    # Half the requests keep an answer worth two mean requests: a round whose mean need is
    # `expected` requests falls short when fewer than expected / 2 are kept; rarely (<= ~5%).
    for expected in (1, 2, 5, 20, 100):
        n = math.ceil(round_size(float(expected)))
        short = sum(sum(rng.random() < 0.5 for _ in range(n)) < expected / 2 for _ in range(2000))
        assert short / 2000 <= 0.05, (expected, n, short)

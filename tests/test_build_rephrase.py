"""The main job with rephrased web documents:
``phicorpus build --mix rephrased:0.4,web:0.4,code:0.2 --web PATH --llm URL --model M --tokens N``
plans (the rephrase cost before any request), ingests, rephrases through the journaled engine,
meets the shares, records each rephrase's original, and a re-run sends nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sysconfig
from pathlib import Path

from click.testing import CliRunner
from tests.generate.fake_server import Action, Call, FakeServer
from tests.test_rephrase import answer

from phicorpus.catalog import Catalog
from phicorpus.cli import main
from phicorpus.corpus import Corpus
from phicorpus.mix import REPHRASE_SOURCES, SHARE_TOLERANCE

CONFIG = """
[build]
vocab_size = 600
valid_fraction = 0.05

[generate]
min_chars = 20
max_attempts = 2
backoff_base = 0.01
concurrency = 8

[generate.prices.m]
input = 1.0
output = 10.0

[rephrase]
context_tokens = 1024
max_chunks = 1
formats = ["wrap_easy", "rewire"]
"""


def license_pages(
    chars: int = 1500, limit: int = 48, names: tuple[str, ...] = ("GPL-3", "Apache-2.0", "GFDL-1.3", "LGPL-3")
) -> list[dict[str, str]]:
    """Real prose (this machine's license texts) cut at paragraphs into pages of about ``chars``."""
    pages = []
    for name in names:
        path = Path("/usr/share/common-licenses") / name
        if not path.is_file():
            continue
        page: list[str] = []
        for para in path.read_text().split("\n\n"):
            page.append(para)
            if sum(len(p) for p in page) > chars:
                pages.append(
                    {"id": f"{name}-{len(pages)}", "url": f"file://{path}", "text": "\n\n".join(page)}
                )
                page = []
    return pages[:limit]


def test_build_mix_with_rephrased_and_web(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    docs = license_pages()
    (web / "pages.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    code = tmp_path / "code"
    for name in ("json", "email", "html"):
        shutil.copytree(
            Path(sysconfig.get_paths()["stdlib"]) / name,
            code / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    out = tmp_path / "corpus"
    Corpus.create(out).config_path.write_text(CONFIG)
    args = ["build", "--mix", "rephrased:0.4,web:0.4,code:0.2", "--web", str(web), "--code", str(code)]
    with FakeServer(plan=answer) as server:
        args += [
            "--llm",
            server.url,
            "--model",
            "m",
            "--tokens",
            "60000",
            "--out",
            str(out),
            "--max-cost",
            "5",
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        sent = len(server.calls)
        assert sent > 0
        lines = result.output.splitlines()
        assert any(line.startswith("rephrase LLM round 1: ") for line in lines)  # priced before sending
        again = CliRunner().invoke(main, args)
        assert again.exit_code == 0, again.output
        assert len(server.calls) == sent  # nothing paid twice
    manifest = json.loads((out / "build" / "main" / "manifest.json").read_text())
    sources = manifest["sources"]
    rephrased = [s for s in sources if s in REPHRASE_SOURCES]
    assert rephrased and "web" in sources and "code" in sources
    total = sum(s["train_tokens"] for s in sources.values())
    share = sum(sources[s]["train_tokens"] for s in rephrased) / total
    assert abs(share - 0.4) <= SHARE_TOLERANCE
    assert abs(sources["web"]["train_tokens"] / total - 0.4) <= SHARE_TOLERANCE
    with Catalog.open(Corpus.open(out), read_only=True) as catalog:
        orphans = catalog.exec(
            "SELECT count(*) FROM documents d LEFT JOIN rephrases r ON r.doc_id = d.id "
            "LEFT JOIN documents s ON s.id = r.source_id "
            "WHERE d.source IN (SELECT unnest(?)) AND s.id IS NULL",
            [list(REPHRASE_SOURCES)],
        )
        assert orphans == [(0,)]  # every rephrase names its original, which is in the catalog
        assert catalog.exec_one("SELECT sum(cost) FROM requests")[0] <= 5.0  # type: ignore[index]


def test_rephrase_tops_up_when_the_kept_rephrases_fall_short(tmp_path: Path) -> None:
    """Half the answers keep none of the facts (dropped by the gate): round 1 falls short, so round
    2 rephrases documents not used yet, and no prompt is sent twice."""
    web = tmp_path / "web"
    web.mkdir()
    (web / "pages.jsonl").write_text("".join(json.dumps(d) + "\n" for d in license_pages()))
    code = tmp_path / "code"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(stdlib / "json", code / "json", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "corpus"
    config = CONFIG.replace("[build]\n", "[build]\nllm_rounds = 3\nmax_epochs = 64\n")
    Corpus.create(out).config_path.write_text(config)

    def half_forgetful(call: Call) -> Action:
        if int(hashlib.sha256(call.key.encode()).hexdigest(), 16) % 2:
            return Action(text="Question: What is this?\nAnswer: A page. It says little. Nothing more.")
        return answer(call)

    args = ["build", "--mix", "rephrased:0.4,web:0.4,code:0.2", "--web", str(web), "--code", str(code)]
    with FakeServer(plan=half_forgetful) as server:
        args += ["--llm", server.url, "--model", "m", "--tokens", "15000", "--out", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert all(c.n == 1 for c in server.calls), "a prompt was sent twice"
    lines = result.output.splitlines()
    assert any(line.startswith("rephrase round 1: kept tokens ") for line in lines), result.output
    assert any(line.startswith("rephrase round 2: ") and "more prompts" in line for line in lines)
    assert any(line.startswith("rephrase: ") and "round(s);" in line for line in lines)
    with Catalog.open(Corpus.open(out), read_only=True) as catalog:
        (dropped,) = catalog.exec_one(  # type: ignore[misc]
            "SELECT count(*) FROM documents WHERE drop_reason = 'low-fact-retention'"
        )
    assert dropped > 0

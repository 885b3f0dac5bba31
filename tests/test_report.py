"""`phicorpus report` in a real headless Chromium (Debian's `chromium`, driven by Playwright): the
page loads from a file with no network and no console error, every plot renders (an SVG with
marks in it), empty sections say so, the sample can be browsed, and a screenshot is taken."""

from __future__ import annotations

import datetime as dt
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from phicorpus.catalog import Catalog
from phicorpus.cli import main
from phicorpus.corpus import Corpus, atomic_path
from phicorpus.prompts import render_prompts, write_prompts

CONFIG = """[build]
bios_people = 100
vocab_size = 600
tokenizer_sample_bytes = 100000
"""
#: The plots of an offline build (no topics, judge scores, pass@k or requests).
OFFLINE_PLOTS = {"shares", "funnel", "drops", "topics", "lengths", "clusters"}
ALL_PLOTS = OFFLINE_PLOTS | {"coverage", "scores", "pass_at_k", "requests"}


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium (scripts/test.sh installs Debian's chromium when run as root)")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("report")
    code = tmp / "code"
    shutil.copytree(
        Path(sysconfig.get_paths()["stdlib"]) / "json", code, ignore=shutil.ignore_patterns("__pycache__")
    )
    (code / "dup.py").write_text((code / "decoder.py").read_text())
    out = tmp / "corpus"
    out.mkdir()
    (out / "phicorpus.toml").write_text(CONFIG)
    result = CliRunner().invoke(
        main, ["build", "--mix", "synthetic:0.7,code:0.3", "--out", str(out), "--code", str(code)]
    )
    assert result.exit_code == 0, result.output
    yield out


def add_llm_rows(root: Path) -> None:
    """What an LLM build adds: prompts, generated documents with topics, requests, judge scores,
    pass@k (rows as the generation and verify stages write them)."""
    corpus = Corpus.open(root)
    prompts = render_prompts(6, formats=("textbook",), seed=3)
    write_prompts(corpus, prompts)
    ids = [f"textbook/{i:016x}" for i in range(prompts.num_rows)]
    texts = [
        f"# Lesson {i}\n\nA generated section on {t}. " * 5
        for i, t in enumerate(prompts.column("topic_path").to_pylist())
    ]
    path = corpus.docs_dir("textbook") / "part-00000.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"id": ids, "text": texts}), tmp)
    start = dt.datetime(2026, 1, 1, 12, 0)
    with Catalog.open(corpus) as cat, cat.transaction():
        cat.ensure_source("textbook", "synthetic")
        cat.register_shard(path, "docs", rows=len(ids), source="textbook", stage="generate")
        cat.insert_documents(
            pa.table(
                {
                    "id": ids,
                    "source": ["textbook"] * len(ids),
                    "kind": ["textbook"] * len(ids),
                    "file": [corpus.relative(path)] * len(ids),
                    "row": list(range(len(ids))),
                    "chars": [len(t) for t in texts],
                    "subject": prompts.column("subject"),
                    "topic_id": prompts.column("topic_id"),
                    "format": prompts.column("format"),
                    "prompt_id": prompts.column("id"),
                }
            )
        )
        for i, doc_id in enumerate(ids):
            cat.exec(
                "INSERT INTO requests (key, purpose, prompt_id, sample, model, status, attempts, "
                "prompt_tokens, completion_tokens, cost, doc_id, updated_at) "
                "VALUES (?, 'generate', ?, 0, 'm', ?, 1, 100, 400, ?, ?, ?)",
                [
                    f"k{i}",
                    prompts.column("id")[i].as_py(),
                    "done" if i else "failed",
                    0.01 * i,
                    doc_id,
                    start + dt.timedelta(minutes=i),
                ],
            )
            for metric, value in (("grammar", 6 + i % 4), ("creativity", 4 + i % 5)):
                cat.exec(
                    "INSERT INTO scores (doc_id, rubric, metric, value, judge) "
                    "VALUES (?, 'tinystories', ?, ?, 'j')",
                    [doc_id, metric, float(value)],
                )
        for i, (n, c) in enumerate(((4, 4), (4, 1), (4, 0))):
            cat.exec(
                "INSERT INTO pass_at_k (prompt_id, n, c, pass_at_1, pass_at_k) VALUES (?, ?, ?, ?, ?)",
                [f"p{i}", n, c, c / n, 1.0 if c else 0.0],
            )


def render(page: Path, screenshot: Path | None = None) -> dict[str, Any]:
    """Open ``page`` in headless Chromium; what rendered, what was logged, what was requested."""
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_path = chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            messages: list[str] = []
            requests: list[str] = []
            tab.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            tab.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(page.as_uri(), wait_until="load")
            rendered = (
                "document.querySelectorAll('[data-plot] .plotly-graph-div svg.main-svg').length"
                " >= document.querySelectorAll('[data-plot]').length"
            )
            tab.wait_for_function(rendered, timeout=30_000)
            plots = tab.evaluate(
                """() => Object.fromEntries(Array.from(document.querySelectorAll('[data-plot]')).map(d => {
                    const svg = d.querySelector('svg.main-svg');
                    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                    const marks = Array.from(d.querySelectorAll('g.trace path, g.trace rect'))
                        .filter(e => e.getBoundingClientRect().width > 0
                                     || e.getBoundingClientRect().height > 0);
                    return [d.dataset.plot, {width: box.width, height: box.height, traces:
                        d.querySelectorAll('g.trace').length, marks: marks.length}];
                }))"""
            )
            empty = tab.evaluate(
                "() => Array.from(document.querySelectorAll('[data-empty]')).map(e => e.dataset.empty)"
            )
            sections = tab.evaluate(
                "() => Array.from(document.querySelectorAll('section[data-section]'))"
                ".map(e => e.dataset.section)"
            )
            count = tab.locator("#sample-count").inner_text()
            tab.select_option("#sample-kept", "no")
            dropped_count = tab.locator("#sample-count").inner_text()
            tab.select_option("#sample-kept", "")
            prompt = ""
            if tab.locator("details.doc[data-source=textbook]").count():
                first = tab.locator("details.doc[data-source=textbook]").first
                first.locator("summary").click()
                prompt = first.locator("pre.prompt").inner_text()
            if screenshot is not None:
                tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "plots": plots,
        "empty": set(empty),
        "sections": sections,
        "messages": messages,
        "requests": [u for u in requests if not u.startswith("file:")],
        "count": count,
        "dropped_count": dropped_count,
        "prompt": prompt,
    }


def check_plots(seen: dict[str, Any], expected: set[str]) -> None:
    assert set(seen["plots"]) == expected, f"plots missing: {expected - set(seen['plots'])}"
    for name, plot in seen["plots"].items():
        assert plot["width"] > 200 and plot["height"] > 150, (name, plot)
        assert plot["traces"] >= 1 and plot["marks"] >= 1, (name, plot)


def test_report_renders_in_chromium(corpus: Path, tmp_path: Path) -> None:
    from phicorpus.report import SECTIONS

    offline = tmp_path / "offline.html"
    result = CliRunner().invoke(main, ["report", str(corpus), "--out", str(offline)])
    assert result.exit_code == 0, result.output
    assert "no network needed" in result.output
    html = offline.read_text(encoding="utf-8")
    assert "<script src=" not in html and "<link" not in html  # nothing to fetch
    seen = render(offline)
    assert seen["messages"] == [] and seen["requests"] == []
    assert seen["sections"] == list(SECTIONS)
    check_plots(seen, OFFLINE_PLOTS)
    assert seen["empty"] == {"coverage", "scores", "pass_at_k", "requests"}
    assert "No judge scores" in html and "No LLM requests" in html
    n = int(seen["count"].split()[0])
    assert 0 < int(seen["dropped_count"].split()[0]) < n  # the filter hides the kept ones

    add_llm_rows(corpus)
    full = tmp_path / "report.html"
    shot = tmp_path / "report.png"
    assert CliRunner().invoke(main, ["report", str(corpus), "--out", str(full)]).exit_code == 0
    seen = render(full, shot)
    assert seen["messages"] == [] and seen["requests"] == []
    check_plots(seen, ALL_PLOTS)
    assert seen["empty"] == set()
    assert "Write" in seen["prompt"] or len(seen["prompt"]) > 50  # the textbook prompt is shown
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = full.read_text(encoding="utf-8")
    assert "$0.15 in all over 6 requests" in page  # 0.01 * (0 + 1 + ... + 5)


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert (
        result.exit_code == 1
        and result.output.startswith("Error: ")
        and "not a phicorpus corpus" in result.output
    )
    assert not (tmp_path / "report.html").exists()

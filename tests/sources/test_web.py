"""Web ingestion: real HTML from /usr/share/doc, a WARC written with warcio, FineWeb-style JSONL and
Parquet with bad lines, resume, and the prose filter and dedup afterwards."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from lxml import html as lxml_html

from phicorpus.catalog import Catalog
from phicorpus.cli import main
from phicorpus.config import DedupConfig, FilterConfig, IngestConfig
from phicorpus.corpus import Corpus
from phicorpus.sources.web import ingest_web

PARAGRAPH = (
    "The river Arno flows through Florence and Pisa before it reaches the Ligurian Sea. "
    "In 1966 a flood of the Arno damaged thousands of works of art and rare books in Florence."
)


def _real_html(limit: int = 3) -> list[Path]:
    """A few real HTML pages of this machine's documentation (small ones, sorted)."""
    pages = sorted(p for p in Path("/usr/share/doc").rglob("*.html") if 2_000 < p.stat().st_size < 40_000)
    return pages[:limit]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _page(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title><script>var tracker = 'BOILERPLATE-SCRIPT';</script></head>"
        "<body><nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1><p>{body}</p><p>{body.replace('Arno', 'Tiber')}</p></article>"
        "<footer>Copyright 2024 Example Inc. All rights reserved.</footer></body></html>"
    )


def test_real_html_main_text_is_page_text_without_markup(tmp_path: Path) -> None:
    pages = _real_html()
    own = tmp_path / "own.html"
    own.write_text(_page("Arno", PARAGRAPH))
    corpus = Corpus.create(tmp_path / "c")
    stats = ingest_web(corpus, [*pages, own], config=IngestConfig())
    assert stats["documents"] == stats["total_documents"] >= 1 + min(1, len(pages))
    table = pq.read_table(next((tmp_path / "c" / "docs" / "web").glob("*.parquet")))
    by_path = dict(zip(table.column("path").to_pylist(), table.column("text").to_pylist(), strict=True))
    mine = by_path[str(own.resolve())]
    assert PARAGRAPH in mine and "BOILERPLATE-SCRIPT" not in mine and "<p>" not in mine
    assert "\n\n" in mine  # paragraphs stay apart (the rephrase chunker cuts there)
    for page in pages:
        if str(page) not in by_path:
            continue
        # oracle: every extracted paragraph is visible text of the page as lxml parses it
        visible = _normalise(lxml_html.fromstring(page.read_bytes()).text_content())
        paragraphs = [p for p in by_path[str(page)].split("\n\n") if len(p) > 40]
        assert paragraphs
        # list items come out as "- item" (the extractor's markdown-like layout)
        found = sum(_normalise(p.removeprefix("- "))[:40] in visible for p in paragraphs)
        assert found >= 0.8 * len(paragraphs), page
    assert table.column("url").to_pylist()[0].startswith("file://")
    with Catalog.open(corpus, read_only=True) as catalog:
        assert catalog.exec("SELECT DISTINCT kind FROM documents") == [("web",)]


def _write_warc(path: Path, pages: list[tuple[str, str, str]]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, ctype, body in pages:
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.0")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body.encode()), http_headers=headers
            )
            writer.write_record(record)
        req = writer.create_warc_record(
            "http://example.org/a", "request", payload=io.BytesIO(b"GET / HTTP/1.0\r\n\r\n")
        )
        writer.write_record(req)


def test_warc_html_responses_with_urls_and_record_ids(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    _write_warc(
        warc,
        [
            ("http://example.org/a", "text/html; charset=utf-8", _page("Arno", PARAGRAPH)),
            ("http://example.org/logo.png", "image/png", "PNGDATA"),
            ("http://example.org/b", "text/html", _page("Po", PARAGRAPH.replace("Arno", "Po"))),
        ],
    )
    broken = tmp_path / "broken.warc"
    broken.write_bytes(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 99999\r\n\r\n<html>cut")
    corpus = Corpus.create(tmp_path / "c")
    stats = ingest_web(corpus, [broken, warc], config=IngestConfig())
    assert stats["documents"] == 2
    assert stats["skipped"]["not_html"] == 1 and stats["skipped"]["bad_warc"] == 1
    assert any(b.startswith(f"{broken}:0: bad_warc") for b in stats["bad"])
    table = pq.read_table(next((tmp_path / "c" / "docs" / "web").glob("*.parquet")))
    assert table.column("url").to_pylist() == ["http://example.org/a", "http://example.org/b"]
    assert all(i.startswith("<urn:uuid:") for i in table.column("source_id").to_pylist())
    assert PARAGRAPH in table.column("text")[0].as_py()
    with Catalog.open(corpus, read_only=True) as catalog:
        skip = catalog.exec("SELECT path, line, reason, detail FROM ingest_skips WHERE reason = 'not_html'")
        assert skip[0][0] == str(warc) and skip[0][3] == "image/png"


def _fineweb_rows() -> list[dict[str, object]]:
    rows = []
    for i in range(4):
        rows.append(
            {
                "id": f"<urn:uuid:{i:04d}>",
                "url": f"https://example.com/{i}",
                "language": "en",
                "language_score": 0.97,
                "score": 2.5 + i / 2,
                "dump": "CC-MAIN-2024-10",
                "text": f"Document {i}. " + PARAGRAPH,
            }
        )
    return rows


def test_jsonl_and_parquet_keep_fields_and_name_bad_lines(tmp_path: Path) -> None:
    rows = _fineweb_rows()
    jsonl = tmp_path / "fineweb.jsonl"
    with open(jsonl, "wb") as fh:
        fh.write(json.dumps(rows[0]).encode() + b"\n")
        fh.write(json.dumps(rows[1]).encode() + b"\n")
        fh.write(b'{"text": "unterminated\n')  # line 3
        fh.write(b'{"text": "caf\xe9"}\n')  # line 4: latin-1, not UTF-8
        fh.write(b'{"url": "https://example.com/no-text"}\n')  # line 5
        fh.write(b'["not", "an", "object"]\n')  # line 6
        fh.write(b'{"text": "lone \\ud800 surrogate"}\n')  # line 7: valid JSON, not encodable text
    parquet = tmp_path / "dclm.parquet"
    pq.write_table(pa.Table.from_pylist(rows[2:]), parquet)
    no_text = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"content": ["x"]}), no_text)
    corpus = Corpus.create(tmp_path / "c")
    stats = ingest_web(corpus, [jsonl, parquet, no_text, tmp_path / "missing.jsonl"], config=IngestConfig())
    assert stats["documents"] == 4
    assert stats["skipped"] == {"bad_json": 2, "invalid_utf8": 2, "no_content": 2, "unreadable": 1}
    bad = "\n".join(stats["bad"])
    expected = [f"{jsonl}:3: bad_json", f"{jsonl}:4: invalid_utf8", f"{jsonl}:5: no_content"]
    expected += [f"{jsonl}:7: invalid_utf8 (character 5: surrogates not allowed)"]
    expected += [f"{jsonl}:6: bad_json", f"{no_text}:0: no_content", "missing.jsonl:0: unreadable"]
    for where in expected:
        assert where in bad
    table = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "c" / "docs" / "web").glob("*.parquet"))
    )
    columns = [table.column(c).to_pylist() for c in ("source_id", "url", "language", "score")]
    got = sorted(zip(*columns, strict=True))
    assert got == sorted((r["id"], r["url"], "en", r["score"]) for r in rows)
    with Catalog.open(corpus, read_only=True) as catalog:
        prov = [json.loads(p) for (p,) in catalog.exec("SELECT provenance FROM documents ORDER BY id")]
        assert {p["url"] for p in prov} == {r["url"] for r in rows}
        assert catalog.exec("SELECT DISTINCT language FROM documents") == [("en",)]
    again = ingest_web(corpus, [jsonl, parquet, no_text, tmp_path / "missing.jsonl"], config=IngestConfig())
    assert again["documents"] == 0 and again["shards_resumed"] == stats["shards_written"]
    assert again["total_documents"] == 4


def test_prose_filter_and_dedup_apply_afterwards(tmp_path: Path) -> None:
    from phicorpus.dedup.stage import run_dedup
    from phicorpus.filter.stage import run_filter

    # real prose of this machine (base-files): the GPL's preamble
    long_text = Path("/usr/share/common-licenses/GPL-3").read_text()[:6000]
    rows = [
        {"id": "a", "text": long_text},
        {"id": "b", "text": long_text},  # the same text under another id: an exact duplicate
        {"id": "c", "text": "buy now buy now buy now"},  # fails the prose rules (too few words)
    ]
    src = tmp_path / "web.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = Corpus.create(tmp_path / "c")
    ingest_web(corpus, [src], config=IngestConfig())
    run_filter(corpus, FilterConfig())
    run_dedup(corpus, DedupConfig())
    with Catalog.open(corpus, read_only=True) as catalog:
        assert catalog.exec("SELECT DISTINCT rule_set FROM quality_signals") == [("prose",)]
        stages = sorted(r[0] or "kept" for r in catalog.exec("SELECT drop_stage FROM documents"))
    assert stages == ["dedup", "filter", "kept"]


def test_cli_ingest_web_directory(tmp_path: Path) -> None:
    src = tmp_path / "site"
    src.mkdir()
    (src / "a.html").write_text(_page("Arno", PARAGRAPH))
    (src / "notes.txt").write_text(PARAGRAPH + "\n")
    (src / "data.json").write_text('{"not": "a dataset"}')  # inside a directory: not an input
    pages = _real_html(1)
    if pages:
        shutil.copy(pages[0], src / "real.html")
    result = CliRunner().invoke(main, ["ingest", "web", str(tmp_path / "c"), str(src), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["input_formats"]["text"] == 1 and stats["input_formats"]["html"] >= 1
    assert stats["skipped"] == {}


def test_every_input_bad_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": 1}\n{broken\n')
    result = CliRunner().invoke(main, ["ingest", "web", str(tmp_path / "c"), str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: no documents from") and f"{bad}:1: no_content" in result.output

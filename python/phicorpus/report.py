"""``phicorpus report``: one self-contained HTML page of plots and sample documents of a corpus.

The page is read at a glance: token shares per source against the mix, the funnel of documents
through generate -> verify -> filter -> dedup -> decontam -> mix with the drop reasons, topic
coverage by subject, document lengths per source, duplicate cluster sizes, judge scores and
pass@k, LLM requests and cost over time, and a browsable sample of kept and dropped documents
with their prompts. A section with nothing to show (no judge scores in an offline build, say)
says so.

Plots are Plotly figures (``plotly.graph_objects``; no pandas needed). Plotly was chosen over
Altair/Vega-Lite because its one JavaScript bundle ships inside the Python package and is inlined
once (``get_plotlyjs``), with no extra converter binary, and it has the treemap and funnel charts
built in; the page needs no network when it is viewed. Data comes from the catalog's published
snapshot (:mod:`phicorpus.reader`), so a report can be made while a build runs.

Example:
    >>> path = write_report(Corpus.open("corpus/"), Path("report.html"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from phicorpus.corpus import Corpus, publish_bytes
from phicorpus.reader import CorpusReader

__all__ = ["SECTIONS", "ReportError", "render_report", "write_report"]

#: Pipeline stages in order, as ``documents.drop_stage`` names them.
FUNNEL_STAGES = ("verify", "filter", "dedup", "decontam")
#: Documents per source and per kept/dropped group in the browsable sample.
SAMPLE_PER_GROUP = 8
#: Characters of a document (and of a prompt) shown in the sample.
SAMPLE_CHARS = 4000
#: Documents per source whose lengths are plotted (a seeded sample of the bigger sources).
LENGTH_SAMPLE = 20_000


class ReportError(ValueError):
    """The optional plotting dependency is missing; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the page: a plot (``figure``) or a note saying why there is none."""

    key: str
    title: str
    description: str
    figure: Any = None
    empty: str = ""
    html_body: str = ""


#: Every section of the page, in order (``data-section`` of each; plots have ``data-plot``).
SECTIONS = (
    "shares",
    "funnel",
    "drops",
    "topics",
    "coverage",
    "lengths",
    "clusters",
    "scores",
    "pass_at_k",
    "requests",
    "samples",
)


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ReportError(
            "phicorpus report needs plotly: pip install 'phicorpus[report]' (or pip install plotly)"
        ) from exc
    return go


def _layout(fig: Any, **extra: Any) -> Any:
    fig.update_layout(
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        height=extra.pop("height", 380),
        legend={"orientation": "h", "y": 1.12},
        **extra,
    )
    return fig


# -- data -------------------------------------------------------------------------------------------


def _manifests(reader: CorpusReader) -> list[dict[str, Any]]:
    out = []
    paths = reader.sql("SELECT path FROM shards WHERE kind = 'manifest' ORDER BY path").get_column("path")
    for rel in paths.to_list():
        try:
            out.append(json.loads(reader.corpus.absolute(rel).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a missing or corrupt manifest: `phicorpus verify` names it
    return out


def _shares(reader: CorpusReader, go: Any) -> Section:
    title = "Token shares per source vs the mix"
    description = "Each build's share of training tokens per source (bars) against the mix it was asked for."
    manifests = _manifests(reader)
    if not manifests:
        return Section("shares", title, description, empty="No build yet: run `phicorpus build`.")
    fig = go.Figure()
    for manifest in manifests:
        sources = sorted(manifest.get("sources", {}))
        data = manifest["sources"]
        name = manifest.get("build", "build")
        fig.add_bar(
            name=f"{name}: mix",
            x=sources,
            y=[data[s].get("share", 0.0) for s in sources],
            marker_pattern_shape="/",
        )
        fig.add_bar(
            name=f"{name}: actual",
            x=sources,
            y=[data[s].get("actual_share", 0.0) for s in sources],
            customdata=[[data[s].get("train_tokens", 0), data[s].get("epochs", 0)] for s in sources],
            hovertemplate="%{x}: %{y:.2%} of training tokens<br>%{customdata[0]:,} tokens, "
            "%{customdata[1]:.2f} epochs<extra></extra>",
        )
    _layout(fig, barmode="group", yaxis={"tickformat": ".0%", "title": "share of training tokens"})
    return Section("shares", title, description, figure=fig)


def _funnel(reader: CorpusReader, go: Any) -> tuple[Section, Section]:
    description = (
        "Documents made (generated, ingested, offline) and what is left after each stage; the last "
        "step is the documents the mix picked for training (repeats counted)."
    )
    counts = reader.sql(
        "SELECT count(*) AS made, "
        + ", ".join(f"count(*) FILTER (WHERE drop_stage = '{s}') AS {s}" for s in FUNNEL_STAGES)
        + ", count(*) FILTER (WHERE drop_stage IS NULL) AS kept FROM documents"
    ).row(0, named=True)
    made = int(counts["made"] or 0)
    funnel_title = "Funnel: generate → verify → filter → dedup → decontam → mix"
    if not made:
        empty = "No documents yet."
        return (
            Section("funnel", funnel_title, description, empty=empty),
            Section("drops", "Drop reasons", "", empty=empty),
        )
    labels = ["made"]
    values = [made]
    left = made
    for stage in FUNNEL_STAGES:
        left -= int(counts[stage] or 0)
        labels.append(f"after {stage}")
        values.append(left)
    picks = sum(
        int(s.get("train_documents", 0)) + int(s.get("valid_documents", 0))
        for m in _manifests(reader)[-1:]
        for s in m.get("sources", {}).values()
    )
    if picks:
        labels.append("in the mix (picks)")
        values.append(picks)
    fig = go.Figure(go.Funnel(y=labels, x=values, textinfo="value+percent initial"))
    funnel = Section("funnel", funnel_title, description, figure=_layout(fig, height=360))

    drops = reader.sql(
        "SELECT stage, reason, sum(count) AS n FROM drop_counts GROUP BY ALL ORDER BY stage, n DESC"
    )
    drops_title = "Drop reasons per stage"
    drops_description = "Documents each stage dropped, by reason (`drop_counts`)."
    if not drops.height:
        return funnel, Section(
            "drops", drops_title, drops_description, empty="No stage dropped any document."
        )
    fig = go.Figure()
    order = [s for s in FUNNEL_STAGES if s in set(drops.get_column("stage").to_list())]
    order += sorted(set(drops.get_column("stage").to_list()) - set(order))
    for reason in sorted(set(drops.get_column("reason").to_list())):
        part = drops.filter(pl.col("reason") == reason)
        by_stage = dict(zip(part.get_column("stage").to_list(), part.get_column("n").to_list(), strict=True))
        fig.add_bar(name=reason, y=order, x=[by_stage.get(s, 0) for s in order], orientation="h")
    _layout(
        fig,
        barmode="stack",
        showlegend=True,  # the reasons, even when there is one
        xaxis={"title": "documents dropped"},
        height=max(260, 70 * len(order) + 160),
    )
    return funnel, Section("drops", drops_title, drops_description, figure=fig)


def _topics(reader: CorpusReader, go: Any) -> tuple[Section, Section]:
    by = reader.sql(
        "SELECT coalesce(subject, 'no subject: ' || source) AS subject, coalesce(format, kind) AS format, "
        "count(*) AS n, "
        "count(DISTINCT topic_id) AS topics FROM documents WHERE drop_stage IS NULL GROUP BY ALL"
    )
    title = "Kept documents by subject and format"
    description = "Area is the number of kept documents; hover for the distinct topics used."
    if not by.height:
        treemap = Section("topics", title, description, empty="No kept documents yet.")
    else:
        ids, labels, parents, values, hover = [], [], [], [], []
        subjects = by.group_by("subject").agg(pl.col("n").sum(), pl.col("topics").sum()).sort("subject")
        for subject, n, topics in subjects.iter_rows():
            ids.append(f"s:{subject}")
            labels.append(subject)
            parents.append("")
            values.append(int(n))
            hover.append(f"{int(topics):,} topics")
        for subject, fmt, n, topics in by.sort("subject", "format").iter_rows():
            ids.append(f"s:{subject}/{fmt}")
            labels.append(str(fmt))
            parents.append(f"s:{subject}")
            values.append(int(n))
            hover.append(f"{int(topics):,} topics")
        fig = go.Figure(
            go.Treemap(
                ids=ids,
                labels=labels,
                parents=parents,
                values=values,
                branchvalues="total",
                customdata=hover,
                hovertemplate="%{label}: %{value:,} documents, %{customdata}<extra></extra>",
            )
        )
        treemap = Section("topics", title, description, figure=_layout(fig, height=460))

    cov_title = "Topic coverage by subject"
    cov_description = (
        "Share of each subject's seed topics (topics/) that at least one kept document was written on."
    )
    used = reader.sql(
        "SELECT DISTINCT topic_id FROM documents WHERE drop_stage IS NULL AND topic_id IS NOT NULL"
    ).get_column("topic_id")
    if not used.len():
        empty = "No topic-seeded documents (an offline build has none; LLM generation writes them)."
        return treemap, Section("coverage", cov_title, cov_description, empty=empty)
    from phicorpus.config import Config, ConfigError
    from phicorpus.topics import load_topics

    try:  # the corpus's own topic files when its configuration names them
        topics_dir = Config.load(reader.corpus.config_path).prompts.topics_dir or None
    except (ConfigError, OSError):
        topics_dir = None
    used_ids = set(used.to_list())
    per: dict[str, list[int]] = {}
    for topic in load_topics(topics_dir):
        entry = per.setdefault(topic.subject, [0, 0])
        entry[1] += 1
        entry[0] += topic.id in used_ids
    rows = sorted(per.items(), key=lambda kv: kv[1][0] / kv[1][1])
    fig = go.Figure(
        go.Bar(
            y=[s for s, _ in rows],
            x=[c / t for _, (c, t) in rows],
            customdata=[[c, t] for _, (c, t) in rows],
            orientation="h",
            hovertemplate="%{y}: %{customdata[0]:,} of %{customdata[1]:,} topics<extra></extra>",
        )
    )
    _layout(fig, xaxis={"tickformat": ".0%", "range": [0, 1]}, height=max(300, 16 * len(rows) + 120))
    return treemap, Section("coverage", cov_title, cov_description, figure=fig)


def _lengths(reader: CorpusReader, go: Any) -> Section:
    title = "Document lengths per source"
    data = reader.sql(
        "SELECT source, coalesce(tokens, chars / 4) AS length, tokens IS NOT NULL AS counted FROM documents "
        "WHERE drop_stage IS NULL QUALIFY row_number() OVER (PARTITION BY source ORDER BY hash(id)) <= ?",
        [LENGTH_SAMPLE],
    )
    counted = bool(data.height) and bool(data.get_column("counted").all())
    unit = "tokens" if counted else "tokens (characters / 4 where not yet tokenized)"
    description = f"Kept documents, in {unit}; log scale; up to {LENGTH_SAMPLE:,} per source."
    if not data.height:
        return Section("lengths", title, description, empty="No kept documents yet.")
    fig = go.Figure()
    for source in sorted(set(data.get_column("source").to_list())):
        values = data.filter(pl.col("source") == source).get_column("length").to_list()
        fig.add_box(y=values, name=source, boxpoints=False)
    _layout(fig, yaxis={"type": "log", "title": "tokens per document"}, showlegend=False)
    return Section("lengths", title, description, figure=fig)


def _clusters(reader: CorpusReader, go: Any) -> Section:
    title = "Duplicate cluster sizes"
    description = (
        "Clusters of exact and near duplicates found by dedup: a kept document and those dropped for it."
    )
    sizes = reader.sql("SELECT size, clusters FROM dup_cluster_sizes WHERE size > 1 ORDER BY size")
    if not sizes.height:
        return Section("clusters", title, description, empty="No duplicates found (or dedup has not run).")
    fig = go.Figure(go.Bar(x=sizes.get_column("size").to_list(), y=sizes.get_column("clusters").to_list()))
    _layout(
        fig,
        xaxis={"title": "documents in the cluster", "type": "category"},
        yaxis={"title": "clusters"},
    )
    return Section("clusters", title, description, figure=fig)


def _scores(reader: CorpusReader, go: Any) -> tuple[Section, Section]:
    title = "Judge scores"
    description = "Scores an LLM judge gave sampled documents (`phicorpus grade`, `classifier annotate`)."
    scores = reader.sql("SELECT rubric || ': ' || metric AS metric, value FROM scores ORDER BY ALL")
    if not scores.height:
        section = Section("scores", title, description, empty="No judge scores: run `phicorpus grade`.")
    else:
        fig = go.Figure()
        for metric in sorted(set(scores.get_column("metric").to_list())):
            values = scores.filter(pl.col("metric") == metric).get_column("value").to_list()
            fig.add_histogram(x=values, name=metric, opacity=0.75)
        _layout(fig, barmode="overlay", xaxis={"title": "score"}, yaxis={"title": "documents"})
        section = Section("scores", title, description, figure=fig)

    pk_title = "pass@k of programming exercises"
    pk = reader.sql("SELECT n, c, pass_at_1, pass_at_k FROM pass_at_k")
    if not pk.height:
        empty = (
            "No verified exercises: pass@k comes from `phicorpus verify-exercises` on generated exercises."
        )
        return section, Section("pass_at_k", pk_title, "", empty=empty)
    p1 = float(pk.get_column("pass_at_1").cast(pl.Float64).mean() or 0.0)
    pkk = float(pk.get_column("pass_at_k").cast(pl.Float64).mean() or 0.0)
    pk_description = (
        f"{pk.height:,} prompts; mean pass@1 {p1:.3f}, mean pass@k {pkk:.3f} "
        "(k = samples per prompt); the distribution of pass@1 per prompt."
    )
    bins = {"start": -0.05, "end": 1.05, "size": 0.1}  # centred on 0, 0.1, ..., 1
    fig = go.Figure(go.Histogram(x=pk.get_column("pass_at_1").to_list(), xbins=bins))
    _layout(fig, xaxis={"title": "pass@1 of a prompt", "range": [-0.05, 1.05]}, yaxis={"title": "prompts"})
    return section, Section("pass_at_k", pk_title, pk_description, figure=fig)


def _requests(reader: CorpusReader, go: Any) -> Section:
    title = "LLM requests and cost over time"
    data = reader.sql(
        "SELECT date_trunc('minute', updated_at) AS t, count(*) FILTER (WHERE status = 'done') AS done, "
        "count(*) FILTER (WHERE status <> 'done') AS failed, coalesce(sum(cost), 0) AS cost "
        "FROM requests WHERE updated_at IS NOT NULL GROUP BY ALL ORDER BY t"
    )
    if not data.height:
        return Section("requests", title, "", empty="No LLM requests: this corpus was built without an LLM.")
    times = [t.isoformat() for t in data.get_column("t").to_list()]
    cost = data.get_column("cost").cast(pl.Float64).cum_sum().to_list()
    total = float(cost[-1]) if cost else 0.0
    requests = int(data.get_column("done").sum()) + int(data.get_column("failed").sum())
    description = (
        f"Requests per minute (done and failed) and the cumulative cost, ${total:,.2f} in all "
        f"over {requests:,} requests."
    )
    fig = go.Figure()
    fig.add_bar(x=times, y=data.get_column("done").to_list(), name="done")
    fig.add_bar(x=times, y=data.get_column("failed").to_list(), name="failed")
    fig.add_scatter(x=times, y=cost, name="cumulative cost (USD)", yaxis="y2", mode="lines+markers")
    _layout(
        fig,
        barmode="stack",
        yaxis={"title": "requests per minute"},
        yaxis2={"title": "USD", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    return Section("requests", title, description, figure=fig)


# -- sample documents -------------------------------------------------------------------------------


def _prompts(reader: CorpusReader, prompt_ids: list[str]) -> dict[str, str]:
    """Prompt text (system + user) of the given prompt ids, from the registered prompt files."""
    if not prompt_ids:
        return {}
    files = reader.sql("SELECT path FROM shards WHERE kind = 'prompts'").get_column("path").to_list()
    paths = [str(reader.corpus.absolute(f)) for f in files if reader.corpus.absolute(f).is_file()]
    if not paths:
        return {}
    frame = (
        pl.scan_parquet(
            paths,
            schema={"id": pl.String, "system": pl.String, "user": pl.String},
            missing_columns="insert",
            extra_columns="ignore",
        )
        .filter(pl.col("id").is_in(prompt_ids))
        .collect()
    )
    return {
        str(i): "\n\n".join(p for p in (s, u) if p)
        for i, s, u in frame.select("id", "system", "user").iter_rows()
    }


def _sample(reader: CorpusReader) -> tuple[str, int]:
    def pick(where: str, group: str) -> pl.DataFrame:
        return reader.sql(
            "SELECT id, source, drop_stage, drop_reason, subject, format, prompt_id, tokens, chars "
            "FROM documents "
            f"WHERE {where} QUALIFY row_number() OVER (PARTITION BY {group} ORDER BY hash(id)) <= ? "
            "ORDER BY source, drop_stage, id",
            [SAMPLE_PER_GROUP],
        )

    kept = pick("drop_stage IS NULL", "source")
    dropped = pick("drop_stage IS NOT NULL", "source, drop_stage, drop_reason")
    both = pl.concat([kept, dropped])
    if not both.height:
        return "", 0
    ids = both.get_column("id").to_list()
    texts = dict(
        reader.documents(f"id IN (SELECT unnest({_sql_list(ids)}))")
        .select("id", "text")
        .collect()
        .iter_rows()
    )
    prompts = _prompts(reader, [p for p in both.get_column("prompt_id").to_list() if p])
    rows = []
    for doc in both.iter_rows(named=True):
        status = (
            "kept" if doc["drop_stage"] is None else f"dropped by {doc['drop_stage']}: {doc['drop_reason']}"
        )
        text = str(texts.get(doc["id"]) or "")
        shown = text[:SAMPLE_CHARS] + ("\n…" if len(text) > SAMPLE_CHARS else "")
        prompt = prompts.get(doc["prompt_id"] or "", "")
        prompt_html = (
            f'<h4>Prompt</h4><pre class="prompt">{html.escape(prompt[:SAMPLE_CHARS])}</pre>' if prompt else ""
        )
        meta = ", ".join(
            f"{k} {html.escape(str(doc[k]))}"
            for k in ("subject", "format", "tokens", "chars")
            if doc[k] is not None
        )
        rows.append(
            f'<details class="doc" data-kept="{"yes" if doc["drop_stage"] is None else "no"}" '
            f'data-source="{html.escape(doc["source"])}"><summary><code>{html.escape(doc["id"])}</code> '
            f'<span class="status">{html.escape(status)}</span> <span class="meta">{meta}</span></summary>'
            f"{prompt_html}<h4>Document</h4><pre>{html.escape(shown)}</pre></details>"
        )
    sources = sorted(set(both.get_column("source").to_list()))
    options = "".join(f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in sources)
    controls = (
        '<div class="controls"><label>Show <select id="sample-kept"><option value="">kept and dropped'
        '</option><option value="yes">kept</option><option value="no">dropped</option></select></label> '
        f'<label>source <select id="sample-source"><option value="">all</option>{options}</select></label> '
        '<span id="sample-count"></span></div>'
    )
    return controls + '<div id="samples-list">' + "".join(rows) + "</div>", len(rows)


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# -- the page ---------------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 24px 60px;
       color: #1d2330; }
header { border-bottom: 1px solid #dde; margin-bottom: 12px; }
h1 { font-size: 24px; margin: 20px 0 4px; } h2 { font-size: 19px; margin: 32px 0 4px; }
.sub { color: #667; margin: 0 0 12px; } nav a { margin-right: 12px; font-size: 14px; }
.summary { display: flex; gap: 28px; flex-wrap: wrap; margin: 12px 0; }
.summary div { font-size: 13px; color: #556; } .summary b { display: block; font-size: 20px; color: #1d2330; }
.empty { background: #f5f6fa; border-left: 3px solid #aab; padding: 10px 14px; color: #445; }
.desc { color: #556; margin: 0 0 6px; font-size: 14px; }
details.doc { border: 1px solid #e3e5ee; border-radius: 6px; margin: 6px 0; padding: 6px 10px; }
details.doc summary { cursor: pointer; } .status { color: #a33; }
details[data-kept=yes] .status { color: #286; }
.meta { color: #778; font-size: 13px; } pre { white-space: pre-wrap; background: #fafbfd; padding: 8px;
       font-size: 12.5px; max-height: 420px; overflow: auto; } pre.prompt { background: #f4f8f2; }
.controls { margin: 8px 0; } .controls label { margin-right: 14px; }
"""

_SAMPLE_SCRIPT = """
(function () {
  var kept = document.getElementById('sample-kept'), source = document.getElementById('sample-source');
  if (!kept) return;
  function apply() {
    var n = 0;
    document.querySelectorAll('#samples-list details.doc').forEach(function (d) {
      var show = (!kept.value || d.dataset.kept === kept.value)
        && (!source.value || d.dataset.source === source.value);
      d.style.display = show ? '' : 'none'; n += show ? 1 : 0;
    });
    document.getElementById('sample-count').textContent = n + ' documents';
  }
  kept.addEventListener('change', apply); source.addEventListener('change', apply); apply();
})();
"""


def _summary(reader: CorpusReader) -> str:
    row = reader.sql(
        "SELECT count(*) AS docs, count(*) FILTER (WHERE drop_stage IS NULL) AS kept, "
        "coalesce(sum(tokens) FILTER (WHERE drop_stage IS NULL), 0) AS tokens, "
        "count(DISTINCT source) AS sources "
        "FROM documents"
    ).row(0, named=True)
    req = reader.sql("SELECT count(*) AS n, coalesce(sum(cost), 0) AS cost FROM requests").row(0, named=True)
    cells = [
        ("documents", f"{row['docs']:,}"),
        ("kept", f"{row['kept']:,}"),
        ("kept tokens", f"{row['tokens']:,}"),
        ("sources", f"{row['sources']:,}"),
        ("LLM requests", f"{req['n']:,}"),
        ("LLM cost", f"${float(req['cost']):,.2f}"),
    ]
    return '<div class="summary">' + "".join(f"<div><b>{v}</b>{k}</div>" for k, v in cells) + "</div>"


def build_sections(reader: CorpusReader) -> list[Section]:
    """Every section of the report, in :data:`SECTIONS` order."""
    go = _plotly()
    funnel, drops = _funnel(reader, go)
    topics, coverage = _topics(reader, go)
    scores, pass_at_k = _scores(reader, go)
    body, n = _sample(reader)
    samples = Section(
        "samples",
        "Sample documents",
        f"{n} documents: up to {SAMPLE_PER_GROUP} kept per source and dropped per stage and reason, "
        "with the prompt each was generated from. Click one to read it.",
        empty="" if n else "No documents yet.",
        html_body=body,
    )
    sections = [
        _shares(reader, go),
        funnel,
        drops,
        topics,
        coverage,
        _lengths(reader, go),
        _clusters(reader, go),
        scores,
        pass_at_k,
        _requests(reader, go),
        samples,
    ]
    assert tuple(s.key for s in sections) == SECTIONS
    return sections


def render_report(reader: CorpusReader) -> str:
    """The report page of the corpus ``reader`` reads, as one HTML string (Plotly's JS inlined)."""
    from plotly.offline import get_plotlyjs

    sections = build_sections(reader)
    parts = []
    for s in sections:
        parts.append(f'<section id="{s.key}" data-section="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.description:
            parts.append(f'<p class="desc">{html.escape(s.description)}</p>')
        if s.figure is not None:
            div = s.figure.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"plot-{s.key}",
                config={"displaylogo": False, "responsive": True},
            )
            parts.append(f'<div class="plot" data-plot="{s.key}">{div}</div>')
        elif s.html_body:
            parts.append(s.html_body)
        if s.empty:
            parts.append(f'<p class="empty" data-empty="{s.key}">{html.escape(s.empty)}</p>')
        parts.append("</section>")
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title.split(":")[0])}</a>' for s in sections)
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    root = html.escape(str(reader.root))
    # `</script>` cannot appear inside the inlined bundle; escape the one sequence that could end it.
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>phicorpus report: {root}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{plotly_js}</script></head><body>'
        f'<header><h1>phicorpus report</h1><p class="sub">{root} — made {made} from the catalog snapshot'
        f"</p>{_summary(reader)}<nav>{nav}</nav></header>"
        + "".join(parts)
        + f"<script>{_SAMPLE_SCRIPT}</script></body></html>\n"
    )


def write_report(corpus: Corpus, out: Path) -> Path:
    """Write the report of ``corpus`` to ``out`` (atomically) and return the path.

    Raises:
        ReportError: plotly is not installed (the message gives the install command).
    """
    _plotly()
    with CorpusReader(corpus).snapshot() as reader:  # every figure from the same catalog state
        page = render_report(reader)
    publish_bytes(out, page.encode("utf-8"))
    return out

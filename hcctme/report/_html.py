"""Self-contained HTML pieces: tables, figures, sections and the page with its embedded assets.

Tables are DataTables (the bundle shipped by the itables package) and figures plotly divs sharing one
embedded copy of plotly.js; both are drawn when they come near the viewport, so the page opens at once
whatever its length. Nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import html
import importlib.resources
import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9;
 line-height:1.45;overflow-x:hidden}
header{background:#1f3b57;color:#fff;padding:16px 32px}
header h1{margin:0;font-size:23px} header p{margin:4px 0 0;opacity:.85;font-size:14px}
nav{position:sticky;top:0;z-index:10;padding:8px 32px;display:flex;flex-wrap:wrap;gap:4px 16px;background:#e9eef3;
 font-size:14px;border-bottom:1px solid #d5dde5}
nav a{color:#1f3b57;text-decoration:none;white-space:nowrap}
main{padding:4px 32px 40px;max-width:1280px;margin:0 auto}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 22px 16px;margin:18px 0;
 overflow-wrap:anywhere;scroll-margin-top:48px}
h2{color:#1f3b57;font-size:19px;border-bottom:1px solid #eee;padding-bottom:6px}
h3{color:#2b4e70;font-size:16px;margin:18px 0 6px}
.table-wrap{max-width:100%;overflow-x:auto;margin:6px 0 14px}
table.data{border-collapse:collapse;font-size:12.5px;width:100%}
table.data th{background:#f0f3f6;text-align:left;padding:4px 8px;border-bottom:1px solid #ccc;white-space:nowrap;
 overflow-wrap:normal}
table.data td{padding:3px 8px;border-bottom:1px solid #eee;vertical-align:top;white-space:normal;
 overflow-wrap:break-word;max-width:38em}
.figure{max-width:100%;margin:6px 0}
p.note{color:#666;font-size:13px}
ul.findings li{margin:5px 0}
.cards-tools{display:flex;gap:12px;align-items:center;margin:8px 0 12px;flex-wrap:wrap}
.cards-tools input{font-size:15px;padding:5px 9px;width:22em;max-width:100%;border:1px solid #aab;border-radius:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.card{border:1px solid #d5dde5;border-radius:6px;padding:8px 14px 12px;background:#fcfdfe;min-width:0}
.card h3{margin:4px 0 2px} .card h4{margin:10px 0 4px;font-size:13.5px;color:#444}
.card p{font-size:13px;margin:2px 0}
.card .cond{font-size:13px;color:#555}
.card table{border-collapse:collapse;font-size:12px;width:100%}
.card td,.card th{padding:2px 5px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
.card th,.nowrap{white-space:nowrap;overflow-wrap:normal}
.card{scroll-margin-top:48px;content-visibility:auto;contain-intrinsic-size:auto 620px}
.bar{display:inline-block;height:9px;background:#3c78b4;vertical-align:middle}
.bar.cohort{background:#bbb}
.tag{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;background:#e4ebf2;margin:1px 2px}
.tier{font-weight:600;color:#1f3b57}
"""

SCRIPT = """
let hcctmePlotly = null;
function hcctmeLoadPlotly() {
  if (!hcctmePlotly) {
    const s = document.createElement('script');
    s.textContent = document.getElementById('hcctme-plotly').textContent;
    document.head.appendChild(s);
    hcctmePlotly = window.Plotly;
  }
  return hcctmePlotly;
}
async function hcctmeDraw(div) {
  const spec = JSON.parse(document.querySelector(`script[data-for="${div.id}"]`).textContent);
  await hcctmeLoadPlotly().newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true});
  div.dataset.rendered = 'true';
}
const hcctmeDataTable = (async () => {
  const src = atob(document.getElementById('hcctme-datatables').textContent.trim());
  const url = URL.createObjectURL(new Blob([src], {type: 'text/javascript'}));
  const {default: DataTable} = await import(url);
  URL.revokeObjectURL(url);
  return DataTable;
})();
async function hcctmeTable(t) {
  const DataTable = await hcctmeDataTable;
  const data = JSON.parse(document.querySelector(`script[data-for="${t.id}"]`).textContent);
  new DataTable(t, {data: data, deferRender: true, pageLength: Number(t.dataset.pageLength || 10),
                    order: [], autoWidth: false, lengthMenu: [5, 10, 25, 50, 100]});
  t.dataset.ready = 'true';
  if (!document.querySelector('table.interactive:not([data-ready])')) document.body.dataset.tablesReady = 'true';
}
const hcctmeObserver = new IntersectionObserver(entries => entries.forEach(e => {
  if (!e.isIntersecting) return;
  hcctmeObserver.unobserve(e.target);
  if (e.target.classList.contains('plotly-lazy')) hcctmeDraw(e.target); else hcctmeTable(e.target);
}), {rootMargin: '600px'});
document.querySelectorAll('.plotly-lazy, table.interactive').forEach(el => hcctmeObserver.observe(el));
hcctmeDataTable.then(() => {
  document.body.dataset.interactive = 'true';
  performance.mark('hcctme-interactive');
});
function hcctmeFilterCards(query) {
  const q = query.trim().toLowerCase();
  let shown = 0;
  document.querySelectorAll('.card').forEach(card => {
    const hit = !q || card.dataset.search.includes(q);
    card.style.display = hit ? '' : 'none';
    shown += hit ? 1 : 0;
  });
  document.getElementById('cards-count').textContent = shown + ' shown';
}
"""


@cache
def _datatables_assets() -> tuple[str, str]:
    root = importlib.resources.files("itables") / "html"
    js = (root / "dt_bundle.js").read_bytes()
    css = (root / "dt_bundle.css").read_text(encoding="utf-8")
    return base64.b64encode(js).decode("ascii"), css


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _json(value: Any) -> str:
    """JSON safe to embed in a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def table(frame: pd.DataFrame | None, *, anchor: str, max_rows: int | None = None, index: bool = False,
          digits: int = 3, page_length: int = 10, full_file: str | None = None) -> str:
    """A DataFrame as an interactive (sortable, filterable, paginated) table.

    The rows travel as JSON and DataTables draws only the page shown, so long tables open fast.
    Numbers are rounded to ``digits`` significant digits; at most ``max_rows`` rows are embedded, with a
    note naming ``full_file`` (the full TSV written beside the report) when rows were left out.
    """
    if frame is None or frame.empty:
        return '<p class="note">No rows.</p>'
    shown = frame.reset_index() if index else frame
    total = len(shown)
    if max_rows is not None and total > max_rows:
        shown = shown.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = [[html.escape(_cell(v, digits)) for v in row] for row in shown.itertuples(index=False, name=None)]
    ident = html.escape(anchor)
    out = (f'<div class="table-wrap"><table id="{ident}" class="data interactive display compact" '
           f'data-page-length="{page_length}"><thead><tr>{head}</tr></thead></table></div>'
           f'<script type="application/json" data-for="{ident}">{_json(rows)}</script>')
    if len(shown) < total:
        where = f"; the full table is {html.escape(full_file)} beside this report" if full_file else ""
        out += f'<p class="note">Showing the first {len(shown):,} of {total:,} rows{where}.</p>'
    return out


class Raw(str):
    """HTML that is already escaped (a static_table cell holding markup)."""

    __slots__ = ()


def static_table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A small plain table (no paging, no search), e.g. inside a patient card."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{v if isinstance(v, Raw) else html.escape(_cell(v, digits))}</td>"
                                    for v in row) + "</tr>" for row in frame.itertuples(index=False, name=None))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def figure(fig: Any, *, anchor: str) -> str:
    """A plotly figure: an empty div drawn by plotly.js when it scrolls into view, and its JSON spec."""
    if fig is None:
        return ""
    spec = fig.to_json().replace("</", "<\\/")
    height = int(fig.layout.height or 450)
    return (f'<div class="figure plotly-lazy" id="{html.escape(anchor)}" style="height:{height}px"></div>'
            f'<script type="application/json" data-for="{html.escape(anchor)}">{spec}</script>')


def section(anchor: str, title: str, body: str) -> str:
    """One top-level section of the page."""
    return f'<section id="{html.escape(anchor)}"><h2>{html.escape(title)}</h2>{body}</section>'


def paragraph(text: str, *, note: bool = False) -> str:
    """An escaped paragraph."""
    cls = ' class="note"' if note else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def link(text: str, anchor: str) -> str:
    """An in-page link."""
    return f'<a href="#{html.escape(anchor)}">{html.escape(text)}</a>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` holds (anchor, title, body html)."""
    dt_js, dt_css = _datatables_assets()
    nav = "".join(f'<a href="#{html.escape(a)}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{dt_css}</style><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f'<script type="text/plain" id="hcctme-datatables">{dt_js}</script>'
        f'<script type="text/plain" id="hcctme-plotly">{_plotly_js()}</script>'
        f"<script>{SCRIPT}</script></body></html>"
    )

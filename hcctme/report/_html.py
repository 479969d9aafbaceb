"""Self-contained HTML pieces: embedded PNG figures, tables and sections (no external assets)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 32px;background:#e9eef3;font-size:14px} nav a{margin-right:14px;color:#1f3b57}
main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 20px;margin:18px 0}
h2{color:#1f3b57;font-size:19px;border-bottom:1px solid #eee;padding-bottom:6px}
table.data{border-collapse:collapse;font-size:12.5px;margin:8px 0}
table.data th{background:#f0f3f6;text-align:left;padding:4px 8px;border-bottom:1px solid #ccc}
table.data td{padding:3px 8px;border-bottom:1px solid #eee}
img.figure{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}
p.note{color:#666;font-size:13px}
"""


def figure(fig: Figure | None, *, alt: str) -> str:
    """A matplotlib figure as an embedded PNG <img> (the figure is closed)."""
    if fig is None:
        return ""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table(frame: pd.DataFrame, *, max_rows: int = 20, index: bool = False, digits: int = 3) -> str:
    """A DataFrame as an HTML table (first ``max_rows`` rows, numbers rounded)."""
    if frame is None or frame.empty:
        return '<p class="note">No rows.</p>'
    shown = frame.head(max_rows).copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: f"{v:.{digits}g}" if pd.notna(v) else "")
    note = f'<p class="note">Showing {len(shown)} of {len(frame)} rows.</p>' if len(frame) > max_rows else ""
    return shown.to_html(index=index, classes="data", border=0, escape=True) + note


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


def paragraph(text: str, *, note: bool = False) -> str:
    cls = ' class="note"' if note else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` holds (anchor, title, body html)."""
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )

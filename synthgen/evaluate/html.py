"""Render an :class:`EvaluationResult` as one self-contained HTML page.

Inline CSS, plots as ``data:image/png;base64`` URIs, no scripts, fonts or links to
anything outside the file: the report must open on an air-gapped machine and must not
call home when a data steward opens it. Every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from synthgen.evaluate.sections.base import SectionResult, _jsonable

if TYPE_CHECKING:
    from synthgen.evaluate.evaluation import EvaluationResult

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0}
body{color:#1d2330;background:#f6f7f9}
main{max-width:1150px;margin:0 auto;padding:24px}
h1{margin:0 0 4px 0;font-size:26px}
h2{margin:0 0 6px 0;font-size:20px}
h3{font-size:14px;margin:14px 0 6px}
.banner{background:#7a1f1f;color:#fff;padding:8px 24px;font-size:13px;letter-spacing:.02em}
.meta{color:#5b6475;font-size:13px;margin-bottom:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 12px}
.card .k{font-size:11px;color:#5b6475;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:600;margin-top:2px}
.card .h{font-size:11px;color:#5b6475}
.alerts{background:#fff4e5;border:1px solid #f0b35a;border-radius:8px;padding:8px 14px;margin:12px 0}
.alerts li{margin:3px 0;font-size:14px}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:16px 18px;margin:16px 0}
.badge{display:inline-block;font-size:11px;font-weight:600;padding:2px 8px}
.badge{border-radius:10px;margin-left:8px;vertical-align:middle}
.ok{background:#e3f4e8;color:#1e6b35}
.skipped{background:#eceef2;color:#4b5263}
.error{background:#fde8e8;color:#9b1c1c}
.msg{font-size:14px;margin:6px 0 10px}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 10px}
td,th{border:1px solid #e3e6ec;padding:3px 8px;text-align:left}
th{background:#f1f3f6}
td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:6px 0}
figure{margin:10px 0}
figcaption{font-size:12px;color:#5b6475}
nav a{margin-right:12px;font-size:13px;color:#2b59c3}
.tables{display:flex;flex-wrap:wrap;gap:18px}
.tables>div{min-width:260px}
"""

#: Headline cards: (key, label, hint).
_CARDS = [
    ("quality_score", "Quality score", "SDMetrics, 1 = best"),
    ("column_shapes", "Column shapes", "1 = same marginals"),
    ("column_pair_trends", "Pair trends", "1 = same correlations"),
    ("tvd_1way_mean", "1-way TVD", "mean, 0 = best"),
    ("tvd_2way_mean", "2-way TVD", "mean, 0 = best"),
    ("corr_diff_mean", "Correlation diff", "mean |Δ|, 0 = best"),
    ("utility_tstr", "TSTR", "train synthetic, test real"),
    ("utility_trtr", "TRTR", "train real, test real"),
    ("dcr_share", "DCR share", "≈0.5 = no memorisation"),
    ("attack_auc", "Attack AUC", "≈0.5 = chance"),
    ("exact_match_rate", "Exact matches", "share of synthetic rows"),
    ("epsilon", "ε", "DP budget of this output"),
    ("delta", "δ", ""),
    ("pii_values_found", "PII values found", "goal: 0"),
]


def _fmt(value: Any) -> str:
    value = _jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return escape(str(value))


def _cell(value: Any) -> str:
    cls = ' class="n"' if isinstance(_jsonable(value), int | float) and not isinstance(value, bool) else ""
    return f"<td{cls}>{_fmt(value)}</td>"


def _table(columns: list[str], rows: list[list[Any]], caption: str | None = None) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    title = f"<h3>{escape(caption)}</h3>" if caption else ""
    return f"<div>{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _section(s: SectionResult) -> str:
    parts = [
        f'<section id="{escape(s.name)}"><h2>{escape(s.title)}'
        f'<span class="badge {s.status}">{s.status}</span></h2>'
    ]
    if s.message:
        parts.append(f'<p class="msg">{escape(s.message)}</p>')
    if s.alerts:
        parts.append('<ul class="alerts">' + "".join(f"<li>{escape(a)}</li>" for a in s.alerts) + "</ul>")
    blocks = []
    if s.metrics:
        blocks.append(_table(["metric", "value"], [[k, v] for k, v in s.metrics.items()], "Metrics"))
    blocks += [_table(t.columns, t.rows, t.title) for t in s.tables]
    if blocks:
        parts.append('<div class="tables">' + "".join(blocks) + "</div>")
    for f in s.figures:
        cap = f"<figcaption>{escape(f.caption)}</figcaption>" if f.caption else ""
        parts.append(
            f'<figure><h3>{escape(f.title)}</h3><img alt="{escape(f.title)}"'
            f' src="data:image/png;base64,{f.png_base64}">{cap}</figure>'
        )
    parts.append(f'<p class="meta">computed in {s.seconds:.2f} s</p></section>')
    return "".join(parts)


def render(result: EvaluationResult, *, title: str) -> str:
    headline = result.headline
    cards = "".join(
        f'<div class="card"><div class="k">{escape(label)}</div>'
        f'<div class="v">{_fmt(headline.get(key))}</div>'
        f'<div class="h">{escape(hint)}</div></div>'
        for key, label, hint in _CARDS
        if key in headline
    )
    dp = headline.get("dp")
    if dp is True:
        dp_line = "trained with differential privacy"
    elif dp is False:
        dp_line = "trained WITHOUT differential privacy"
    else:
        dp_line = "DP status unknown"
    alerts = result.alerts
    alert_html = (
        '<div class="alerts"><b>Look at these first</b><ul>'
        + "".join(f"<li>{escape(a)}</li>" for a in alerts)
        + "</ul></div>"
        if alerts
        else ""
    )
    nav = "".join(f'<a href="#{escape(s.name)}">{escape(s.title)} ({s.status})</a>' for s in result.sections)
    rows = result.rows
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        '<div class="banner">RESTRICTED: this report compares synthetic data with real rows. It is'
        " real-derived and not differentially private. Do not share it with the synthetic dataset.</div>"
        f"<main><h1>{escape(title)}</h1>"
        f'<div class="meta">{escape(result.created)} · {rows.get("train", 0)} training rows ·'
        f" {rows.get('holdout', 0)} holdout rows · {rows.get('synthetic', 0)} synthetic rows ·"
        f" {escape(dp_line)} · {result.seconds:.1f} s</div>"
        f"<nav>{nav}</nav><div class='cards'>{cards}</div>{alert_html}"
        + "".join(_section(s) for s in result.sections)
        + "</main></body></html>"
    )

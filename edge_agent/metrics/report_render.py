"""A report document as CSV (for Excel) and as a printable HTML page.

CSV: one row per device and figure, with its unit, coverage, quality and reason, and
rows of role ``report`` for the report's own status, coverage and notes: a single
table that Excel filters and pivots. UTF-8 with a byte-order mark, so that Excel
reads the Chinese labels and site names as UTF-8; CRLF line ends, as Excel writes.
Values are the document's as they are (no rounding, no unit change).

HTML: one self-contained page (no script, no link, the style inline) that prints on
A4: plant, site, day or shift, window and time zone, when it was generated, the
status and notes first, then a table per device. Every text from the plant file or
the batches is escaped. The console serves it with a Content-Security-Policy that
allows exactly this style (:data:`STYLE_CSP_HASH`) and nothing else.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from html import escape
from typing import Any, Final

from edge_agent.metrics.report_figures import EPOCH_S, RATIO

Document = dict[str, Any]

CSV_COLUMNS: Final = (
    "plant",
    "report",
    "day",
    "shift",
    "device",
    "role",
    "family",
    "figure",
    "label",
    "label_zh",
    "value",
    "unit",
    "local_time",
    "coverage",
    "quality",
    "reason",
)

STYLE: Final = """
body{font-family:"Noto Sans","Noto Sans CJK SC","Microsoft YaHei",Arial,sans-serif;
margin:2em;color:#111;font-size:10.5pt}
h1{font-size:16pt;margin:0 0 .3em}h2{font-size:12pt;margin:1.4em 0 .3em}
.meta{margin:0 0 1em;border-collapse:collapse}.meta th{text-align:left;padding-right:1em}
table.figures{border-collapse:collapse;width:100%;margin-bottom:.5em}
table.figures th,table.figures td{border:1px solid #bbb;padding:.2em .4em;text-align:left}
table.figures td.num{text-align:right;font-variant-numeric:tabular-nums}
table.figures thead th{background:#eee}
.zh{color:#555}.status-partial,.status-no_data,.low{color:#a40000;font-weight:bold}
.status-complete{color:#1a6b1a;font-weight:bold}
.notes li{color:#a40000}
.uncertain,.bad{color:#a40000}
@page{size:A4;margin:15mm}
@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}
thead{display:table-header-group}}
"""
#: The page's one inline style, for a Content-Security-Policy ``style-src`` source.
STYLE_CSP_HASH: Final = (
    "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"
)


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def render_csv(document: Document) -> bytes:
    """The report as CSV bytes (see the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    head = [document["plant"], document["report"], document["day"], document.get("shift") or ""]
    report_rows: list[tuple[str, Any, str]] = [
        ("status", document["status"], ""),
        ("coverage", document["coverage"], RATIO),
    ]
    report_rows += [("note", note, "") for note in document["notes"]]
    for figure, value, unit in report_rows:
        writer.writerow(
            [*head, "", "report", "", figure, figure, "", _value_text(value), unit, "", "", "", ""]
        )
    for device in document["devices"]:
        for f in device["figures"]:
            writer.writerow(
                [
                    *head,
                    device["device"],
                    device["role"],
                    f["family"],
                    f["name"],
                    f["label"],
                    f["label_zh"],
                    _value_text(f["value"]),
                    f["unit"],
                    f.get("local_time", ""),
                    _value_text(f["coverage"]),
                    f["quality"],
                    f["reason"],
                ]
            )
    return out.getvalue().encode("utf-8-sig")


def _shown(value: Any, unit: str, local_time: str | None) -> tuple[str, str]:
    """(value, unit) as the page shows them: ratios in percent, times in local time."""
    if value is None:
        return "–", unit
    if unit == EPOCH_S and local_time:
        return local_time.replace("T", " "), ""
    if unit == RATIO and isinstance(value, int | float):
        return f"{value * 100:.2f}", "%"
    return _value_text(value), unit


def _coverage(value: Any, minimum: float) -> str:
    if not isinstance(value, int | float):
        return "<td></td>"
    low = ' class="num low"' if value < minimum else ' class="num"'
    return f"<td{low}>{value * 100:.1f}%</td>"


def render_html(document: Document) -> bytes:
    """The report as a printable, self-contained HTML page (see the module docstring)."""
    e = escape
    kind = "Daily" if document["report"] == "daily" else "Shift"
    when = document["day"] + (f" · {document['shift']}" if document.get("shift") else "")
    title = f"{kind} energy report · {document['plant']} · {when}"
    status = document["status"]
    coverage = document["coverage"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        '<table class="meta">',
        f"<tr><th>Plant 工厂</th><td>{e(document['plant'])}</td></tr>",
    ]
    if document.get("site"):
        parts.append(f"<tr><th>Site 厂区</th><td>{e(document['site'])}</td></tr>")
    parts += [
        f"<tr><th>{'Day 日期' if kind == 'Daily' else 'Shift 班次'}</th><td>{e(when)}</td></tr>",
        f"<tr><th>Window 时段</th><td>{e(document['start'])} – {e(document['end'])}</td></tr>",
        f"<tr><th>Time zone 时区</th><td>{e(document['timezone'])}</td></tr>",
        f"<tr><th>Generated 生成时间</th><td>{e(str(document['generated_at']))}</td></tr>",
        f'<tr><th>Status 状态</th><td class="status-{e(status)}">{e(status)}</td></tr>',
        "<tr><th>Coverage 数据覆盖率</th><td>"
        + ("–" if coverage is None else f"{coverage * 100:.1f}%")
        + "</td></tr></table>",
    ]
    if document["notes"]:
        parts.append('<ul class="notes">')
        parts += [f"<li>{e(note)}</li>" for note in document["notes"]]
        parts.append("</ul>")
    minimum = document["min_coverage"]
    for device in document["devices"]:
        parts.append(f"<h2>{e(device['device'])} <small>({e(device['role'])})</small></h2>")
        parts.append(
            '<table class="figures"><thead><tr><th>Figure</th><th>指标</th><th>Value 数值</th>'
            "<th>Unit 单位</th><th>Coverage 覆盖率</th><th>Note 说明</th></tr></thead><tbody>"
        )
        for f in device["figures"]:
            value, unit = _shown(f["value"], f["unit"], f.get("local_time"))
            quality = f["quality"]
            note = f["reason"] or ("" if quality == "good" else quality)
            css = "" if quality == "good" else f' class="{e(quality)}"'
            parts.append(
                f'<tr><td>{e(f["label"])}</td><td class="zh">{e(f["label_zh"])}</td>'
                f'<td class="num">{e(value)}</td><td>{e(unit)}</td>'
                f"{_coverage(f['coverage'], minimum)}<td{css}>{e(note)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8")


def render_text(document: Document) -> str:
    """The report as plain text for a terminal (``edge-agent report --text``)."""
    when = document["day"] + (f" shift {document['shift']}" if document.get("shift") else "")
    coverage = document["coverage"]
    lines = [
        f"{document['report']} energy report: {document['plant']} {when}",
        f"  {document['start']} to {document['end']} ({document['timezone']}), "
        f"generated {document['generated_at']}",
        f"  status {document['status']}, coverage "
        + ("–" if coverage is None else f"{coverage * 100:.1f}%"),
    ]
    lines += [f"  ! {note}" for note in document["notes"]]
    for device in document["devices"]:
        lines.append(f"{device['device']} ({device['role']})")
        for f in device["figures"]:
            value, unit = _shown(f["value"], f["unit"], f.get("local_time"))
            reason = f"  [{f['reason']}]" if f["reason"] else ""
            lines.append(f"  {f['label']:<34} {value:>16} {unit}{reason}".rstrip())
    return "\n".join(lines) + "\n"

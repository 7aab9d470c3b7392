"""A self-contained, JavaScript-free interactive HTML report.

Everything is inline: CSS, the metric tables and SVG charts.  The equity chart
is hand-drawn SVG with hover bands whose ``<title>`` shows date and values
(browser tooltips, no script); the other charts are inline matplotlib SVGs.
Nothing is fetched from the network when the page is opened.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rl.evaluation.plots import thin

WIDTH, HEIGHT, MARGIN = 1000, 360, 56
HOVER_BANDS = 200
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1080px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.band{fill:#000;fill-opacity:0}.band:hover{fill-opacity:.08}
svg{max-width:100%;height:auto}
"""


def _number(value: object) -> str:
    if isinstance(value, float | int | np.floating | np.integer):
        x = float(value)
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:,.4f}" if abs(x) < 1e5 else f"{x:,.0f}"
    return html.escape(str(value))


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as a plain HTML table with formatted numbers."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["", *frame.columns])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(str(index))}</td>"
        + "".join(f"<td>{_number(v)}</td>" for v in row)
        + "</tr>"
        for index, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def equity_svg(curves: Mapping[str, pd.Series], colors: Sequence[str] = ("#1f5fa8", "#9a9a9a")) -> str:
    """Line chart of equity curves on a shared DatetimeIndex, with hover tooltips."""
    frame = pd.DataFrame(dict(curves)).ffill()
    x_ns = frame.index.asi8.astype(float)
    x0, x1 = x_ns[0], x_ns[-1] if x_ns[-1] > x_ns[0] else x_ns[0] + 1
    low, high = float(np.nanmin(frame.to_numpy())), float(np.nanmax(frame.to_numpy()))
    high = high if high > low else low + 1

    def px(x: np.ndarray) -> np.ndarray:
        return MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2 * MARGIN)

    def py(y: np.ndarray) -> np.ndarray:
        return HEIGHT - MARGIN - (y - low) / (high - low) * (HEIGHT - 2 * MARGIN)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}">']
    for tick in np.linspace(low, high, 5):
        y = float(py(np.array(tick)))
        parts.append(f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{MARGIN - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick:,.0f}</text>'
        )
    for (name, column), color in zip(frame.items(), colors, strict=False):
        shown = thin(column.dropna(), 1500)
        points = " ".join(
            f"{a:.1f},{b:.1f}"
            for a, b in zip(px(shown.index.asi8.astype(float)), py(shown.to_numpy()), strict=True)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>')
        parts.append(
            f'<text x="{WIDTH - MARGIN}" y="{MARGIN - 10 - 14 * list(frame).index(name)}" '
            f'font-size="12" text-anchor="end" fill="{color}">{html.escape(str(name))}</text>'
        )
    for label_x, stamp in ((MARGIN, frame.index[0]), (WIDTH - MARGIN, frame.index[-1])):
        parts.append(
            f'<text x="{label_x}" y="{HEIGHT - MARGIN + 18}" font-size="11" '
            f'text-anchor="middle">{stamp:%Y-%m-%d}</text>'
        )
    band_width = (WIDTH - 2 * MARGIN) / HOVER_BANDS
    band_ends = np.linspace(x0, x1, HOVER_BANDS + 1)[1:]
    for band, last in enumerate(np.searchsorted(x_ns, band_ends, side="right") - 1):
        row = frame.iloc[last]
        tip = f"{frame.index[last]:%Y-%m-%d %H:%M} UTC\n" + "\n".join(
            f"{k}: {v:,.2f}" for k, v in row.items()
        )
        parts.append(
            f'<rect class="band" x="{MARGIN + band * band_width:.1f}" y="{MARGIN}" width="{band_width:.2f}" '
            f'height="{HEIGHT - 2 * MARGIN}"><title>{html.escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def report_page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """The full HTML document from (heading, inner HTML) sections."""
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(subtitle)}</p>{body}</body></html>"
    )

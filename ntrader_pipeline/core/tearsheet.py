"""The equity-and-drawdown chart (PNG) and a self-contained HTML tearsheet of one run.

Our own HTML rather than NautilusTrader's plotly tearsheet: it plots the bar-level equity the
metrics are computed from (NautilusTrader's rebuilds equity by compounding returns), needs no
JavaScript or network to open, and is about a hundred times smaller (``bench/tearsheet.py``).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.metrics import format_metric

TRADE_ROWS_SHOWN = 500


def equity_drawdown_png(curve: pd.DataFrame, title: str) -> bytes:
    """Equity (top) and drawdown (bottom, shaded) over time, as PNG bytes."""
    # Imported here: matplotlib costs ~0.9 s to import, which every fresh run process would pay.
    # No pyplot: no global state, no display backend needed.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5.5), dpi=100)
    equity_ax, drawdown_ax = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    times = curve["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    equity_ax.plot(times, curve["equity"], color="#1f77b4", linewidth=1)
    equity_ax.set_ylabel("equity")
    equity_ax.set_title(title)
    equity_ax.grid(alpha=0.3)
    drawdown_ax.fill_between(times, curve["drawdown"] * 100, 0, color="#d62728", alpha=0.4, linewidth=0)
    drawdown_ax.set_ylabel("drawdown %")
    drawdown_ax.set_xlabel("time (UTC)")
    drawdown_ax.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# Dagster's asset page shows a Markdown metadata value inline only when it is under 1000 characters
# (ui-core MetadataEntry, ``expandSmallValues``); longer ones hide behind "[Show Markdown]".
INLINE_MARKDOWN_LIMIT = 1000


def sparkline_markdown(values, alt: str = "equity") -> str:
    """A two-colour PNG line of ``values`` small enough to show inline on Dagster's asset page."""
    from PIL import Image, ImageDraw  # Pillow comes with matplotlib; imported only when drawing

    values = np.asarray(values, dtype=np.float64)
    for width, height in ((300, 60), (240, 48), (160, 32)):
        x = np.linspace(0, len(values) - 1, width).astype(int)
        y = values[x]
        low, high = float(np.nanmin(y)), float(np.nanmax(y))
        rows = (height - 3) - (y - low) / ((high - low) or 1.0) * (height - 6)
        image = Image.new("P", (width, height), 0)
        image.putpalette([255, 255, 255, 31, 119, 180] + [0] * 762)
        ImageDraw.Draw(image).line(list(zip(range(width), rows.tolist())), fill=1, width=1)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True, bits=1)
        text = png_markdown(buffer.getvalue(), alt)
        if len(text) < INLINE_MARKDOWN_LIMIT:
            return text
    return f"{alt}: see the tearsheet"


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown that shows the PNG inline (Dagster renders data-URI images in md metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _cell(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return html.escape(format(value, "f") if hasattr(value, "as_tuple") else str(value))


def chart_title(record: dict[str, Any]) -> str:
    return f"{record['strategy']} on {record['symbol']} — run {record['run_id']}"


def tearsheet_html(
    record: dict[str, Any], metrics: dict[str, Any], ledger: pd.DataFrame, curve: pd.DataFrame,
    chart: bytes | None = None,
) -> str:
    """One HTML file: run facts, every metric, the chart (inline PNG) and the trade ledger.

    ``chart`` is the PNG when the caller has drawn it already (drawing costs about 0.15 s).
    """
    title = chart_title(record)
    png = base64.b64encode(chart or equity_drawdown_png(curve, title)).decode()
    metric_rows = "\n".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(format_metric(name, value))}</td></tr>"
        for name, value in metrics.items()
        if name not in {"run_id", "strategy", "symbol"}
    )
    shown = ledger.tail(TRADE_ROWS_SHOWN)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    trade_rows = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in shown.itertuples(index=False)
    )
    note = f"<p>Last {TRADE_ROWS_SHOWN} of {len(ledger)} trades; all are in trades.csv.</p>" if len(ledger) > TRADE_ROWS_SHOWN else ""
    facts = {
        "bars": record.get("bar_type"),
        "data sha256": record.get("data_hash"),
        "versions": ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
    }
    fact_rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; font-size: 13px; }}
th {{ background: #f4f4f4; text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{fact_rows}</table>
<img alt="equity and drawdown" src="data:image/png;base64,{png}">
<h2>Metrics</h2>
<p>Equity is marked to market at every bar; ratios use daily returns with no risk-free rate; n/a marks an undefined value.</p>
<table>{metric_rows}</table>
<h2>Trades ({len(ledger)})</h2>
{note}
<table><tr>{header}</tr>
{trade_rows}
</table>
</body></html>
"""

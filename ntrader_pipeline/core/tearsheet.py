"""The equity-and-drawdown chart (PNG) and a self-contained HTML tearsheet of one run.

Our own HTML rather than NautilusTrader's plotly tearsheet: it plots the bar-level equity the
metrics are computed from (NautilusTrader's rebuilds equity by compounding returns), needs no
JavaScript or network to open, and is about a hundred times smaller (``bench/tearsheet.py``).
"""

from __future__ import annotations

import base64
import html
from typing import Any

import pandas as pd

from ntrader_pipeline.core.chart import chart_caption, equity_drawdown_png
from ntrader_pipeline.core.metrics import format_metric

__all__ = ["chart_caption", "chart_title", "equity_drawdown_png", "png_markdown", "tearsheet_html"]

TRADE_ROWS_SHOWN = 500


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

    ``chart`` is the PNG when the caller has drawn it already.
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
<p>Equity (top) and drawdown (bottom): {html.escape(chart_caption(curve))}.</p>
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

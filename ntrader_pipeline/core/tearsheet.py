"""The equity-and-drawdown chart (PNG, for the UI) and a self-contained HTML tearsheet of one run.

Our own HTML rather than NautilusTrader's plotly tearsheet or quantstats': it plots the bar-level
equity the metrics are computed from (NautilusTrader's rebuilds equity by compounding returns),
draws every chart as inline SVG, needs no JavaScript or network to open, and is far smaller
(``bench/tearsheet.py``). The page layout is the template beside this module.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.chart import chart_caption, equity_drawdown_png
from ntrader_pipeline.core.metric_registry import BENCHMARK_OF, display, label, spec
from ntrader_pipeline.core.metrics import (
    EXCHANGE_TZ,
    Benchmark,
    benchmark_curve,
    daily_rate,
    daily_returns,
    exchange_zone,
)
from ntrader_pipeline.core.performance import (
    ROLLING_DAYS,
    annual_returns,
    drawdown_periods,
    monthly_returns,
    rolling_beta,
    rolling_sharpe_volatility,
)
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.svg_charts import (
    BLUE,
    GREEN,
    GREY,
    RED,
    Line,
    Markers,
    grouped_bar_chart,
    heatmap,
    histogram,
    time_chart,
)

__all__ = ["chart_caption", "chart_title", "equity_drawdown_png", "png_markdown", "tearsheet_html"]

TRADE_ROWS_SHOWN = 500
TEMPLATE = Path(__file__).with_name("templates") / "report.html"


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


def chart_title(record: RunRecord) -> str:
    return f"{record.strategy} on {record.symbol} — run {record.run_id}"


def render_page(title: str, subtitle: str, body: str, footer: str = "") -> str:
    """A report page in the shared template (``templates/report.html``): one file, no scripts."""
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=html.escape(title), subtitle=html.escape(subtitle), body=body, footer=html.escape(footer)
    )


def metric_cards(names: tuple[str, ...], metrics: Mapping[str, Any], suffix: str = "") -> list[tuple[str, str, bool]]:
    """Cards of these metrics: the registry's label (plus ``suffix``), its display text, red when negative."""
    return [
        (
            label(name) + suffix,
            display(name, metrics.get(name)),
            isinstance(metrics.get(name), float) and metrics[name] < 0,
        )
        for name in names
    ]


WIDE_CARD = 12  # characters of a value beyond which its card takes two columns (a parameter set)


def cards(items: list[tuple[str, str, bool]]) -> str:
    """Headline figures as cards: (label, formatted value, negative?). A long value gets a card two
    columns wide, and wraps inside it rather than running into its neighbour."""
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card{" wide" if len(value) > WIDE_CARD else ""}">'
            f'<div class="label">{html.escape(label)}</div>'
            f'<div class="value{" neg" if negative else ""}">{html.escape(value)}</div></div>'
            for label, value, negative in items
        )
        + "</div>"
    )


def table(
    header: list[str], rows: list[list[Any]], text_columns: int = 1, scroll: bool = False, wrap: bool = False
) -> str:
    """An HTML table; the first ``text_columns`` are left-aligned, a value starting with "-" is red;
    ``wrap`` lets long cells wrap (definitions) instead of keeping each on one line."""
    head = "".join(
        f'<th class="{"text" if i < text_columns else ""}">{html.escape(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = "" if v is None else str(v)
            css = "text" if i < text_columns else "neg" if text.startswith("-") else ""
            cells.append(f'<td class="{css}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = f"<table{' class="wrap"' if wrap else ''}><tr>{head}</tr>{''.join(body)}</table>"
    return f'<div class="{"scroll" if scroll else "fit"}">{out}</div>'  # a narrow window scrolls the table


def _stamp(value: Any) -> str:
    if value is None or value is pd.NaT:
        return "—"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")


def _money(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):,.2f}"


def _exact(value: Any, grouped: bool = False) -> str:
    """A Decimal in plain digits (``Decimal('3.21E+4')``, as the warehouse normalizes it, reads
    ``32100``), with thousands separators when ``grouped``."""
    return format(value.normalize(), ",f" if grouped else "f") if isinstance(value, Decimal) else str(value)


def _ns(frame: pd.DataFrame) -> np.ndarray:
    column = frame["ts_event"] if "ts_event" in frame else frame["timestamp"]
    if pd.api.types.is_integer_dtype(column.dtype):  # np.asarray of a tz-aware column makes a Timestamp per row
        return np.asarray(column, dtype=np.int64)
    return pd.DatetimeIndex(pd.to_datetime(column, utc=True)).as_unit("ns").asi8


def equity_section(curve: pd.DataFrame, metrics: Mapping[str, Any], benchmark: Benchmark | None) -> str:
    """Equity against the benchmark scaled to the same start, on a linear and a log scale (a
    checkbox switches between them with CSS alone)."""
    x = _ns(curve)
    equity = curve["equity"].to_numpy(dtype=np.float64)
    lines = [Line("strategy", x, equity)]
    if benchmark is not None and len(benchmark.closes):
        closes = benchmark.closes["close"].to_numpy(dtype=np.float64)
        lines.append(
            Line(f"buy and hold {benchmark.symbol}", _ns(benchmark.closes), closes / closes[0] * equity[0], color=GREY)
        )
    money = "{:,.0f}".format
    linear = time_chart("equity", "Equity against the benchmark", lines, y_format=money)
    log = time_chart("equity-log", "Equity against the benchmark (log scale)", lines, log=True, y_format=money)
    return (
        '<h2>Equity</h2><div class="toggle"><input type="checkbox" id="log-scale">'
        '<label for="log-scale">log scale</label>'
        f'<div class="linear-scale">{linear}</div><div class="log-scale">{log}</div></div>'
    )


def drawdown_section(curve: pd.DataFrame) -> str:
    underwater = time_chart(
        "underwater",
        "Underwater (drawdown from the running high)",
        [Line("drawdown", _ns(curve), curve["drawdown"].to_numpy(dtype=np.float64), color=RED, area=True)],
        y_format="{:.0%}".format,
        zero_line=True,
    )
    rows = [
        [
            i + 1,
            _stamp(p["peak"]),
            _stamp(p["trough"]),
            _stamp(p["recovery"]) if p["recovery"] is not None else "not recovered",
            display("max_drawdown", p["depth"]),
            display("max_drawdown_duration_days", p["days"]),
        ]
        for i, p in enumerate(drawdown_periods(curve))
    ]
    worst = (
        table(["#", "peak", "trough", "recovery", "depth", "days"], rows, text_columns=4)
        if rows
        else "<p class=note>No drawdown.</p>"
    )
    return f"<h2>Drawdowns</h2>{underwater}<h3>Five worst drawdowns</h3>{worst}"


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _percent(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.2%}"


def returns_section(
    returns: pd.Series, bench_returns: pd.Series | None, bench_name: str, rf: float = 0.0, zone: str = EXCHANGE_TZ
) -> str:
    """Monthly and annual returns beside the benchmark's, rolling Sharpe, volatility and beta, and
    the histogram of daily returns. ``rf``: the daily risk-free rate the rolling Sharpe subtracts."""
    monthly = monthly_returns(returns, zone)
    annual = annual_returns(returns, zone)
    bench_annual = annual_returns(bench_returns, zone) if bench_returns is not None else None
    years = [int(y) for y in monthly.index]
    columns = [*MONTHS, "Year"]
    grid = np.column_stack([monthly.to_numpy(dtype=np.float64), annual.reindex(years).to_numpy(dtype=np.float64)])
    if bench_annual is not None:
        columns.append("Bench.")
        grid = np.column_stack([grid, bench_annual.reindex(years).to_numpy(dtype=np.float64)])
    heat = heatmap(
        "monthly-returns",
        "Monthly returns, the year's and the benchmark's (Bench.)" if bench_annual is not None else "Monthly returns",
        [str(y) for y in years],
        columns,
        grid,
        own_scale_from=12,
    )
    groups = [("strategy", annual.tolist(), BLUE)]
    if bench_annual is not None:
        groups.append((f"buy and hold {bench_name}", bench_annual.reindex(annual.index).tolist(), GREY))
    bars = grouped_bar_chart("annual-returns", "Annual returns", [str(y) for y in annual.index], groups)
    rows = [
        [
            str(year),
            _percent(value),
            *(
                [_percent(bench_annual.get(year)), _percent(value - bench_annual.get(year, np.nan))]
                if bench_annual is not None
                else []
            ),
        ]
        for year, value in annual.items()
    ]
    header = ["year", "strategy", *([f"buy and hold {bench_name}", "difference"] if bench_annual is not None else [])]
    annual_table = f"<h3>Annual returns</h3>{table(header, rows, scroll=len(rows) > 30)}"
    rolling = rolling_sharpe_volatility(returns, rf=rf)
    x = pd.DatetimeIndex(rolling.index).as_unit("ns").asi8
    sharpe = time_chart(
        "rolling-sharpe",
        "Rolling 6-month Sharpe ratio",
        [Line("Sharpe", x, rolling["sharpe"].to_numpy(dtype=np.float64))],
        y_format="{:.1f}".format,
        zero_line=True,
    )
    vol = time_chart(
        "rolling-volatility",
        "Rolling 6-month volatility (annualised)",
        [Line("volatility", x, rolling["volatility"].to_numpy(dtype=np.float64), color=GREY)],
        y_format="{:.0%}".format,
    )
    hist = histogram("returns-histogram", "Daily returns", returns.to_numpy(dtype=np.float64))
    beta = beta_chart(returns, bench_returns, bench_name, zone)
    return f"<h2>Returns</h2>{heat}{bars}{annual_table}{sharpe}{vol}{beta}{hist}"


def beta_chart(returns: pd.Series, bench_returns: pd.Series | None, bench_name: str, zone: str = EXCHANGE_TZ) -> str:
    """Beta to the benchmark over the trailing ``ROLLING_DAYS`` sessions."""
    title = f"Rolling 6-month beta to {bench_name} ({ROLLING_DAYS} sessions)"
    if bench_returns is None:
        return f"<h3>{html.escape(title)}</h3><p class=note>The benchmark's bars are not at hand for this report.</p>"
    beta = rolling_beta(returns, bench_returns, zone=zone)
    x = pd.DatetimeIndex(beta.index).as_unit("ns").asi8
    return time_chart(
        "rolling-beta",
        title,
        [Line("beta", x, beta.to_numpy(dtype=np.float64))],
        y_format="{:.2f}".format,
        zero_line=True,
    )


def price_section(prices: pd.DataFrame | None, ledger: pd.DataFrame, symbol: str) -> str:
    if prices is None or not len(prices):
        return "<h2>Price and trades</h2><p class=note>The bars are not at hand for this report.</p>"
    x = _ns(prices)
    close = prices["close"].to_numpy(dtype=np.float64)

    def at(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        ns = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).as_unit("ns").asi8
        return ns, np.interp(ns, x, close)

    none = (np.array([], dtype=np.int64), np.array([]))
    entry_x, entry_y = at(ledger["entry_time"]) if len(ledger) else none
    exit_x, exit_y = at(ledger["exit_time"]) if len(ledger) else none
    markers = [Markers("entry", entry_x, entry_y, GREEN, "up"), Markers("exit", exit_x, exit_y, RED, "down")]
    chart = time_chart(
        "price-trades",
        f"{symbol} close with entries and exits",
        [Line(symbol, x, close, color=GREY)],
        y_format="{:,.2f}".format,
        markers=markers,
    )
    return f"<h2>Price and trades</h2>{chart}"


def trades_section(ledger: pd.DataFrame) -> str:
    shown = ledger.tail(TRADE_ROWS_SHOWN)
    rows = [
        [
            r.side,
            _stamp(r.entry_time),
            _stamp(r.exit_time),
            _exact(r.entry_price),
            _exact(r.exit_price),
            _exact(r.quantity, grouped=True),
            _money(r.commission),
            _money(r.realized_pnl),
            f"{float(r.return_pct):.2f}%",
            f"{r.holding_seconds / 86400:,.1f}",
        ]
        for r in shown.itertuples(index=False)
    ]
    note = (
        f"<p class=note>Last {TRADE_ROWS_SHOWN} of {len(ledger)} trades; all are in trades.csv.</p>"
        if len(ledger) > TRADE_ROWS_SHOWN
        else ""
    )
    if not rows:
        return "<h2>Trades (0)</h2><p class=note>No round trips: trade statistics are n/a.</p>"
    header = [
        "side",
        "entry (UTC)",
        "exit (UTC)",
        "entry price",
        "exit price",
        "quantity",
        "commission",
        "PnL",
        "return",
        "days held",
    ]
    return f"<h2>Trades ({len(ledger)})</h2>{note}" + table(header, rows, text_columns=3, scroll=True)


NOT_TABLED = {"run_id", "strategy", "symbol", *BENCHMARK_OF.values()}


def metrics_section(metrics: Mapping[str, Any], bench_name: str) -> str:
    """Every metric beside the benchmark's buy and hold where it has the same figure, then what
    each one means (the registry's definitions)."""
    rows = [
        [
            name,
            display(name, value),
            display(BENCHMARK_OF[name], metrics[BENCHMARK_OF[name]]) if BENCHMARK_OF.get(name) in metrics else "",
        ]
        for name, value in metrics.items()
        if name not in NOT_TABLED
    ]
    header = ["metric", "strategy", f"buy and hold {bench_name}"]
    rate = display("risk_free_rate", metrics.get("risk_free_rate") or 0.0)
    note = (
        "<p class=note>Equity is marked to market at every bar. Sharpe, Sortino, probabilistic Sharpe, Omega and "
        f"alpha use daily returns less a risk-free rate of {rate} a year (the strategy file's "
        "<code>backtest.risk_free_rate_pct</code>, 0 unless set). VaR and CVaR are historical, 95 %, of daily "
        "returns. The benchmark column measures the benchmark's buy and hold over the same sessions; n/a marks an "
        "undefined value.</p>"
    )
    definitions = [[name, spec(name).label, spec(name).definition] for name in metrics if name not in NOT_TABLED]
    return (
        f"<h2>Metrics</h2>{note}" + table(header, rows) + "<details><summary>What each metric means</summary>"
        f"{table(['metric', 'label', 'definition'], definitions, text_columns=3, wrap=True)}</details>"
    )


CARDS = (
    "total_return",
    "benchmark_return",
    "cagr",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "volatility",
    "alpha",
    "beta",
    "information_ratio",
    "tracking_error",
    "win_rate",
    "trade_count",
)


def tearsheet_html(
    record: RunRecord,
    metrics: Mapping[str, Any],
    ledger: pd.DataFrame,
    curve: pd.DataFrame,
    chart: bytes | None = None,
    prices: pd.DataFrame | None = None,
    benchmark: Benchmark | None = None,
) -> str:
    """One self-contained HTML page: headline figures, equity against the benchmark (linear or log),
    underwater chart and worst drawdowns, monthly and annual returns, rolling Sharpe and volatility,
    the returns histogram, price with entries and exits, every metric and the trades.

    ``prices`` (ts_event, close) and ``benchmark`` are the run's bars and what it is measured
    against; without them (a report rebuilt where the bars are gone) those charts say so.
    ``chart`` (the UI's PNG) is not used: the page draws SVG.
    """
    del chart
    if benchmark is None and prices is not None:
        benchmark = Benchmark(record.symbol, prices)
    zone = exchange_zone(record.versions)  # days and months in the series' exchange time
    returns = daily_returns(curve, zone)
    bench_returns = daily_returns(benchmark_curve(benchmark), zone) if benchmark is not None else None
    bench_name = metrics.get("benchmark") or (benchmark.symbol if benchmark is not None else record.symbol)
    annual_rf = metrics.get("risk_free_rate") or 0.0
    headline = cards(metric_cards(CARDS, metrics))
    facts = [
        ["bars", record.bar_type],
        ["data sha256", record.data_hash],
        ["versions", ", ".join(f"{k} {v}" for k, v in (record.versions or {}).items())],
    ]
    body = "".join(
        [
            headline,
            equity_section(curve, metrics, benchmark),
            drawdown_section(curve),
            returns_section(returns, bench_returns, bench_name, daily_rate(annual_rf), zone),
            price_section(prices, ledger, record.symbol),
            metrics_section(metrics, bench_name),
            trades_section(ledger),
            "<h2>Run</h2>" + table(["", ""], facts, wrap=True),  # the versions: one long line
        ]
    )
    subtitle = (
        f"{metrics.get('start')} → {metrics.get('end')}, {display('bars', metrics.get('bars'))} bars, "
        f"benchmark {bench_name}, risk-free rate {display('risk_free_rate', annual_rf)} a year"
    )
    return render_page(chart_title(record), subtitle, body, "ntrader tearsheet: one file, no scripts, opens offline.")

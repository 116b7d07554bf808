"""Sweep and walk-forward reports, in the tearsheet's style: JSON, CSV and one self-contained HTML
page each, written all-or-nothing (rendered first, then renamed into place)."""

from __future__ import annotations

import io
import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, display, label
from ntrader_pipeline.core.overfitting import dsr_meaning, sweep_figures
from ntrader_pipeline.core.reports import machine_csv, machine_values, to_jsonable, write_text
from ntrader_pipeline.core.svg_charts import Line, heatmap, time_chart
from ntrader_pipeline.core.tearsheet import cards, metric_cards, render_page, table

SWEEP_FILES = {"json": "sweep.json", "csv": "sweep.csv", "html": "sweep.html"}
WALK_FORWARD_FILES = {"json": "walk_forward.json", "html": "walk_forward.html"}


def _grid(rows: list[dict[str, Any]], parameters: list[str], metric: str) -> pd.DataFrame | None:
    """The metric as a table: first parameter down, second across (None unless exactly two)."""
    if len(parameters) != 2:
        return None
    first, second = parameters
    frame = pd.DataFrame(
        [
            {
                first: r["params"][first],
                second: r["params"][second],
                metric: np.nan if r.get(metric) is None else r[metric],
            }
            for r in rows
        ]
    )
    return (
        frame.pivot_table(index=first, columns=second, values=metric, aggfunc="first").sort_index().sort_index(axis=1)
    )


def sweep_grid_markdown(rows: list[dict[str, Any]], parameters: list[str], metric: str) -> str | None:
    """The metric over two parameters as a Markdown table (None unless exactly two parameters)."""
    grid = _grid(rows, parameters, metric)
    if grid is None:
        return None
    head = f"| {parameters[0]} \\ {parameters[1]} | " + " | ".join(str(c) for c in grid.columns) + " |"
    lines = [head, "|" + "---|" * (len(grid.columns) + 1)]
    for index, values in grid.iterrows():
        cells = ["" if not np.isfinite(v) else display(metric, float(v)) for v in values]
        lines.append(f"| {index} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_heatmap_png(rows: list[dict[str, Any]], parameters: list[str], metric: str) -> bytes | None:
    """A PNG heatmap of ``metric`` over two swept parameters, for the Dagster UI; None otherwise."""
    grid = _grid(rows, parameters, metric)
    if grid is None:
        return None
    from matplotlib.figure import Figure  # ~0.9 s to import: only when a heatmap is drawn

    figure = Figure(figsize=(1.2 + 0.6 * len(grid.columns), 1.0 + 0.45 * len(grid.index)), dpi=90)
    ax = figure.subplots()
    values = grid.to_numpy(dtype=np.float64)
    image = ax.imshow(values, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set_xlabel(parameters[1])
    ax.set_ylabel(parameters[0])
    ax.set_title(metric)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, display(metric, float(v)), ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=ax)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def sweep_table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of the sweep's table: rank, the parameters, run id and the headline
    metrics (as computed: each surface formats them)."""
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    columns = ["rank", *params, "run_id", *HEADLINE_METRICS]
    flat = [
        {"rank": r["rank"], **r["params"], "run_id": r["run_id"], **{k: r.get(k) for k in HEADLINE_METRICS}}
        for r in rows
    ]
    return columns, flat


def sweep_csv(rows: list[dict[str, Any]]) -> str:
    """``sweep.csv``: one row per set, metrics in their machine form."""
    columns, flat = sweep_table_rows(rows)
    return machine_csv(flat, columns)


def _overfitting_cards(summary: dict[str, Any]) -> list[tuple[str, str, bool]]:
    dsr, pbo = summary.get("dsr"), summary.get("pbo")
    trials = summary.get("trials_used", summary["trials"])
    return [
        (
            f"deflated Sharpe: chance the best Sharpe beats the best of {trials} trials by luck",
            "n/a" if dsr is None else f"{dsr:.1%}",
            dsr is not None and dsr < 0.95,
        ),
        ("prob. of overfitting", "n/a" if pbo is None else f"{pbo:.1%}", pbo is not None and pbo > 0.5),
        (
            "Sharpe needed by luck",
            "n/a" if summary.get("sharpe_threshold") is None else f"{summary['sharpe_threshold']:.2f}",
            False,
        ),
    ]


def sweep_html(document: dict[str, Any]) -> str:
    rows, metric, summary = document["sets"], document["metric"], document["overfitting"]
    best = rows[0]
    head = cards(
        [
            ("parameter sets", str(len(rows)), False),
            ("best set", ", ".join(f"{k}={v}" for k, v in best["params"].items()), False),
            (f"best {label(metric)}", display(metric, best.get(metric)), False),
            *_overfitting_cards(summary),
        ]
    )
    grid = _grid(rows, document["parameters"], metric)
    chart = (
        ""
        if grid is None
        else heatmap(
            "sweep-heatmap",
            f"{metric} by {document['parameters'][0]} × {document['parameters'][1]}",
            [str(i) for i in grid.index],
            [str(c) for c in grid.columns],
            grid.to_numpy(dtype=np.float64),
            fmt=lambda v: display(metric, float(v)),
            row_title=document["parameters"][0],
            col_title=document["parameters"][1],
        )
    )
    columns, flat = sweep_table_rows(rows)
    shown = [
        "rank",
        *[c for c in columns if c not in {"rank", "run_id", *HEADLINE_METRICS}],
        *dict.fromkeys([metric, "total_return", "sharpe_ratio", "max_drawdown", "trade_count", "alpha"]),
        "run_id",
    ]
    body_rows = [
        [display(c, r.get(c)) if c in HEADLINE_METRICS or c == metric else r.get(c) for c in shown] for r in flat
    ]
    undefined = "".join(
        f" {name} is n/a: {escape(reason)}."
        for name, reason in (("The DSR", summary.get("dsr_reason")), ("PBO", summary.get("pbo_reason")))
        if reason
    )
    notes = (
        "<p class=note>Deflated Sharpe ratio (Bailey & López de Prado 2014): "
        f"{dsr_meaning(summary.get('trials_used', summary['trials']))} (the trials are the sets with a defined "
        "Sharpe ratio), given the spread of the trials' Sharpe ratios and the skew and kurtosis of its daily "
        "returns; a probability, not a Sharpe ratio, and not the probability that the strategy has skill. "
        "Probability of backtest "
        "overfitting (Bailey, Borwein, López de Prado & Zhu): the share of "
        f"{summary.get('pbo_splits') or 0} in-sample/out-of-sample splits of {summary.get('pbo_blocks') or 0} "
        "blocks of days where the in-sample best set ranks in the bottom half out of sample."
        f"{undefined}</p>"
    )
    body = (
        head
        + notes
        + chart
        + f"<h2>Ranked by {metric}</h2>"
        + table([str(c) for c in shown], body_rows, text_columns=1, scroll=True)
    )
    return render_page(
        f"Sweep of {document['strategy']} on {document['symbol']}",
        f"{len(rows)} parameter sets ranked by {metric}",
        body,
        "ntrader sweep report: one file, no scripts, opens offline.",
    )


def sweep_json(document: dict[str, Any]) -> dict[str, Any]:
    """The sweep as JSON gives it (``sweep.json``, ``backtest sweep --format json``): what ran, the
    sweep-level figures once (``overfitting.sweep_figures``), then ``results``: one row per set, best
    first, metrics in their machine form."""
    head = {k: document[k] for k in ("strategy", "symbol", "metric", "parameters")}
    results = [machine_values(r) for r in document["sets"]]
    return to_jsonable({**head, **sweep_figures(document["overfitting"]), "results": results})


def write_sweep_reports(directory: Path, document: dict[str, Any], heatmap_png: bytes | None = None) -> dict[str, Path]:
    """``sweep.json`` (the document), ``sweep.csv`` (one row per set) and ``sweep.html``."""
    del heatmap_png  # the HTML draws its own SVG heatmap; the PNG is for the UI
    texts = {
        "json": json.dumps(sweep_json(document), indent=2) + "\n",
        "csv": sweep_csv(document["sets"]),
        "html": sweep_html(document),
    }
    return {kind: write_text(Path(directory) / SWEEP_FILES[kind], text) for kind, text in texts.items()}


def walk_forward_html(document: dict[str, Any], curve: pd.DataFrame) -> str:
    figures = ("total_return", "benchmark_return", "cagr", "sharpe_ratio", "max_drawdown", "trade_count")
    head = cards(
        [("windows", str(len(document["windows"])), False)]
        + metric_cards(figures, document["stitched"], suffix=" (OOS)")
    )
    x = pd.DatetimeIndex(pd.to_datetime(curve["timestamp"], utc=True)).as_unit("ns").asi8
    chart = time_chart(
        "oos-equity",
        "Stitched out-of-sample equity",
        [Line("out of sample", x, curve["equity"].to_numpy(dtype=np.float64))],
        y_format="{:,.0f}".format,
    )
    metric = document["metric"]
    rows = [
        [
            w["out_of_sample"][0],
            w["out_of_sample"][1],
            ", ".join(f"{k}={v}" for k, v in w["params"].items()),
            f"{w['in_sample'][0]} → {w['in_sample'][1]}",
            display(metric, w["in_sample_metrics"].get(metric)),
            display(metric, w["out_of_sample_metrics"].get(metric)),
            display("total_return", w["out_of_sample_metrics"].get("total_return")),
        ]
        for w in document["windows"]
    ]
    windows = table(
        ["OOS from", "OOS to", "chosen parameters", "in sample", f"IS {metric}", f"OOS {metric}", "OOS return"],
        rows,
        text_columns=4,
    )
    note = (
        "<p class=note>In each window the parameter set with the best in-sample "
        f"{metric} is run on the following out-of-sample sessions only; each out-of-sample run starts with the "
        "previous one's final equity in cash.</p>"
    )
    return render_page(
        f"Walk-forward of {document['strategy']} on {document['symbol']}",
        f"run {document['run_id']}, {len(document['windows'])} windows, picked by {metric}",
        head + note + chart + "<h2>Windows</h2>" + windows,
        "ntrader walk-forward report: one file, no scripts, opens offline.",
    )


def walk_forward_json(document: dict[str, Any]) -> str:
    """The walk-forward document with every metric in its machine form (the windows' too)."""
    windows = [
        {
            **w,
            "in_sample_metrics": machine_values(w["in_sample_metrics"]),
            "out_of_sample_metrics": machine_values(w["out_of_sample_metrics"]),
        }
        for w in document["windows"]
    ]
    machine = {**document, "windows": windows, "stitched": machine_values(document["stitched"])}
    return json.dumps(to_jsonable(machine), indent=2) + "\n"


def write_walk_forward_reports(directory: Path, document: dict[str, Any], curve: pd.DataFrame) -> dict[str, Path]:
    """``walk_forward.json`` (the document) and ``walk_forward.html``."""
    texts = {"json": walk_forward_json(document), "html": walk_forward_html(document, curve)}
    return {kind: write_text(Path(directory) / WALK_FORWARD_FILES[kind], text) for kind, text in texts.items()}

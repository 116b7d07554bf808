"""What the commands that run backtests print when they finish: the headline figures beside the
benchmark's, any risk control that fired (when, which, and how long the strategy was then flat),
warnings, and the page to open. Names are never cut: columns that hold one fold instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from ntrader_pipeline.cli.common import console, open_warehouse
from ntrader_pipeline.core.metric_registry import SUMMARY_METRICS, display, label
from ntrader_pipeline.core.run_summary import headline_rows, risk_lines, summary_line


def say(text: str) -> None:
    """A line printed as written: no markup (a set name is ``sma[fast_period=10]``), never broken
    inside (a path stays one line to copy)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def risk_notes(run_id: str) -> list[str]:
    """``core.run_summary.risk_lines`` of a stored run."""
    warehouse = open_warehouse()
    record = warehouse.get_run(run_id)
    if record is None or not record.risk_events:
        return []
    return risk_lines(record, (t["entry_time"] for t in warehouse.get_trades(run_id)))


def print_run(metrics: Mapping[str, Any], tearsheet: str, warnings: Sequence[str] = ()) -> None:
    """One run: the summary line, its headline figures beside the benchmark's, its risk events and
    warnings, and its tearsheet."""
    say(summary_line(metrics))
    # no vertical rules: a block of figures, not one of the command's tables of runs
    table = Table(box=box.SIMPLE)
    table.add_column("")
    table.add_column("strategy", justify="right")
    table.add_column(f"buy and hold {metrics.get('benchmark')}", justify="right")
    for name, value, bench in headline_rows(metrics):
        table.add_row(name, value, bench)
    console.print(table)
    for line in [*risk_notes(str(metrics["run_id"])), *warnings]:
        say(line)
    say(f"tearsheet: {tearsheet}")


def summary_table(
    title: str, keys: Sequence[str], rows: Iterable[tuple[Sequence[str], Mapping[str, Any] | None, str]]
) -> Table:
    """A table of runs: the ``keys`` columns, the run id, the registry's summary figures and an error
    column; each row is (key cells, metrics or None, error). In a narrow terminal cells fold onto
    more lines, never cut."""
    table = Table(title=title)
    for key in keys:
        table.add_column(key, overflow="fold")
    table.add_column("run id", overflow="fold")
    for name in SUMMARY_METRICS:
        table.add_column(label(name), justify="right", overflow="fold")
    table.add_column("error", overflow="fold")
    for key_cells, metrics, error in rows:
        cells = [escape(c) for c in key_cells]  # a set's name ("sma[fast_period=10]") is not a style tag
        if metrics is None:
            table.add_row(*cells, "", *[""] * len(SUMMARY_METRICS), escape(error))
        else:
            table.add_row(*cells, str(metrics["run_id"]), *(display(n, metrics.get(n)) for n in SUMMARY_METRICS), "")
    return table

"""The commands that run backtests say what happened, driven as a user drives them: the headline
figures beside the benchmark's, a risk halt with when, which control and how long the strategy was
then flat, and the page to open; ``list-results`` never cuts a sweep set's name, in a wide or a
narrow terminal (a real ``ntrader`` process with ``COLUMNS`` set).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, SUMMARY_METRICS, display, label
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, point_settings_at

HALTING = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
backtest:
  risk: {max_drawdown_pct: 40}
"""
# 4 × 4 sets whose names share their first 25 characters: a cut name made them all look alike
SWEEP = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
backtest: {start: 2003-01-01, end: 2006-12-31}
sweep:
  grid: {fast_period: [5, 8, 10, 12], slow_period: [20, 30, 40, 50]}
walk_forward: {in_sample: 300, out_of_sample: 200}
"""


def ntrader(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return done.stdout


def lines_of(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("outcome")
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, folder / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(folder / "state" / "dagster"))
        monkeypatch.delenv("COLUMNS", raising=False)
        ntrader("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
        yield folder
    Warehouse.open.cache_clear()


def test_a_run_prints_its_headline_figures_beside_the_benchmark_and_its_tearsheet(home):
    out = ntrader("backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL")
    run_id = out.strip().splitlines()[-1]
    m = Warehouse.open(get_settings().resolved_warehouse_url).get_metrics(run_id)
    lines = lines_of(out)
    assert lines[0] == (
        f"run {run_id}: sma_crossover on ORCL, 1995-01-03 → 2014-12-31, total return "
        f"{display('total_return', m['total_return'])}, {display('trade_count', m['trade_count'])} trades"
    )
    assert "strategy buy and hold ORCL" in lines
    for name in HEADLINE_METRICS:
        if name == "benchmark_return":
            continue
        row = next(line for line in lines if line.startswith(label(name) + " "))
        assert display(name, m[name]) in row, name
    total = next(line for line in lines if line.startswith("total return "))
    sharpe = next(line for line in lines if line.startswith("Sharpe "))
    assert total.endswith(display("benchmark_return", m["benchmark_return"]))
    assert sharpe.endswith(display("benchmark_sharpe_ratio", m["benchmark_sharpe_ratio"]))
    assert not any(line.startswith("risk control") for line in lines)
    (tearsheet,) = [line.removeprefix("tearsheet: ") for line in out.splitlines() if line.startswith("tearsheet: ")]
    assert Path(tearsheet).is_file() and Path(tearsheet).parent.name == run_id


def test_a_risk_halt_says_when_which_control_and_how_long_the_strategy_was_then_flat(home):
    spec = home / "halting.yaml"
    spec.write_text(HALTING)
    out = ntrader("backtest", "run-config", str(spec), "--symbol", "ORCL")
    run_id = out.strip().splitlines()[-1]
    warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
    record = warehouse.get_run(run_id)
    (halt,) = [e for e in record.risk_events if e["control"] == "max_drawdown_pct"]
    at = datetime.fromisoformat(halt["time"])
    last = record.end.astimezone(UTC)
    years = (last - at).total_seconds() / 86400 / 365.25
    share = (last - at) / (last - record.start.astimezone(UTC))
    assert at.year in (2000, 2001) and years > 13  # the case: halted then, flat for the rest
    assert all(
        datetime.fromisoformat(str(t["entry_time"])).replace(tzinfo=UTC) < at for t in warehouse.get_trades(run_id)
    )
    line = next(line for line in out.splitlines() if line.startswith("risk control "))
    assert line.startswith(f"risk control max_drawdown_pct at {at:%Y-%m-%d %H:%M} UTC: flattened and halted; equity ")
    assert line.endswith(
        f"; then flat until the last bar ({last:%Y-%m-%d}): {years:.1f} years, {share:.0%} of the run"
    ), line
    assert "\n" not in line and re.search(r"tearsheet: .+/tearsheet\.html\n" + run_id, out)


def test_sweep_and_walk_forward_say_where_their_pages_are(home):
    spec = home / "many_long_named_sets.yaml"
    spec.write_text(SWEEP)
    out = ntrader("backtest", "sweep", str(spec), "--symbol", "ORCL")
    (report,) = [line.removeprefix("report: ") for line in out.splitlines() if line.startswith("report: ")]
    assert report.endswith("sweep.html") and Path(report).is_file()
    header = header_cells(out)
    assert header[:3] == ["#", "fast_period", "slow_period"] and header[-1] == "run id"
    assert header[3:-1] == [label(n) for n in SUMMARY_METRICS[2:3] + SUMMARY_METRICS[:2] + SUMMARY_METRICS[3:]]
    wf = ntrader("backtest", "walk-forward", str(spec), "--symbol", "ORCL")
    wf_id = wf.strip().splitlines()[-1]
    pages = {
        line.split(": ", 1)[0]: line.split(": ", 1)[1]
        for line in wf.splitlines()
        if line.startswith(("report: ", "tearsheet: "))
    }
    assert pages["report"].endswith("walk_forward.html") and Path(pages["report"]).is_file()
    assert Path(pages["tearsheet"]).is_file() and Path(pages["tearsheet"]).parent.name == wf_id
    assert "strategy buy and hold ORCL" in lines_of(wf)


def header_cells(text: str) -> list[str]:
    """The header of the first Rich table in ``text``, each cell's lines joined by a space."""
    cells: list[str] = []
    for line in text.splitlines():
        if "┃" in line:
            parts = [c.strip() for c in line.strip().strip("┃").split("┃")]
            cells = [" ".join(filter(None, pair)) for pair in zip(cells or [""] * len(parts), parts, strict=True)]
        elif cells:
            return cells
    return cells


def table_rows(text: str) -> list[list[str]]:
    """Rows of a Rich table, each cell's wrapped lines joined without spaces (folded or wrapped)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
    return [[cell.replace(" ", "") for cell in row] for row in rows]


@pytest.mark.slow  # CLI runs in fresh processes
@pytest.mark.parametrize("columns", [200, 80])
def test_list_results_never_cuts_a_sweep_sets_name(home, columns):
    """Its own process, as a terminal of this width shows it."""
    spec = home / "many_long_named_sets.yaml"
    if not spec.exists():
        spec.write_text(SWEEP)
        ntrader("backtest", "sweep", str(spec), "--symbol", "ORCL")
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", "backtest", "list-results"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= columns
    assert "…" not in done.stdout
    header = [cell.replace(" ", "") for cell in header_cells(done.stdout)]  # a narrow header folds too
    assert header[:4] == ["runid", "strategy", "parameters", "symbol"]
    names = [f"{row[1]}[{row[2]}]" if row[2] else row[1] for row in table_rows(done.stdout)]
    sets = [n for n in names if n.startswith("many_long_named_sets[fast_period=")]  # not the walk-forward run
    assert len(sets) == len(set(sets)) == 16
    assert "many_long_named_sets[fast_period=12,slow_period=50]" in sets


def test_backfill_prints_the_summary_figures_and_where_each_tearsheet_is(home):
    out = ntrader("backtest", "backfill", "--strategy", "sma_crossover", "--symbol", "ORCL", "--jobs", "1")
    assert header_cells(out) == ["strategy", "symbol", "run id", *map(label, SUMMARY_METRICS), "error"]
    (row,) = table_rows(out)
    m = Warehouse.open(get_settings().resolved_warehouse_url).get_metrics(row[2])
    assert row[3:-1] == [display(n, m[n]).replace(" ", "") for n in SUMMARY_METRICS]
    (pattern,) = [line for line in out.splitlines() if line.startswith("tearsheet of each run: ")]
    example = pattern.split("(e.g. ", 1)[1].rstrip(")")
    assert Path(example).is_file() and Path(example).parent.name == row[2]

"""The Python API as a notebook uses it: a home where bars were imported with the CLI, backtests,
a sweep and a walk-forward run through the API (real Dagster jobs on the home's instance, the
real engine), and what it reads back checked against the CLI, the reports on disk, the raw bar
files and empyrical."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ntrader_pipeline import api
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, machine
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY, point_settings_at

AGAINST_NVDA = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
benchmark: NVDA
backtest: {start: 2000-01-01, end: 2004-12-31}
"""
GRID = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
backtest: {start: 2004-01-01, end: 2006-12-31}
sweep:
  grid: {fast_period: [5, 10], slow_period: [20, 40]}
  constraints: ["fast_period < slow_period"]
walk_forward: {in_sample: 300, out_of_sample: 200}
"""


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args))


def use_home(monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    """Settings and the Dagster instance as a user's shell in that folder would have them."""
    point_settings_at(monkeypatch, state)
    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster"))


@dataclass
class Made:
    folder: Path
    state: Path
    orcl: str  # sma_crossover on ORCL 1995-1999, against ORCL
    against_nvda: str  # the same strategy on ORCL 2000-2004, against NVDA


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Iterator[Made]:
    folder = tmp_path_factory.mktemp("api_home")
    state = folder / "state"
    (folder / "against_nvda.yaml").write_text(AGAINST_NVDA)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_home(monkeypatch, state)
        for file, symbol in ((ORCL_DAILY, "ORCL"), (NVDA_DAILY, "NVDA")):
            done = ntrader("data", "import-csv", "--file", str(file), "--symbol", symbol)
            assert done.exit_code == 0, done.output
        nt = api.open()
        orcl = nt.backtest("sma_crossover", "ORCL", end="1999-12-31")
        against = nt.backtest(folder / "against_nvda.yaml", "ORCL")
        yield Made(folder, state, orcl.run_id, against.run_id)
    Warehouse.open.cache_clear()


@pytest.fixture
def nt(made, monkeypatch) -> api.Home:
    use_home(monkeypatch, made.state)
    return api.open()


def test_open_finds_the_clis_folder_or_the_one_given(made, nt, monkeypatch, tmp_path):
    assert nt.path == made.state.resolve()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "another" / "dagster"))  # as a folder opened before leaves it
    given = api.open(made.state)
    assert given.path == made.state.resolve()
    assert given.settings.resolved_dagster_home == made.state.resolve() / "dagster"
    assert set(given.results().index) == set(nt.results().index)
    with pytest.raises(FileNotFoundError, match="no state folder at "):
        api.open(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_results_are_list_results_as_a_dataframe(made, nt):
    listed = json.loads(ntrader("backtest", "list-results", "--format", "json").output)
    results = nt.results()
    assert list(results.index) == [row["run_id"] for row in listed]  # the same runs, in the same order
    assert results.index.name == "run_id" and {made.orcl, made.against_nvda} <= set(results.index)
    assert str(results["trade_count"].dtype) == "Int64" and str(results["created_at"].dtype) == "datetime64[ns, UTC]"
    for row in listed:
        ours = results.loc[row["run_id"]]
        assert (ours["strategy"], ours["symbol"]) == (row["strategy"], row["symbol"])
        assert ours["start"] == pd.Timestamp(row["start"])
        for name in HEADLINE_METRICS:
            theirs = row[name]
            assert (pd.isna(ours[name]) and theirs is None) or ours[name] == theirs, name
    assert list(nt.results(strategy="against_nvda").index) == [made.against_nvda]
    assert nt.results(symbol="NVDA").empty
    by_return = nt.results(sort="return")["total_return"].tolist()
    assert by_return == sorted(by_return, reverse=True)


def test_a_runs_equity_trades_and_metrics_are_what_its_reports_hold(made, nt):
    run = nt.run(made.orcl)
    assert (run.strategy, run.symbol) == ("sma_crossover", "ORCL") and made.orcl in repr(run)
    folder = Path(run.report_dir)
    stated = json.loads((folder / "metrics.json").read_text())
    assert {name: machine(name, value) for name, value in run.metrics.items()} == {
        name: value for name, value in stated.items() if name in run.metrics
    }
    assert type(run.metrics["trade_count"]) is int

    equity_csv = pd.read_csv(folder / "equity.csv")
    assert str(run.equity.index.dtype) == "datetime64[ns, UTC]" and run.equity.name == "equity"
    assert list(run.equity.index) == list(pd.to_datetime(equity_csv["timestamp"], utc=True))
    np.testing.assert_allclose(run.equity.to_numpy(), equity_csv["equity"].to_numpy(), rtol=0, atol=0.0051)
    np.testing.assert_allclose(run.drawdown.to_numpy(), equity_csv["drawdown"].to_numpy(), rtol=0, atol=1e-10)

    trades_csv = pd.read_csv(folder / "trades.csv", float_precision="round_trip")
    assert len(run.trades) == run.metrics["trade_count"] == len(trades_csv) > 0
    assert list(run.trades.columns) == list(trades_csv.columns)
    for column in ("entry_price", "exit_price", "quantity", "commission", "realized_pnl"):
        assert run.trades[column].dtype == np.float64
        assert run.trades[column].tolist() == trades_csv[column].tolist(), column  # the exact text, as floats
    assert run.trades["realized_pnl"].gt(0).mean() == pytest.approx(run.metrics["win_rate"], rel=1e-12)


def read_returns(path: Path) -> pd.DataFrame:
    """returns.csv as a user reads it (floats parsed exactly)."""
    return pd.read_csv(path, index_col="date", parse_dates=True, float_precision="round_trip")


def independent_returns(folder: Path, bars: Path) -> pd.DataFrame:
    """Daily returns from the run's equity.csv and from the raw bar file's closes, computed here
    without the project's code: each New York session's last equity, and the close of each file
    row between the run's first and last session."""
    equity = pd.read_csv(folder / "equity.csv")
    day = pd.to_datetime(equity["timestamp"], utc=True).dt.tz_convert("America/New_York").dt.tz_localize(None)
    by_day = equity.groupby(day.dt.normalize())["equity"].last()
    closes = pd.read_csv(bars, index_col="Date", parse_dates=True)["Close"]
    closes = closes[(closes.index >= by_day.index[0]) & (closes.index <= by_day.index[-1])]
    return pd.DataFrame({"strategy": by_day.pct_change(), "benchmark": closes.pct_change()}).iloc[1:]


@pytest.mark.parametrize(("which", "bars"), [("orcl", ORCL_DAILY), ("against_nvda", NVDA_DAILY)])
def test_returns_csv_holds_the_daily_returns_the_metrics_were_computed_from(made, nt, which, bars):
    run = nt.run(getattr(made, which))
    folder = Path(run.report_dir)
    text = (folder / "returns.csv").read_text()
    assert text.splitlines()[0] == "date,strategy,benchmark"
    written = read_returns(folder / "returns.csv")
    assert run.metrics["benchmark"] == ("NVDA" if which == "against_nvda" else "ORCL")

    expected = independent_returns(folder, bars)
    assert list(written.index) == list(expected.index) and len(written) == run.metrics["daily_returns"]
    np.testing.assert_allclose(written["strategy"], expected["strategy"], rtol=0, atol=1e-6)  # equity.csv: cents
    np.testing.assert_allclose(written["benchmark"], expected["benchmark"], rtol=1e-12, atol=0)

    # the file holds the very floats of the API, and empyrical finds the run's own figures in them
    assert list(run.returns.columns) == ["strategy", "benchmark"] and run.returns.index.name == "date"
    assert list(run.returns.index) == list(written.index)
    assert np.array_equal(run.returns.to_numpy(), written.to_numpy(), equal_nan=True)
    assert empyrical.sharpe_ratio(written["strategy"]) == pytest.approx(run.metrics["sharpe_ratio"], rel=1e-12)
    assert empyrical.beta(written["strategy"], written["benchmark"]) == pytest.approx(run.metrics["beta"], rel=1e-9)
    assert empyrical.alpha(written["strategy"], written["benchmark"]) == pytest.approx(run.metrics["alpha"], rel=1e-9)
    assert (1 + written["benchmark"]).prod() - 1 == pytest.approx(run.metrics["benchmark_return"], rel=1e-9)


def test_export_all_rebuilds_returns_csv_when_the_reports_folder_is_gone(made, nt, monkeypatch, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(made.state, copy)
    use_home(monkeypatch, copy)
    run_id = made.against_nvda
    original = (copy / "reports" / run_id / "returns.csv").read_text()
    shutil.rmtree(copy / "reports")
    done = ntrader("report", "export-all", run_id, "--output-dir", str(tmp_path / "out"))
    assert done.exit_code == 0, done.output
    assert "warning" not in done.output
    assert (tmp_path / "out" / "returns.csv").read_text() == original
    generated = ntrader("report", "generate", "--backtest-id", run_id, "--format", "returns")
    assert generated.exit_code == 0 and generated.stdout == original


def test_a_benchmark_whose_bars_changed_since_is_left_empty_and_said_so(made, monkeypatch, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(made.state, copy)
    use_home(monkeypatch, copy)
    run_id = made.against_nvda
    before = api.open().run(run_id).returns
    # the vendor corrects one NVDA close inside the run's span: re-importing replaces the stored bars
    lines = NVDA_DAILY.read_text().splitlines()
    (row,) = [i for i, line in enumerate(lines) if line.startswith("2002-06-03,")]
    date, open_, high, low, _close, *rest = lines[row].split(",")
    lines[row] = ",".join([date, open_, high, low, open_, *rest])
    corrected = tmp_path / "NVDA_corrected.csv"
    corrected.write_text("\n".join(lines) + "\n")
    done = ntrader("data", "import-csv", "--file", str(corrected), "--symbol", "NVDA")
    assert done.exit_code == 0, done.output

    exported = ntrader("report", "export-all", run_id, "--output-dir", str(tmp_path / "out"))
    assert exported.exit_code == 0, exported.output
    assert exported.stderr.startswith(f"warning: run {run_id}: the benchmark column of returns.csv is empty: ")
    assert "NVDA bars are not those the run was measured against" in exported.stderr
    written = read_returns(tmp_path / "out" / "returns.csv")
    assert written["benchmark"].isna().all() and written["strategy"].tolist() == before["strategy"].tolist()

    with pytest.warns(api.BenchmarkWarning, match="NVDA bars are not those the run was measured against"):
        after = api.open().run(run_id).returns
    assert after["benchmark"].isna().all() and after["strategy"].equals(before["strategy"])


def test_the_api_refuses_what_the_cli_refuses(nt):
    with pytest.raises(LookupError, match="no backtest run with id 'nope'"):
        nt.run("nope")
    with pytest.raises(ValueError, match="'2005-13-01' is not a date"):
        nt.backtest("sma_crossover", "ORCL", start="2005-13-01")
    from ntrader_pipeline.pipeline import PipelineError

    with pytest.raises(PipelineError, match="unknown strategy 'nope'"):
        nt.backtest("nope", "ORCL")
    with pytest.raises(PipelineError, match="unknown strategy 'nope'"):
        nt.sweep("nope", "ORCL")
    with pytest.raises(PipelineError, match="no bars imported for AAPL"):
        nt.backtest("sma_crossover", "AAPL")


def test_a_sweep_and_a_walk_forward_run_as_dagster_jobs_and_read_back(made, nt):
    spec = made.folder / "sma_grid.yaml"
    spec.write_text(GRID)
    sweep = nt.sweep(spec, "ORCL")
    assert (sweep.strategy, sweep.symbol, sweep.metric) == ("sma_grid", "ORCL", "sharpe_ratio")
    sets = sweep.sets
    assert list(sets.index) == [1, 2, 3, 4] and sets.index.name == "rank"
    assert sorted(zip(sets["fast_period"], sets["slow_period"], strict=True)) == [(5, 20), (5, 40), (10, 20), (10, 40)]
    assert sets["sharpe_ratio"].is_monotonic_decreasing and str(sets["trade_count"].dtype) == "Int64"
    assert sweep.overfitting["trials"] == 4
    report = json.loads((nt.settings.resolved_reports_dir / "research" / "sma_grid__ORCL" / "sweep.json").read_text())
    assert sweep.overfitting == {k: v for k, v in report.items() if k in sweep.overfitting}  # sweep.json's figures
    assert set(sweep.overfitting) >= {"deflated_sharpe", "pbo", "trials_used", "undefined"}
    best = sweep.best
    assert best.strategy == sets.loc[1, "key"] and best.metrics["sharpe_ratio"] == pytest.approx(
        sets.loc[1, "sharpe_ratio"], abs=1e-10
    )
    assert empyrical.sharpe_ratio(best.returns["strategy"]) == pytest.approx(best.metrics["sharpe_ratio"], rel=1e-12)

    wf = nt.walk_forward(spec, "ORCL")
    assert len(wf.windows) == 3 and (wf.windows["in_end"] < wf.windows["out_start"]).all()
    assert set(wf.windows["key"]) <= set(sets["key"]) and "in_sample_sharpe_ratio" in wf.windows
    stitched = wf.run
    assert stitched.strategy == "sma_grid[walk-forward]"
    assert stitched.returns.index[0] > wf.windows["out_start"].iloc[0]  # the second session traded
    assert empyrical.sharpe_ratio(stitched.returns["strategy"]) == pytest.approx(
        stitched.metrics["sharpe_ratio"], rel=1e-12
    )
    assert not stitched.returns["benchmark"].isna().any()

    # the runs are the home's Dagster runs, as if launched from the UI or the CLI
    runs = nt.pipeline().instance.get_runs()
    jobs = [r.job_name for r in runs]
    assert {"backtest_job", "sweep_job", "walk_forward_job"} <= set(jobs)
    assert all(r.is_success for r in runs if r.job_name in ("sweep_job", "walk_forward_job"))


def test_reading_a_runs_metrics_and_equity_needs_neither_dagster_nor_the_engine(made):
    code = f"from ntrader_pipeline import api\nrun = api.open({str(made.state)!r}).run({made.orcl!r})\n"
    probe = f"{code}run.metrics, run.equity, run.trades\nimport sys\nprint(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    loaded = {name.split(".")[0] for name in ast.literal_eval(done.stdout.strip().splitlines()[-1])}
    assert not loaded & {"dagster", "nautilus_trader"}

"""Exported reports: every metric recomputed independently from equity.csv and trades.csv, exact
decimals in CSV, ISO-8601 and exact decimals in JSON, sensible zero-trade reports, loud write failures."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal

import empyrical
import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import LEDGER_COLUMNS, trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, equity_curve
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.reports import REPORT_FILES, ReportWriteError, render, write_reports
from ntrader_pipeline.core.strategy_specs import load_spec, parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS

END = date(1997, 12, 31)  # the SMA crossover is flat again by then: every fill is in a round trip


def record_for(result) -> RunRecord:
    return RunRecord.of_result(result)


def export(result, directory):
    ledger = trade_ledger(result.fills)
    metrics = compute_metrics(result, ledger)
    write_reports(directory, record_for(result), metrics, ledger, equity_curve(result))
    return metrics


@pytest.fixture(scope="module")
def orcl_series():
    return read_bar_csv(ORCL_DAILY, "ORCL")


@pytest.fixture(scope="module")
def orcl_export(orcl_series, tmp_path_factory):
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    result = run_backtest(orcl_series, spec, "XNAS", "orcl95", None, END)
    directory = tmp_path_factory.mktemp("orcl_reports")
    export(result, directory)
    return result, directory


def close(a, b) -> bool:
    # equity.csv is written to the cent and metrics.json to 10 decimals: figures recomputed from the
    # files agree with the stated ones to about a cent in 100,000 (1e-7), not to float precision.
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-8)


def test_every_metric_recomputed_from_the_exported_files_agrees(orcl_export):
    result, directory = orcl_export
    stated = json.loads((directory / "metrics.json").read_text())
    equity = pd.read_csv(directory / "equity.csv")
    trades = pd.read_csv(directory / "trades.csv", dtype=str)
    prices = pd.read_csv(ORCL_DAILY)  # the source file, for the buy-and-hold benchmark
    assert result.equity["position"].iloc[-1] == 0 and len(trades) >= 5

    stamps = pd.to_datetime(equity["timestamp"])
    e = equity["equity"]
    running_max = e.cummax()
    dd = e / running_max - 1
    assert np.allclose(dd, equity["drawdown"], rtol=0, atol=2e-7)
    last_per_day = e.groupby(stamps.dt.tz_convert("America/New_York").dt.date).last()
    r = last_per_day.pct_change().dropna()
    r.index = pd.to_datetime(r.index).tz_localize("UTC")
    total = e.iloc[-1] / e.iloc[0] - 1
    cagr = (1 + total) ** (252 / len(r)) - 1
    trough = int(dd.idxmin())
    peak = int(e.iloc[: trough + 1].idxmax())
    back = e.index[(e.index > trough) & (e >= e.iloc[peak])]
    pnl = trades["realized_pnl"].map(Decimal).astype(float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    in_market = np.zeros(len(stamps), dtype=bool)
    for entry, exit_ in zip(pd.to_datetime(trades["entry_time"]), pd.to_datetime(trades["exit_time"]), strict=True):
        in_market |= ((stamps >= entry) & (stamps < exit_)).to_numpy()  # filled at the close: out at the exit bar
    window = prices[pd.to_datetime(prices["Date"]) <= pd.Timestamp(END)]

    expected = {
        "total_return": total,
        "cagr": cagr,
        "volatility": empyrical.annual_volatility(r),
        "sharpe_ratio": empyrical.sharpe_ratio(r),
        "sortino_ratio": empyrical.sortino_ratio(r),
        "calmar_ratio": cagr / abs(dd.min()),
        "max_drawdown": dd.min(),
        "max_drawdown_peak": stamps[peak].isoformat(),
        "max_drawdown_trough": stamps[trough].isoformat(),
        "max_drawdown_recovery": stamps[back[0]].isoformat() if len(back) else None,
        "max_drawdown_daily": empyrical.max_drawdown(r),
        "profit_factor": wins.sum() / -losses.sum(),
        "win_rate": len(wins) / len(pnl),
        "expectancy": pnl.mean(),
        "average_win": wins.mean(),
        "average_loss": losses.mean(),
        "largest_win": wins.max(),
        "largest_loss": losses.min(),
        "trade_count": len(trades),
        "commissions": trades["commission"].map(Decimal).sum(),
        "exposure": in_market.mean(),
        "benchmark_return": window["Close"].iloc[-1] / window["Close"].iloc[0] - 1,
        "start": stamps.iloc[0].isoformat(),
        "end": stamps.iloc[-1].isoformat(),
    }
    # empyrical is an independent implementation; check it agrees with the plain formulas too
    assert math.isclose(expected["sharpe_ratio"], r.mean() / r.std(ddof=1) * math.sqrt(252), rel_tol=1e-12)
    assert math.isclose(
        expected["sortino_ratio"], r.mean() / math.sqrt((np.minimum(r, 0) ** 2).mean()) * math.sqrt(252), rel_tol=1e-12
    )
    for name, value in expected.items():
        got = stated[name]
        if isinstance(value, str) or value is None:
            assert got == value, name
        else:
            assert got is not None and close(float(got), float(value)), (name, got, value)
    assert len(equity) == result.bar_count


def test_csv_keeps_exact_price_decimals_and_json_is_iso_and_exact(orcl_export):
    result, directory = orcl_export
    trades_text = (directory / "trades.csv").read_text()
    header, *rows = trades_text.splitlines()
    assert header.split(",") == LEDGER_COLUMNS
    source_closes = set(pd.read_csv(ORCL_DAILY, dtype=str)["Close"])
    trades = pd.read_csv(directory / "trades.csv", dtype=str)
    # single-fill trips fill at a bar close: the exported price is the source file's text, digit for digit
    assert set(trades["exit_price"]) <= {c.rstrip("0").rstrip(".") for c in source_closes}
    assert all("e" not in v.lower() for v in trades["entry_price"]) and any(
        len(v.split(".")[-1]) == 6 for v in trades["exit_price"]
    )
    ledger = trade_ledger(result.fills)
    assert [Decimal(v) for v in trades["realized_pnl"]] == list(ledger["realized_pnl"])
    assert trades["entry_time"].iloc[0] == ledger["entry_time"].iloc[0].isoformat()
    assert trades["entry_time"].iloc[0].endswith("+00:00")

    document = json.loads((directory / "metrics.json").read_text())
    for key in ("start", "end", "max_drawdown_peak", "max_drawdown_trough"):
        assert pd.Timestamp(document[key]).tzinfo is not None and document[key].endswith("+00:00"), key
    assert document["config"]["backtest"]["starting_balance"] == "100000"  # a Decimal, as exact text
    required = {
        "run_id",
        "strategy",
        "symbol",
        "start",
        "end",
        "total_return",
        "cagr",
        "volatility",
        "sharpe_ratio",
        "sortino_ratio",
        "calmar_ratio",
        "max_drawdown",
        "max_drawdown_peak",
        "max_drawdown_trough",
        "max_drawdown_recovery",
        "profit_factor",
        "win_rate",
        "expectancy",
        "trade_count",
        "commissions",
        "exposure",
        "benchmark_return",
    }
    assert required <= set(document)
    assert document["data"]["sha256"] == result.data_hash
    equity_lines = (directory / "equity.csv").read_text().splitlines()
    assert equity_lines[0] == "timestamp,equity,drawdown"
    assert equity_lines[1].startswith("1995-01-03T21:00:00+00:00,")
    assert sorted(p.name for p in directory.iterdir()) == sorted(REPORT_FILES.values())


def test_a_run_without_trades_reports_undefined_values_as_null_and_na(orcl_series, tmp_path):
    spec = parse_spec("slow", {"strategy": "sma_crossover", "config": {"fast_period": 10, "slow_period": 30}}, "test")
    result = run_backtest(orcl_series, spec, "XNAS", "quiet", date(1995, 1, 1), date(1995, 2, 10))
    metrics = export(result, tmp_path)
    assert metrics["trade_count"] == 0 and metrics["exposure"] == 0.0 and metrics["total_return"] == 0.0
    document = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "sharpe_ratio",
        "sortino_ratio",
        "calmar_ratio",
        "win_rate",
        "profit_factor",
        "expectancy",
        "max_drawdown_peak",
        "max_drawdown_recovery",
    ):
        assert document[key] is None, key
    assert document["max_drawdown"] == 0.0 and document["volatility"] == 0.0
    assert (tmp_path / "trades.csv").read_text().strip() == ",".join(LEDGER_COLUMNS)
    assert len(pd.read_csv(tmp_path / "equity.csv")) == result.bar_count
    text = (tmp_path / "report.txt").read_text()
    assert "sharpe_ratio" in text and "n/a" in text and "No round trips" in text
    for name in REPORT_FILES.values():
        content = (tmp_path / name).read_text()
        assert "NaN" not in content and "inf" not in content.lower().replace("info", ""), name
    assert "n/a" in (tmp_path / "tearsheet.html").read_text()


def test_a_failed_write_names_the_file_and_leaves_no_partial_report(orcl_export, tmp_path):
    result, _ = orcl_export
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the report folder should be")
    with pytest.raises(ReportWriteError, match="cannot write .*taken/report.txt"):
        export(result, blocker)
    assert blocker.read_text().startswith("a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_numbers_people_read_carry_no_float_noise_and_no_cut_timestamps(orcl_export):
    result, directory = orcl_export
    equity_lines = (directory / "equity.csv").read_text().splitlines()[1:]
    assert all(re.fullmatch(r"-?\d+\.\d{2}", line.split(",")[1]) for line in equity_lines)
    document = json.loads((directory / "metrics.json").read_text())
    for name in ("starting_equity", "final_equity", "commissions", "expectancy", "largest_win"):
        assert re.fullmatch(r"-?\d+\.\d{2}", document[name]), (name, document[name])
    floats = {k: v for k, v in document.items() if isinstance(v, float)}
    assert floats and all(round(v, 10) == v for v in floats.values())
    text = (directory / "report.txt").read_text()
    assert "…" not in text
    ledger = trade_ledger(result.fills)
    for stamp in ledger.tail(20)["exit_time"]:
        assert stamp.isoformat() in text


def test_a_name_with_brackets_is_printed_as_written(orcl_export):
    result, _ = orcl_export
    ledger = trade_ledger(result.fills)
    record = replace(record_for(result), strategy="sma[fast_period=10,slow_period=30]")
    text = render("text", record, compute_metrics(result, ledger), ledger, equity_curve(result))
    assert "sma[fast_period=10,slow_period=30] on ORCL" in text

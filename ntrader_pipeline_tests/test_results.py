"""Stored results on SQLite and Postgres: a run read back whole is the run that was saved."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.results import UnknownRunError, load_run
from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, equity_curve
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.reports import render
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS


@pytest.fixture(scope="module")
def orcl_result():
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    result = run_backtest(series, spec, "XNAS", "stored1", None, date(1998, 12, 31))
    ledger = trade_ledger(result.fills)
    return result, ledger, compute_metrics(result, ledger)


def record_for(result, run_id: str, created_at: datetime) -> RunRecord:
    return replace(RunRecord.of_result(result, created_at=created_at), run_id=run_id)


def save(warehouse: Warehouse, orcl_result, run_id: str, created_at: datetime, symbol: str = "ORCL") -> RunRecord:
    result, ledger, metrics = orcl_result
    record = replace(record_for(result, run_id, created_at), symbol=symbol)
    warehouse.save_run(
        record, {**metrics, "run_id": run_id, "symbol": symbol}, ledger.to_dict("records"), equity_curve(result)
    )
    return record


def test_a_stored_run_reads_back_exactly(warehouse_url, orcl_result):
    result, ledger, metrics = orcl_result
    warehouse = Warehouse.open(warehouse_url)
    saved = save(warehouse, orcl_result, "stored1", datetime.now(UTC))
    stored = load_run(warehouse, "stored1")
    assert stored.record == saved  # every field, the times as aware UTC datetimes

    assert stored.metrics == metrics  # floats round-trip exactly, counts come back as ints, order kept
    assert list(stored.metrics) == list(metrics)
    pd.testing.assert_frame_equal(stored.curve, equity_curve(result), check_exact=True)
    assert len(stored.ledger) == len(ledger) > 0
    for column in ("entry_price", "exit_price", "quantity", "commission", "realized_pnl"):
        assert list(stored.ledger[column]) == list(ledger[column]), column  # exact Decimals
    assert list(stored.ledger["entry_time"]) == list(ledger["entry_time"])
    assert list(stored.ledger["holding_seconds"]) == list(ledger["holding_seconds"])
    # the reports rebuilt from storage are the reports of the run itself
    record = record_for(result, "stored1", datetime.now(UTC))
    for kind in ("json", "trades", "equity"):
        assert render(kind, stored.record, stored.metrics, stored.ledger, stored.curve) == render(
            kind, record, metrics, ledger, equity_curve(result)
        ), kind


def test_latest_results_keep_the_newest_run_per_strategy_and_symbol(warehouse_url, orcl_result):
    warehouse = Warehouse.open(warehouse_url)
    now = datetime.now(UTC)
    save(warehouse, orcl_result, "old", now - timedelta(hours=2))
    save(warehouse, orcl_result, "new", now - timedelta(hours=1))
    save(warehouse, orcl_result, "other", now, symbol="NVDA")
    latest = warehouse.latest_results()
    assert [(r.record.strategy, r.record.symbol, r.record.run_id) for r in latest] == [
        ("sma_crossover", "NVDA", "other"),
        ("sma_crossover", "ORCL", "new"),
    ]
    assert latest[1].metrics["trade_count"] == orcl_result[2]["trade_count"]
    assert type(latest[1].metrics["trade_count"]) is int  # stored as a float, read back as the count it is
    assert [r.record.run_id for r in warehouse.list_results(symbol="orcl")] == ["new", "old"]
    assert warehouse.list_results(strategy="nope") == []


def test_an_unknown_run_id_is_an_error_that_names_it(warehouse_url):
    with pytest.raises(UnknownRunError, match="no backtest run with id 'missing'"):
        load_run(Warehouse.open(warehouse_url), "missing")

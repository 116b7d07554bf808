"""Golden numbers: the shipped SMA crossover on the bundled ORCL daily bars.

The figures were first checked against the independent calculation below (crossovers and a cash
account simulated with pandas and Decimal, no NautilusTrader), then pinned, so that both a change in
behaviour and a drift of the engine show up.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.strategy_specs import parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY

SPEC = {
    "strategy": "sma_crossover",
    "config": {"fast_period": 10, "slow_period": 30, "sizing": "percent_equity", "equity_percent": 95},
    "backtest": {"starting_balance": 100000, "fees": {"model": "zero"}},  # the calculation below has no fees
}


@pytest.fixture(scope="module")
def orcl():
    return read_bar_csv(ORCL_DAILY, "ORCL")


@pytest.fixture(scope="module")
def result(orcl):
    return run_backtest(orcl, parse_spec("golden_sma", SPEC, "test"), "XNAS", "golden")


def independent_sma_crossover(frame: pd.DataFrame, fast: int, slow: int, balance: Decimal, percent: int):
    """Crossovers from pandas rolling means; a long-only cash account in cents
    (NautilusTrader rounds each fill's notional half away from zero), filled at the close."""
    close = frame["close"]
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    cash, shares, above, fills = balance, 0, None, []
    for i in range(slow - 1, len(frame)):
        if fast_ma.iat[i] == slow_ma.iat[i]:
            continue
        now_above = fast_ma.iat[i] > slow_ma.iat[i]
        previous, above = above, now_above
        if previous is None or previous == now_above:
            continue
        price = Decimal(f"{close.iat[i]:.6f}")
        if now_above and shares == 0:
            shares = math.floor(float(cash) * percent / 100 / float(price))
            cash -= (shares * price).quantize(Decimal("0.01"), ROUND_HALF_UP)
            fills.append((int(frame["ts_event"].iat[i]), "BUY", shares, price))
        elif not now_above and shares > 0:
            cash += (shares * price).quantize(Decimal("0.01"), ROUND_HALF_UP)
            fills.append((int(frame["ts_event"].iat[i]), "SELL", shares, price))
            shares = 0
    final_equity = float(cash) + shares * float(close.iat[-1])
    return fills, final_equity


def test_engine_matches_independent_calculation(orcl, result):
    fills, final_equity = independent_sma_crossover(orcl.frame, 10, 30, Decimal(100000), 95)
    engine_fills = [
        (int(f.ts_event), "BUY" if f.side > 0 else "SELL", int(f.quantity), f.price) for f in result.fills.itertuples()
    ]
    assert engine_fills == fills
    assert result.equity["equity"].iloc[-1] == pytest.approx(final_equity, abs=1e-6)


def test_pinned_golden_numbers(result):
    ledger = trade_ledger(result.fills)
    first, last = ledger.iloc[0], ledger.iloc[-1]
    assert len(result.fills) == 195
    assert len(ledger) == 97  # closed round trips; the 98th entry is still open at the end
    assert first.entry_time == pd.Timestamp("1995-05-11T20:00:00Z")
    assert str(first.entry_price) == "2.379630"  # the file's six decimals, kept exactly
    assert first.quantity == 39922
    assert first.exit_time == pd.Timestamp("1995-09-22T20:00:00Z")
    assert str(first.exit_price) == "2.916667"
    assert last.entry_time == pd.Timestamp("2014-08-20T20:00:00Z")
    assert last.exit_time == pd.Timestamp("2014-09-17T20:00:00Z")
    assert str(last.exit_price) == "41.139999"
    assert last.realized_pnl == Decimal("-1166.450604")
    assert result.equity["position"].iloc[-1] == 11190
    assert result.equity["cash"].iloc[-1] == pytest.approx(22979.38, abs=0.005)
    assert result.equity["equity"].iloc[-1] == pytest.approx(526193.69119, abs=1e-5)


def test_same_inputs_give_identical_results(orcl, result):
    again = run_backtest(orcl, parse_spec("golden_sma", SPEC, "test"), "XNAS", "again")
    pd.testing.assert_frame_equal(again.equity, result.equity)
    pd.testing.assert_frame_equal(again.fills, result.fills)
    assert again.data_hash == result.data_hash

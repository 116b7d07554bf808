"""Golden numbers: the shipped SMA crossover on the bundled ORCL daily bars, filled at the bar's
close and at the next bar's open.

The figures were first checked against the independent calculations below (crossovers and a cash
account simulated with pandas and Decimal, no NautilusTrader; the second with fees and both fill
rules, as backtrader applies them), then pinned, so that both a change in behaviour and a drift of
the engine show up.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.fills import open_times_ns
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


# --- both fill modes, with the default per-share fees -------------------------------------------

FEES = {"per_share": Decimal("0.005"), "minimum": Decimal("1"), "max_percent": Decimal("1")}


def commission(shares: int, price: Decimal) -> Decimal:
    """max($0.005 × shares, $1), at most 1 % of the trade's value, to the cent (half up)."""
    fee = max(FEES["per_share"] * shares, FEES["minimum"])
    fee = min(fee, FEES["max_percent"] / 100 * shares * price)
    return fee.quantize(Decimal("0.01"), ROUND_HALF_UP)


def crossover_signals(close: pd.Series, fast: int, slow: int) -> list[tuple[int, bool]]:
    """(bar, golden) for each cross of the rolling means: golden = fast now above slow."""
    fast_ma, slow_ma = close.rolling(fast).mean(), close.rolling(slow).mean()
    above, out = None, []
    for i in range(slow - 1, len(close)):
        if fast_ma.iat[i] == slow_ma.iat[i]:
            continue
        now = bool(fast_ma.iat[i] > slow_ma.iat[i])
        if above is not None and now != above:
            out.append((i, now))
        above = now
    return out


def backtrader_style(frame: pd.DataFrame, fast: int, slow: int, fill: str):
    """A long-only SMA crossover written from the rules alone: an order decided on bar i fills at
    bar i's close (bar_close) or bar i+1's open (next_open; none after the last bar), buys 95 % of
    the cash at that price in whole shares, and pays the fees above. Sizing uses the exact cash
    (Σ price × shares); the account settles each fill's value in cents, half up."""
    exact, cash, shares, fills = Decimal(100000), Decimal(100000), 0, []
    for i, golden in crossover_signals(frame["close"], fast, slow):
        at = i if fill == "bar_close" else i + 1
        if at == len(frame):
            continue
        price = Decimal(f"{frame['close' if fill == 'bar_close' else 'open'].iat[at]:.6f}")
        if golden and shares == 0:
            quantity = math.floor(float(exact) * 95 / 100 / float(price))
            side = 1
        elif not golden and shares > 0:
            quantity, side = shares, -1
        else:
            continue
        fee = commission(quantity, price)
        exact -= side * quantity * price + fee
        cash -= side * (quantity * price).quantize(Decimal("0.01"), ROUND_HALF_UP) + fee
        shares += side * quantity
        fills.append((at, side, quantity, price, fee))
    return fills, float(cash) + shares * frame["close"].iat[-1]


@pytest.fixture(scope="module", params=["bar_close", "next_open"])
def with_fees(request, orcl):
    spec = {"strategy": "sma_crossover", "config": {"fast_period": 10, "slow_period": 30}}
    spec["backtest"] = {"starting_balance": 100000, "fill": request.param}
    return request.param, run_backtest(orcl, parse_spec("golden_fees", spec, "test"), "XNAS", "golden")


def test_both_fill_modes_match_a_backtrader_style_simulation(orcl, with_fees):
    fill, result = with_fees
    fills, final_equity = backtrader_style(orcl.frame, 10, 30, fill)
    stamp = orcl.frame["ts_event"] if fill == "bar_close" else pd.Series(open_times_ns(orcl))
    expected = [(int(stamp.iat[at]), side, quantity, price, fee) for at, side, quantity, price, fee in fills]
    engine = [(int(f.ts_event), int(f.side), int(f.quantity), f.price, f.commission) for f in result.fills.itertuples()]
    assert engine == expected
    assert result.equity["equity"].iloc[-1] == pytest.approx(final_equity, abs=1e-6)


GOLDEN = {  # fills, first fill (time, shares, price), final cash and equity, shares held at the end
    "bar_close": (195, ("1995-05-11T20:00:00Z", 39922, "2.379630"), 21071.02, 483947.240293, 10293),
    "next_open": (195, ("1995-05-12T13:30:00Z", 40078, "2.370370"), 19529.56, 448768.219545, 9545),
}


def test_pinned_golden_numbers_of_both_fill_modes(with_fees):
    fill, result = with_fees
    count, (time, quantity, price), cash, equity, held = GOLDEN[fill]
    first = result.fills.iloc[0]
    assert len(result.fills) == count
    assert pd.Timestamp(int(first.ts_event), tz="UTC") == pd.Timestamp(time)
    assert (int(first.quantity), str(first.price)) == (quantity, price)
    assert result.equity["cash"].iloc[-1] == pytest.approx(cash, abs=0.005)
    assert result.equity["equity"].iloc[-1] == pytest.approx(equity, abs=1e-5)
    assert result.equity["position"].iloc[-1] == held

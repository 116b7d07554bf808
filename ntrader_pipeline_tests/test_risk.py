"""Risk limits from a YAML's ``backtest.risk`` block, each on a series built to trigger it."""

from __future__ import annotations

import numpy as np
import pytest

from ntrader_pipeline_tests.strategy_series import bar_index, daily_series, run

CROSSES = {"fast_period": 3, "slow_period": 8}


@pytest.fixture(scope="module")
def down_up_down():
    down = 130 - np.arange(30)
    up = down[-1] + np.arange(1, 31)
    return daily_series(np.concatenate([down, up, up[-1] - np.arange(1, 31)]))


def controls(result) -> list[str]:
    return [event["control"] for event in result.risk_events]


def test_no_limits_no_events(down_up_down):
    result = run(down_up_down, "sma_crossover", CROSSES)
    assert result.risk_events == [] and len(result.fills) == 2


def test_max_position_shares_cuts_the_entry(down_up_down):
    result = run(
        down_up_down,
        "sma_crossover",
        {**CROSSES, "sizing": "fixed", "fixed_quantity": 500},
        {"risk": {"max_position_shares": 200}},
    )
    assert result.equity["position"].max() == 200
    assert controls(result) == ["max_position_shares"]
    assert "500 shares cut to the limit of 200" in result.risk_events[0]["detail"]


def test_max_notional_per_order_denies_a_large_entry_and_records_it(down_up_down):
    result = run(down_up_down, "sma_crossover", CROSSES, {"risk": {"max_notional_per_order": 50000}})
    assert len(result.fills) == 0  # 95% of 100k is above the limit
    assert controls(result) == ["max_notional_per_order"]
    event = result.risk_events[0]
    assert event["action"] == "order denied" and "above the limit of 50,000.00 USD" in event["detail"]
    assert bar_index(down_up_down, event["ts_event"]) >= 30


def test_max_notional_per_order_never_traps_a_position(down_up_down):
    """An entry under the limit that grows above it is closed in several orders, each under it."""
    result = run(
        down_up_down,
        "sma_crossover",
        {**CROSSES, "sizing": "fixed", "fixed_quantity": 450},
        {"risk": {"max_notional_per_order": 50000}},
    )
    sells = result.fills[result.fills["side"] == -1]
    assert len(sells) == 2 and sum(sells["quantity"]) == 450
    assert all(q * p <= 50000 for q, p in zip(sells["quantity"], sells["price"]))
    assert result.equity["position"].iloc[-1] == 0 and result.risk_events == []


def test_drawdown_kill_switch_flattens_and_halts():
    """Up 20 bars, a 4%-a-bar crash, then a recovery that would trigger new entries."""
    up = 100 + np.arange(25) * 2.0
    crash = up[-1] * 0.96 ** np.arange(1, 11)
    recovery = crash[-1] + np.arange(1, 41) * 2.0
    series = daily_series(np.concatenate([up, crash, recovery]))
    result = run(series, "momentum", {"rsi_period": 5}, {"risk": {"max_drawdown_pct": 10}})
    assert controls(result) == ["max_drawdown_pct"]
    halt = bar_index(series, result.risk_events[0]["ts_event"])
    equity = result.equity["equity"].to_numpy()
    drawdown = equity / np.maximum.accumulate(equity) - 1
    assert drawdown[halt] <= -0.10 < drawdown[halt - 1]  # the first close past the limit
    assert result.equity["position"].iloc[halt:].eq(0).all()
    assert (result.fills["ts_event"] <= result.risk_events[0]["ts_event"]).all()  # nothing after halting
    assert np.all(equity[halt:] == equity[halt])
    # without the switch the recovery is traded again
    unguarded = run(series, "momentum", {"rsi_period": 5})
    assert (unguarded.fills["ts_event"] > result.risk_events[0]["ts_event"]).any()


def test_risk_events_reach_the_metrics(down_up_down):
    from ntrader_pipeline.core.ledger import trade_ledger
    from ntrader_pipeline.core.metrics import compute_metrics

    result = run(down_up_down, "sma_crossover", CROSSES, {"risk": {"max_notional_per_order": 50000}})
    assert compute_metrics(result, trade_ledger(result.fills))["risk_controls_triggered"] == 1

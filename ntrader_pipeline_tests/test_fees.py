"""Per-share commissions: the schedule, and what NautilusTrader books with it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from ntrader_pipeline.core.fees import ZERO_COMMISSION, PerShareCommission
from ntrader_pipeline_tests.strategy_series import daily_series, run

DEFAULT = PerShareCommission()


@pytest.mark.parametrize(
    "shares,value,expected",
    [
        (1000, Decimal("50000"), Decimal("5.00")),  # 0.005 × 1000
        (100, Decimal("5000"), Decimal("1.00")),  # 0.50 raised to the 1 USD minimum
        (10, Decimal("5"), Decimal("0.05")),  # minimum capped at 1% of a 5 USD trade
        (333, Decimal("9990"), Decimal("1.67")),  # 1.665 rounds half up to the cent
        (0, Decimal("0"), Decimal("0")),
    ],
)
def test_per_share_schedule(shares, value, expected):
    assert DEFAULT.order_commission(Decimal(shares), value) == expected


def test_zero_schedule_charges_nothing():
    assert ZERO_COMMISSION.order_commission(Decimal(1000), Decimal(50000)) == 0


@pytest.fixture(scope="module")
def cross_series():
    down = 130 - np.arange(30)
    up = down[-1] + np.arange(1, 31)
    return daily_series(np.concatenate([down, up, up[-1] - np.arange(1, 31)]))


def fixed(shares: int) -> dict:
    return {"fast_period": 3, "slow_period": 8, "sizing": "fixed", "fixed_quantity": shares}


def test_commissions_land_in_fills_and_in_the_cash_account(cross_series):
    result = run(cross_series, "sma_crossover", fixed(700))
    assert list(result.fills["commission"]) == [Decimal("3.50"), Decimal("3.50")]
    notional = sum(s * q * p for s, q, p in zip(result.fills["side"], result.fills["quantity"], result.fills["price"]))
    assert result.engine_account["type"] == "CASH"
    assert result.engine_account["balance"] == Decimal(100000) - notional - Decimal("7.00")


def test_fees_are_configurable_per_yaml(cross_series):
    fees = {"fees": {"per_share": "0.01", "minimum": "2", "max_percent": "0.5"}}
    result = run(cross_series, "sma_crossover", fixed(100), fees)
    assert list(result.fills["commission"]) == [Decimal("2.00"), Decimal("2.00")]  # 1.00 raised to 2


def test_zero_fee_option(cross_series):
    result = run(cross_series, "sma_crossover", fixed(700), {"fees": {"model": "zero"}})
    assert len(result.fills) == 2 and all(c == 0 for c in result.fills["commission"])


def test_an_order_split_over_fills_pays_the_minimum_once():
    """With thin volume NautilusTrader fills a market order in pieces; the pieces' commissions
    add up to the order's, not to one minimum per piece."""
    down = 130 - np.arange(30)
    up = down[-1] + np.arange(1, 31)
    thin = daily_series(np.concatenate([down, up, up[-1] - np.arange(1, 31)]), volume=400)
    result = run(thin, "sma_crossover", fixed(300))
    buys = result.fills[result.fills["side"] == 1]
    assert len(buys) > 1  # the order really was split
    value = sum(q * p for q, p in zip(buys["quantity"], buys["price"]))
    assert sum(buys["commission"]) == DEFAULT.order_commission(Decimal(300), value) == Decimal("1.50")

"""Round trips from fills: scaling in and out, a reversal through flat, commissions split exactly."""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd

from ntrader_pipeline.core.backtest import FILL_COLUMNS
from ntrader_pipeline.core.ledger import LEDGER_COLUMNS, trade_ledger

T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC
MINUTE = 60_000_000_000


def fills(*rows) -> pd.DataFrame:
    return pd.DataFrame(
        [(T0 + i * MINUTE, side, D(q), D(p), D(c), "P-1") for i, (side, q, p, c) in enumerate(rows)],
        columns=FILL_COLUMNS,
    )


def test_scaling_in_and_out_then_reversing_gives_two_exact_round_trips():
    ledger = trade_ledger(
        fills(
            (1, "100", "10.00", "1.00"),
            (1, "100", "11.00", "1.00"),
            (-1, "50", "12.00", "0.50"),
            (-1, "250", "13.00", "2.50"),  # closes the last 150 long and opens 100 short
            (1, "100", "12.50", "1.00"),
        )
    )
    assert list(ledger.columns) == LEDGER_COLUMNS
    long, short = ledger.to_dict("records")
    assert long["side"] == "LONG" and long["position_id"] == "P-1-1"
    assert long["entry_price"] == D("10.5") and long["exit_price"] == D("12.75") and long["quantity"] == D(200)
    assert long["commission"] == D("4.00")  # 1 + 1 + 0.5 + 150/250 of 2.5
    assert long["realized_pnl"] == D("446.00")  # (2550 − 2100) − 4
    assert long["return_pct"] == float(D("446") / D("2100") * 100)
    assert long["entry_time"] == pd.Timestamp(T0, tz="UTC") and long["holding_seconds"] == 180
    assert short["side"] == "SHORT" and short["position_id"] == "P-1-2"
    assert short["entry_price"] == D(13) and short["exit_price"] == D("12.5") and short["quantity"] == D(100)
    assert short["commission"] == D("2.00") and short["realized_pnl"] == D("48.00")  # (1300 − 1250) − 2


def test_a_position_still_open_at_the_end_is_not_a_round_trip():
    ledger = trade_ledger(fills((1, "10", "5", "0"), (-1, "10", "6", "0"), (1, "7", "6.5", "0")))
    assert len(ledger) == 1 and ledger["realized_pnl"].iloc[0] == D(10)
    assert trade_ledger(fills()).empty

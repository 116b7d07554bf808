"""Wilder RSI seeds: the classic seed (means of the first N changes) by hand, its convergence to
NautilusTrader's RSI, and the momentum strategy's ``rsi_seed`` option."""

from __future__ import annotations

from datetime import date

import pytest
from nautilus_trader.indicators import MovingAverageType, RelativeStrengthIndex

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.indicators import ClassicWilderRSI
from ntrader_pipeline.core.strategy_specs import StrategySpecError, parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY


def test_classic_seed_by_hand():
    # period 3, changes +1, -0.5, +1.5, -1, +0.5:
    # seed: avg gain (1 + 0 + 1.5) / 3, avg loss 0.5 / 3 → RS 5 → RSI 83.333…
    # then avg gain (0.8333·2 + 0) / 3 = 0.5556, avg loss (0.1667·2 + 1) / 3 = 0.4444 → RSI 55.556
    # then avg gain (0.5556·2 + 0.5) / 3 = 0.53704, avg loss 0.4444·2 / 3 = 0.29630 → RSI 64.444
    rsi = ClassicWilderRSI(3)
    seen = []
    for close in [10, 11, 10.5, 12, 11, 11.5]:
        rsi.update(close)
        seen.append(round(rsi.value * 100, 3) if rsi.initialized else None)
    assert seen == [None, None, None, 83.333, 55.556, 64.444]


def test_both_seeds_agree_once_the_seed_has_decayed():
    closes = read_bar_csv(ORCL_DAILY, "ORCL").frame["close"].to_numpy()[:800]
    classic, nautilus = ClassicWilderRSI(14), RelativeStrengthIndex(14, MovingAverageType.WILDER)
    first_gap = None
    for close in closes:
        classic.update(close)
        nautilus.update_raw(float(close))
        if classic.initialized and first_gap is None:
            first_gap = abs(classic.value - nautilus.value)
    assert first_gap > 1e-3  # the seeds differ early …
    assert classic.value == pytest.approx(nautilus.value, abs=1e-9)  # … and not after 800 bars


def test_momentum_runs_with_either_seed_and_refuses_others():
    orcl = read_bar_csv(ORCL_DAILY, "ORCL")
    runs = {}
    for seed in ("nautilus", "classic"):
        spec = parse_spec("m", {"strategy": "momentum", "config": {"rsi_seed": seed}}, "m.yaml")
        runs[seed] = run_backtest(orcl, spec, "XNAS", seed, None, date(1998, 12, 31))
    assert len(runs["classic"].fills) > 0 and len(runs["nautilus"].fills) > 0
    with pytest.raises(StrategySpecError, match="rsi_seed must be one of nautilus, classic"):
        parse_spec("m", {"strategy": "momentum", "config": {"rsi_seed": "wilder"}}, "m.yaml")

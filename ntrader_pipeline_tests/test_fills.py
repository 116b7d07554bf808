"""Fills on volume-0 bars (index files): at the bar's close, as on bars with volume, not one tick
worse because the engine read volume 0 as no liquidity."""

from __future__ import annotations

from datetime import date

import pandas as pd

from ntrader_pipeline.core.backtest import fill_settings, run_backtest
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS


def test_orders_on_volume_zero_bars_fill_whole_at_the_close():
    orcl = read_bar_csv(ORCL_DAILY, "ORCL")
    frame = orcl.frame.copy()
    frame["volume"] = 0.0
    index_like = BarSeries(orcl.symbol, orcl.timeframe, frame, orcl.price_precision, orcl.source, orcl.notes)
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    with_volume = run_backtest(orcl, spec, "XNAS", "volume", None, date(1999, 12, 31))
    without = run_backtest(index_like, spec, "XNAS", "no-volume", None, date(1999, 12, 31))

    close_at = dict(zip(frame["ts_event"], frame["close"]))
    assert len(without.fills) > 10
    assert all(float(f.price) == close_at[f.ts_event] for f in without.fills.itertuples())
    assert without.fills.groupby("ts_event").size().max() == 1  # one fill per order, not 1 share + the rest
    pd.testing.assert_frame_equal(without.fills, with_volume.fills)
    assert fill_settings(orcl) == {}  # a file with volume keeps the engine's own fill model

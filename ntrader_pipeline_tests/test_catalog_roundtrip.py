"""Bars survive the Parquet catalog exactly, and re-importing replaces instead of duplicating."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.core.bars import BarSeries, Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import ORCL_DAILY


def test_ingest_then_read_back_equal(tmp_path):
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    catalog.write(series)

    back = catalog.read("ORCL", Timeframe.DAILY)
    assert len(back) == len(series) == 5036
    np.testing.assert_array_equal(back.frame["ts_event"], series.frame["ts_event"])
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(back.frame[column], series.frame[column])
    assert back.price_precision == 6
    assert back.content_hash() == series.content_hash()
    bars = catalog.read_bars("ORCL", Timeframe.DAILY)
    assert str(bars[0].open) == "2.179012"  # the instrument's precision fits the data
    assert pd.Timestamp(bars[0].ts_init, tz="UTC") == pd.Timestamp("1995-01-03 16:00", tz="America/New_York")


def test_reimport_keeps_one_file_and_the_same_bars(tmp_path):
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    catalog.write(series)
    files = catalog.bar_files("ORCL", Timeframe.DAILY)
    catalog.write(series)
    catalog.write(series)
    assert catalog.bar_files("ORCL", Timeframe.DAILY) == files and len(files) == 1
    assert len(catalog.read("ORCL", Timeframe.DAILY)) == 5036
    assert not list((tmp_path / "catalog" / ".staging").glob("*"))


def test_partial_overlap_replaces_only_the_overlapping_bars(tmp_path):
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    catalog.write(series)
    # A later file re-states bars 100..199 (with a changed close) and nothing else.
    changed = series.frame.iloc[100:200].copy()
    changed["close"] = changed[["open", "high"]].min(axis=1)
    catalog.write(BarSeries("ORCL", Timeframe.DAILY, changed.reset_index(drop=True), 6))

    back = catalog.read("ORCL", Timeframe.DAILY).frame
    assert len(back) == 5036
    np.testing.assert_array_equal(back["close"].iloc[100:200], changed["close"])
    np.testing.assert_array_equal(back["close"].iloc[:100], series.frame["close"].iloc[:100])
    np.testing.assert_array_equal(back["close"].iloc[200:], series.frame["close"].iloc[200:])
    assert len(catalog.bar_files("ORCL", Timeframe.DAILY)) == 1

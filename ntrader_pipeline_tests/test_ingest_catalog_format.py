"""The column-wise catalog writer must produce exactly what NautilusTrader's serializer produces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.data import Bar
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from ntrader_pipeline.adapters.catalog import BarCatalog, bars_table
from ntrader_pipeline.core.bars import BarSeries, Timeframe, to_nautilus_bars
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import NVDA_DAILY


@pytest.mark.parametrize("precision", [0, 2, 6, 9])
def test_bars_table_equals_nautilus_serializer(precision: int):
    rng = np.random.default_rng(precision)
    n = 500
    scale = 10**precision
    ticks = rng.integers(1, 10**12, n)  # raw = ticks * 10**(16 - precision) needs the int128 high limb
    frame = pd.DataFrame(
        {
            "ts_event": np.arange(n, dtype=np.int64) * 60_000_000_000 + 1_700_000_000_000_000_000,
            "open": (ticks + 1) / scale,
            "high": (ticks + 3) / scale,
            "low": ticks / scale,
            "close": (ticks + 2) / scale,
            "volume": rng.integers(0, 10**12, n).astype(np.float64),
        }
    )
    series = BarSeries("FMT", Timeframe.MIN1, frame, precision)
    expected = ArrowSerializer.serialize_batch(to_nautilus_bars(series, "XNAS"), data_cls=Bar)
    assert bars_table(series, "XNAS").equals(expected, check_metadata=True)


def test_catalog_reads_back_the_same_bars_nautilus_would_build(tmp_path):
    series = read_bar_csv(NVDA_DAILY, "NVDA")
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    catalog.write(series)
    assert catalog.read_bars("NVDA", Timeframe.DAILY) == to_nautilus_bars(series, "XNAS")
    assert catalog.instrument("NVDA").price_precision == 6

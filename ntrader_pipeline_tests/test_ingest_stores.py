"""Writes into both stores: re-imports are idempotent, overlaps replace exactly their range.

Runs on SQLite and on a real Postgres (the COPY path), with a real Parquet catalog.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import BarSeries, Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import ORCL_DAILY

ORCL_LINES = ORCL_DAILY.read_text().splitlines()


def _store(tmp_path: Path, url: str) -> MarketDataStore:
    return MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), Warehouse.open(url))


def _table_rows(store: MarketDataStore, symbol: str) -> list[tuple]:
    with store.warehouse.engine.connect() as connection:
        rows = connection.execute(
            select(market_data).where(market_data.c.symbol == symbol).order_by(market_data.c.timestamp)
        ).all()
    return [
        (
            pd.Timestamp(r.timestamp).value
            if pd.Timestamp(r.timestamp).tzinfo
            else pd.Timestamp(r.timestamp).tz_localize("UTC").value,
            r.open,
            r.high,
            r.low,
            r.close,
            r.volume,
            r.data_source,
        )
        for r in rows
    ]


def _catalog_rows(store: MarketDataStore, symbol: str) -> list[tuple]:
    bars = store.catalog.read_bars(symbol, Timeframe.DAILY)
    return [
        (
            b.ts_event,
            Decimal(str(b.open)),
            Decimal(str(b.high)),
            Decimal(str(b.low)),
            Decimal(str(b.close)),
            Decimal(str(b.volume)),
        )
        for b in bars
    ]


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([ORCL_LINES[0], *lines]) + "\n")
    return path


def test_reimporting_the_same_file_leaves_the_same_state(tmp_path, warehouse_url):
    store = _store(tmp_path, warehouse_url)
    first = store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    table, catalog = _table_rows(store, "ORCL"), _catalog_rows(store, "ORCL")
    for _ in range(2):
        again = store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
        assert again == first
        assert _table_rows(store, "ORCL") == table
        assert _catalog_rows(store, "ORCL") == catalog
    assert len(table) == len(catalog) == 5036
    assert len(store.catalog.bar_files("ORCL", Timeframe.DAILY)) == 1
    assert table[0][:6] == (
        pd.Timestamp("1995-01-03 21:00", tz="UTC").value,
        Decimal("2.179012"),
        Decimal("2.191358"),
        Decimal("2.117284"),
        Decimal("2.117284"),
        Decimal("36301200"),
    )


def test_overlap_replaces_exactly_the_overlapping_bars_and_keeps_the_rest(tmp_path, warehouse_url):
    store = _store(tmp_path, warehouse_url)
    store.replace(read_bar_csv(_write_csv(tmp_path / "first.csv", ORCL_LINES[1:101]), "ORCL"))
    before_table, before_catalog = _table_rows(store, "ORCL"), _catalog_rows(store, "ORCL")

    # Bars 51-150: 50 overlap (with new prices: every value doubled) and 50 are new.
    changed = []
    for line in ORCL_LINES[51:151]:
        date, *numbers, volume = line.split(",")
        changed.append(",".join([date, *(f"{Decimal(v) * 2:.6f}" for v in numbers), volume]))
    stored = store.replace(read_bar_csv(_write_csv(tmp_path / "second.csv", changed), "ORCL"))

    assert stored.written == 100 and stored.stored == 150
    after_table, after_catalog = _table_rows(store, "ORCL"), _catalog_rows(store, "ORCL")
    assert after_table[:50] == before_table[:50]
    assert after_catalog[:50] == before_catalog[:50]
    for old, new in zip(before_table[50:], after_table[50:100], strict=True):
        assert new[0] == old[0] and new[1:5] == tuple(v * 2 for v in old[1:5]) and new[5] == old[5]
    assert [r[:6] for r in after_table] == after_catalog
    assert len(store.catalog.bar_files("ORCL", Timeframe.DAILY)) == 1


def test_postgres_upsert_replaces_existing_rows_through_the_temp_table(tmp_path, postgres_url):
    """Called alone (not after replace's delete), the COPY path must update conflicting rows."""
    store = _store(tmp_path, postgres_url)
    series = read_bar_csv(_write_csv(tmp_path / "a.csv", ORCL_LINES[1:11]), "ORCL")
    bar_type = str(series.bar_type("XNAS"))
    with store.warehouse.transaction() as connection:
        store.warehouse.upsert_bars(connection, series, bar_type)
    doubled = series.frame.copy()
    doubled["close"] = doubled["close"] * 2
    doubled["high"] = doubled["high"] * 2
    bigger = type(series)(series.symbol, series.timeframe, doubled, series.price_precision)
    with store.warehouse.transaction() as connection:
        assert store.warehouse.upsert_bars(connection, bigger, bar_type) == 10
    rows = _table_rows(store, "ORCL")
    assert len(rows) == 10
    assert [r[4] for r in rows] == [Decimal(f"{v:.6f}") for v in doubled["close"]]


def test_concurrent_writers_of_one_series_keep_each_others_bars(tmp_path, sqlite_url):
    """Two imports of one symbol at once (say the CLI and the inbox sensor), different ranges."""
    full = read_bar_csv(ORCL_DAILY, "ORCL")
    halves = [full.frame.iloc[:2500], full.frame.iloc[2500:]]
    warehouse = Warehouse.open(sqlite_url)
    start = threading.Barrier(2)

    def write(frame):
        store = MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), warehouse)
        start.wait()
        return store.replace(BarSeries("ORCL", full.timeframe, frame.reset_index(drop=True), full.price_precision))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, halves))
    stored = BarCatalog(tmp_path / "catalog", "XNAS").read("ORCL", full.timeframe)
    assert len(stored) == len(full) == warehouse.count_bars("ORCL", "ORCL.XNAS-1-DAY-LAST-EXTERNAL")

"""The market_data upsert is idempotent, and migrations run, on SQLite and on Postgres."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import ORCL_DAILY

BAR_TYPE = "ORCL.XNAS-1-DAY-LAST-EXTERNAL"


def _rows(warehouse: Warehouse):
    with warehouse.engine.connect() as connection:
        return connection.execute(select(market_data).order_by(market_data.c.timestamp)).all()


def test_upsert_is_idempotent(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    warehouse.migrate()  # migrating twice is a no-op
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    head = BarSeries("ORCL", series.timeframe, series.frame.iloc[:300].reset_index(drop=True), 6)

    for _ in range(3):
        with warehouse.transaction() as connection:
            assert warehouse.upsert_bars(connection, head, BAR_TYPE) == 300
    rows = _rows(warehouse)
    assert len(rows) == 300
    assert rows[0].open == Decimal("2.179012") and rows[0].volume == Decimal("36301200")
    assert rows[0].data_source == "csv"

    # An upsert with a changed price replaces the row instead of adding one.
    changed = head.frame.copy()
    changed.loc[0, "close"] = 2.2
    with warehouse.transaction() as connection:
        warehouse.upsert_bars(connection, BarSeries("ORCL", series.timeframe, changed, 6), BAR_TYPE)
    rows = _rows(warehouse)
    assert len(rows) == 300
    assert rows[0].close == Decimal("2.2")
    assert warehouse.count_bars("ORCL", BAR_TYPE) == 300
    warehouse.dispose()

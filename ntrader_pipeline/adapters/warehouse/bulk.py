"""Bulk writes into the warehouse: bars and equity curves as exact text, a batch of rows at a time.

Kept apart from ``warehouse`` because it needs numpy, pandas and pyarrow: the commands that only
read the warehouse (``list-results``, ``data list``) start without them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection

from ntrader_pipeline.adapters.warehouse.tables import market_data
from ntrader_pipeline.core.bars import PRICE_COLUMNS, BarSeries


def _utc(ns: np.ndarray) -> list[datetime]:
    return list(pd.to_datetime(ns, utc=True).to_pydatetime())


def decimal_text(values: np.ndarray, precision: int) -> pa.Array:
    """Floats that carry ``precision`` decimals as exact decimal text ("185.250"), vectorised.

    Goes through integer ticks, so no float formatting (slow, and prone to exponents) is involved.
    """
    ticks = np.rint(np.asarray(values, dtype=np.float64) * 10**precision).astype(np.int64)
    magnitude = np.abs(ticks)
    if precision == 0:
        text = pc.cast(pa.array(magnitude), pa.string())
    else:
        scale = 10**precision
        whole = pc.cast(pa.array(magnitude // scale), pa.string())
        fraction = pc.utf8_lpad(pc.cast(pa.array(magnitude % scale), pa.string()), precision, "0")
        text = pc.binary_join_element_wise(whole, fraction, ".")
    if (ticks < 0).any():
        text = pc.if_else(pa.array(ticks < 0), pc.binary_join_element_wise("-", text, ""), text)
    return text


def bar_text_columns(series: BarSeries) -> dict[str, pa.Array]:
    """The OHLCV columns of ``series`` as exact decimal text (prices at the series' precision)."""
    frame = series.frame
    text = {c: decimal_text(frame[c].to_numpy(), series.price_precision) for c in PRICE_COLUMNS}
    text["volume"] = decimal_text(frame["volume"].to_numpy(), 0)
    return text


BAR_KEY = ["symbol", "bar_type", "timestamp"]
BAR_COLUMNS_SQL = [c.name for c in market_data.columns]


def _constant(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


BAR_BATCH = 100_000  # rows formatted at a time: the text of a whole big import never sits in memory


def bar_text_batches(series: BarSeries) -> Iterator[tuple[pa.Array, dict[str, pa.Array]]]:
    """``series``' UTC times (``YYYY-MM-DD HH:MM:SS.ffffff``) and exact OHLCV text, ``BAR_BATCH``
    rows at a time."""
    frame = series.frame
    for start in range(0, len(frame), BAR_BATCH):
        part = BarSeries(
            series.symbol,
            series.timeframe,
            frame.iloc[start : start + BAR_BATCH],
            series.price_precision,
            series.source,
        )
        micros = part.frame["ts_event"].to_numpy(dtype=np.int64) // 1000
        yield pc.cast(pa.array(micros, pa.timestamp("us")), pa.string()), bar_text_columns(part)


def bar_copy_payload(series: BarSeries, bar_type: str, ingested_at: datetime) -> Iterator[bytes]:
    """``market_data`` rows of ``series`` as CSV for COPY (no header), one chunk per batch of rows."""
    stamp = ingested_at.astimezone(UTC).isoformat()
    for times, text in bar_text_batches(series):
        n = len(times)
        table = pa.table(
            {
                "symbol": _constant(series.symbol, n),
                "bar_type": _constant(bar_type, n),
                "timestamp": times,
                **text,
                "data_source": _constant(series.source, n),
                "ingested_at": _constant(stamp, n),
            }
        )
        sink = io.BytesIO()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
        yield sink.getvalue()


def copy_bars(connection: Connection, series: BarSeries, bar_type: str) -> int:
    """COPY the rows in: directly when the range holds none of them, else via a temp table."""
    columns = ", ".join(f'"{c}"' for c in BAR_COLUMNS_SQL)
    cursor = _dbapi_cursor(connection)
    try:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        taken = cursor.execute(
            'SELECT 1 FROM market_data WHERE symbol = %s AND bar_type = %s AND "timestamp" BETWEEN %s AND %s LIMIT 1',
            (series.symbol, bar_type, _utc(np.array([series.first_ns]))[0], _utc(np.array([series.last_ns]))[0]),
        ).fetchone()
        target = "market_data"
        if taken:
            target = "incoming_bars"
            cursor.execute("CREATE TEMP TABLE incoming_bars (LIKE market_data) ON COMMIT DROP")
        with cursor.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            for payload in bar_copy_payload(series, bar_type, datetime.now(UTC)):
                copy.write(payload)
        if taken:
            updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in BAR_COLUMNS_SQL if c not in BAR_KEY)
            cursor.execute(
                f"INSERT INTO market_data ({columns}) SELECT {columns} FROM incoming_bars "
                f'ON CONFLICT (symbol, bar_type, "timestamp") DO UPDATE SET {updates}'
            )
            cursor.execute("DROP TABLE incoming_bars")
    finally:
        cursor.close()
    return len(series)


def insert_bars_sqlite(connection: Connection, series: BarSeries, bar_type: str) -> int:
    """Rows in the text SQLAlchemy itself stores on SQLite (``YYYY-MM-DD HH:MM:SS.ffffff`` UTC times,
    exact decimal text), through the DBAPI cursor of ``connection``'s transaction."""
    now = pc.cast(pa.scalar(datetime.now(UTC).replace(tzinfo=None), pa.timestamp("us")), pa.string()).as_py()
    order = ["symbol", "bar_type", "timestamp", *PRICE_COLUMNS, "volume", "data_source", "ingested_at"]  # the tuples'
    columns = ", ".join(f'"{c}"' for c in order)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in order if c not in BAR_KEY)
    statement = (
        f"INSERT INTO market_data ({columns}) VALUES ({', '.join('?' * len(order))}) "
        f'ON CONFLICT (symbol, bar_type, "timestamp") DO UPDATE SET {updates}'
    )
    cursor = _dbapi_cursor(connection)
    try:
        for times, text in bar_text_batches(series):
            values = [text[c].to_pylist() for c in PRICE_COLUMNS + ["volume"]]
            constant = [repeat(v) for v in (series.symbol, bar_type, series.source, now)]
            rows = zip(constant[0], constant[1], times.to_pylist(), *values, constant[2], constant[3])
            cursor.executemany(statement, rows)
    finally:
        cursor.close()
    return len(series)


def insert_curve(connection: Connection, run_id: str, curve: pd.DataFrame) -> None:
    """The equity curve (a row per bar: hundreds of thousands for one-minute bars) by COPY on
    Postgres and plain-tuple ``executemany`` on SQLite, in ``connection``'s transaction; times as
    UTC text (the form SQLAlchemy stores on SQLite), floats as Python floats (exact)."""
    utc = curve["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    stamps = pc.cast(pa.array(utc), pa.string()).to_pylist()
    equity = curve["equity"].to_numpy(dtype=np.float64).tolist()
    drawdown = curve["drawdown"].to_numpy(dtype=np.float64).tolist()
    cursor = _dbapi_cursor(connection)
    try:
        if connection.dialect.name == "postgresql":
            with cursor.copy('COPY equity_curve (run_id, "timestamp", equity, drawdown) FROM STDIN') as copy:
                for row in zip(stamps, equity, drawdown, strict=True):
                    copy.write_row((run_id, f"{row[0]}+00", row[1], row[2]))
        else:
            cursor.executemany(
                'INSERT INTO equity_curve (run_id, "timestamp", equity, drawdown) VALUES (?, ?, ?, ?)',
                ((run_id, *row) for row in zip(stamps, equity, drawdown, strict=True)),
            )
    finally:
        cursor.close()


def _dbapi_cursor(connection: Connection) -> Any:
    """The driver's own cursor in ``connection``'s transaction: psycopg's ``copy`` and sqlite3's
    ``executemany`` over an iterator are what make these writes fast, beyond the DBAPI's types."""
    dbapi = connection.connection.dbapi_connection
    if dbapi is None:
        raise RuntimeError("the warehouse connection is closed")
    return dbapi.cursor()

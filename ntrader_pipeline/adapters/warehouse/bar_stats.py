"""One series in the ``market_data`` table as the data-quality checks need it, computed by the database.

Counts come from one query; reading every row into Python just to count it would cost more than
the import did. The content check needs every bar, so it gets them as integer ticks, streamed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import ColumnElement, Float, and_, case, cast, func, or_, select

from ntrader_pipeline.adapters.warehouse import Warehouse, market_data


@dataclass(frozen=True)
class TableBarStats:
    rows: int  # rows of the series
    rows_in_range: int  # rows with first <= timestamp <= last
    ohlc_violations: int  # rows breaking a price, high/low or volume rule


def table_bar_stats(warehouse: Warehouse, symbol: str, bar_type: str, first_ns: int, last_ns: int) -> TableBarStats:
    # Postgres compares its NUMERIC columns natively (4x faster than casting a million rows to
    # float); SQLite holds the exact decimals as text, so there they must be compared as numbers.
    columns: list[ColumnElement] = [market_data.c[name] for name in ("open", "high", "low", "close", "volume")]
    if warehouse.dialect == "sqlite":
        columns = [cast(column, Float) for column in columns]
    o, h, low, c, v = columns
    broken = or_(o <= 0, h <= 0, low <= 0, c <= 0, h < o, h < c, h < low, low > o, low > c, v < 0)
    in_range = and_(
        market_data.c.timestamp >= pd.Timestamp(first_ns, tz="UTC").to_pydatetime(),
        market_data.c.timestamp <= pd.Timestamp(last_ns, tz="UTC").to_pydatetime(),
    )
    query = select(
        func.count(),
        func.coalesce(func.sum(case((in_range, 1), else_=0)), 0),
        func.coalesce(func.sum(case((broken, 1), else_=0)), 0),
    ).where(market_data.c.symbol == symbol, market_data.c.bar_type == bar_type)
    rows, rows_in_range, violations = warehouse.read(f"counting {bar_type} bars", lambda c: c.execute(query).one())
    return TableBarStats(int(rows), int(rows_in_range), int(violations))


def table_bar_ticks(warehouse: Warehouse, symbol: str, bar_type: str, price_precision: int) -> np.ndarray:
    """The series' rows as ``core.quality.bar_ticks`` makes them from the catalog, in time order.

    The database scales its exact decimals to integer ticks and sends them as text that pyarrow
    parses in bulk (Postgres by COPY), so no Python object is made per value.
    """
    scale = 10**price_precision
    if warehouse.dialect == "postgresql":
        return _postgres_ticks(warehouse, symbol, bar_type, scale)
    # One text line per row, built by SQLite: a million Python strings instead of six million
    # Python numbers, then parsed in bulk by pyarrow like the Postgres COPY text.
    prices = " || ',' || ".join(
        f"CAST(ROUND(CAST({c} AS REAL) * {scale}) AS INTEGER)" for c in ("open", "high", "low", "close")
    )
    query = (
        f"SELECT \"timestamp\" || ',' || {prices} || ',' || CAST(volume AS INTEGER) FROM market_data "
        'WHERE symbol = ? AND bar_type = ? ORDER BY "timestamp"'
    )

    def read(connection) -> io.BytesIO:  # a fresh buffer per attempt: a retried read starts over
        buffer = io.BytesIO()
        result = connection.exec_driver_sql(query, (symbol, bar_type))
        while rows := result.fetchmany(200_000):
            buffer.write("\n".join(row[0] for row in rows).encode())
            buffer.write(b"\n")
        return buffer

    return _parse_ticks(warehouse.read(f"reading {bar_type} bars", read), ",", pa.timestamp("ns"))


def _postgres_ticks(warehouse: Warehouse, symbol: str, bar_type: str, scale: int) -> np.ndarray:
    prices = ", ".join(f"({c} * {scale})::bigint" for c in ("open", "high", "low", "close"))  # the cast rounds
    query = (
        f'COPY (SELECT (extract(epoch FROM "timestamp") * 1000000)::bigint * 1000, {prices}, volume::bigint '
        'FROM market_data WHERE symbol = %s AND bar_type = %s ORDER BY "timestamp") TO STDOUT'
    )

    def read(connection) -> io.BytesIO:  # a fresh buffer per attempt: a retried read starts over
        buffer = io.BytesIO()
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            with cursor.copy(query, (symbol, bar_type)) as copy:
                for block in copy:
                    buffer.write(block)
        finally:
            cursor.close()
        return buffer

    return _parse_ticks(warehouse.read(f"reading {bar_type} bars", read), "\t", pa.int64())


def _parse_ticks(buffer: io.BytesIO, delimiter: str, time_type: pa.DataType) -> np.ndarray:
    """Six integer columns of delimited text (the first a time, as ns or as text) into an (n, 6) array."""
    if buffer.tell() == 0:
        return np.empty((0, 6), dtype=np.int64)
    names = [f"c{i}" for i in range(6)]
    buffer.seek(0)  # read in place: a copy of the text would double what a big series costs here
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types={"c0": time_type, **dict.fromkeys(names[1:], pa.int64())}),
    )
    ticks = np.empty((table.num_rows, 6), dtype=np.int64)
    ticks[:, 0] = table.column("c0").cast(pa.int64()).to_numpy()
    for i, name in enumerate(names[1:], start=1):
        ticks[:, i] = table.column(name).to_numpy()
    return ticks

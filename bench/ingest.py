"""How close `ntrader data import-csv` comes to the raw cost of moving a big CSV into both stores.

Generates a 1,000,000-row one-minute CSV (naive New York times, regular sessions), then times in
the same run:

* the floor: pyarrow reads the CSV, NautilusTrader builds the bars and writes them to an empty
  Parquet catalog, and Postgres COPYs the file's rows into a copy of the ``market_data`` table
  (Postgres itself parses the text: no Python formatting at all);
* the project: ``Pipeline.import_csv`` -- the Dagster run behind ``ntrader data import-csv``,
  with dialect detection, validation, interval inference, session stamping, staging and the
  atomic swap -- into an empty catalog and a fresh Postgres warehouse.

The last line is ``ingest_ratio=<floor_seconds/project_seconds>`` (1.0 = as fast as the floor).
Postgres: ``NTRADER_BENCH_POSTGRES_URL`` (default: the local server); the script creates and drops
its own database. Usage: ``uv run python bench/ingest.py [rows]``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parents[1]
SESSION_MINUTES = 390


def generate_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A random walk of valid one-minute bars, 09:30-15:59 on weekdays, 2 decimals."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2000-01-03", periods=rows // SESSION_MINUTES + 1)
    minute = np.arange(SESSION_MINUTES) * 60_000_000_000 + (9 * 60 + 30) * 60_000_000_000
    stamps = (days.as_unit("ns").asi8[:, None] + minute[None, :]).ravel()[:rows]
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0005, rows))), 2)
    open_ = np.round(np.concatenate([[close[0]], close[:-1]]), 2)
    spread = np.round(rng.uniform(0, 0.2, (2, rows)), 2)
    high = np.maximum(open_, close) + spread[0]
    low = np.maximum(np.minimum(open_, close) - spread[1], 0.01)
    table = pa.table(
        {
            "timestamp": pa.array(stamps.astype("datetime64[ns]").astype("datetime64[s]").astype(str)),
            "open": pa.array(np.char.mod("%.2f", open_)),
            "high": pa.array(np.char.mod("%.2f", high)),
            "low": pa.array(np.char.mod("%.2f", low)),
            "close": pa.array(np.char.mod("%.2f", close)),
            "volume": rng.integers(100, 100_000, rows),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))


def floor(csv: Path, catalog_dir: Path, pg_url: str) -> float:
    """The raw minimum: typed pyarrow read, Nautilus bars to a fresh catalog, Postgres COPY."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from ntrader_pipeline.core.bars import Timeframe, bar_type_for
    from ntrader_pipeline.core.instruments import make_equity

    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE floor_bars (LIKE market_data INCLUDING ALL)"))
        for column, value in (("symbol", "'FLOOR'"), ("bar_type", "'FLOOR'"), ("data_source", "'csv'"),
                              ("ingested_at", "now()")):
            connection.execute(text(f"ALTER TABLE floor_bars ALTER COLUMN {column} SET DEFAULT {value}"))
    started = time.perf_counter()
    table = pacsv.read_csv(csv)
    local = pd.DatetimeIndex(table.column("timestamp").to_numpy()).tz_localize("America/New_York")
    ts = (local.tz_convert("UTC").as_unit("ns").asi8 + Timeframe.MIN1.nanos).astype(np.uint64)
    columns = [np.array(table.column(c).to_numpy(), dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    bars = Bar.from_raw_arrays_to_list(
        bar_type_for("FLOOR", "XNAS", Timeframe.MIN1), 2, 0, *columns, ts, ts.copy()
    )
    catalog = ParquetDataCatalog(str(catalog_dir))
    catalog.write_data([make_equity("FLOOR", "XNAS", 2)])
    catalog.write_data(bars)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TIME ZONE 'America/New_York'")
        with cursor.copy(
            'COPY floor_bars ("timestamp", open, high, low, close, volume) FROM STDIN (FORMAT csv, HEADER true)'
        ) as copy, open(csv, "rb") as source:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        raw.commit()
    finally:
        raw.close()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def project(csv: Path, home: Path, pg_url: str) -> tuple[float, dict]:
    """``Pipeline.import_csv``: the Dagster run `ntrader data import-csv` makes."""
    os.environ["NTRADER_HOME"] = str(home)
    os.environ["NTRADER_WAREHOUSE_URL"] = pg_url
    os.environ["NTRADER_STRATEGY_CONFIGS_DIR"] = str(REPO / "strategy_configs")
    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.pipeline import Pipeline

    Warehouse.open(pg_url)  # migrate before timing, as a running deployment would be
    pipeline = Pipeline.open()
    started = time.perf_counter()
    stored = pipeline.import_csv(csv, "BENCH")
    return time.perf_counter() - started, stored


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    admin_url = make_url(os.environ.get("NTRADER_BENCH_POSTGRES_URL", DEFAULT_URL))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = f"ntrader_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="ntrader-bench-"))
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    pg_url = admin_url.set(database=database).render_as_string(hide_password=False)
    try:
        csv = work / "bars_1min.csv"
        generate_csv(csv, rows)
        print(f"rows={rows} csv_mb={csv.stat().st_size / 1e6:.1f}")
        from ntrader_pipeline.adapters.warehouse import Warehouse

        Warehouse(pg_url).migrate()
        floor_seconds = floor(csv, work / "floor_catalog", pg_url)
        print(f"floor_seconds={floor_seconds:.2f}")
        project_seconds, stored = project(csv, work / "home", pg_url)
        print(f"project_seconds={project_seconds:.2f} bars_written={stored['bars_written']}")
        assert stored["bars_written"] == rows, stored
        Warehouse.open.cache_clear()
        print(f"ingest_ratio={floor_seconds / project_seconds:.3f}")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

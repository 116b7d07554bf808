"""How close `ntrader data import-csv` comes to the raw cost of moving a big CSV into both stores,
and how much memory it needs.

Generates a one-minute CSV (naive New York times, regular sessions; 1,000,000 rows unless given),
then, for each warehouse (``--warehouse sqlite|postgres|both``, default both), times in fresh
child processes one after the other:

* the floor: pyarrow reads the CSV, NautilusTrader builds the bars and writes them to an empty
  Parquet catalog, and the rows go to the table the cheapest way: Postgres COPYs the file itself
  (Postgres parses the text: no Python formatting at all); SQLite gets one ``executemany`` of the
  file's cells;
* the project: ``Pipeline.import_csv`` -- the Dagster run behind ``ntrader data import-csv``,
  with dialect detection, validation, interval inference, session stamping, staging and the
  atomic swap -- into an empty catalog and a fresh warehouse.

Prints ``ingest_ratio=<floor_seconds/project_seconds>`` (1.0 = as fast as the floor) and
``peak_rss_mb=`` (the peak resident memory of the project's process: ``ru_maxrss``, imports of
Dagster and NautilusTrader included, ``rss_before_import_mb`` shows that share) for Postgres, and the
same with a ``_sqlite`` suffix for SQLite. Postgres: ``NTRADER_BENCH_POSTGRES_URL`` (default: the
local server); the script creates and drops its own database.
Usage: ``uv run python bench/ingest.py [rows] [--warehouse sqlite|postgres|both]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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


def _nautilus_bars_to_catalog(table: pa.Table, catalog_dir: Path) -> np.ndarray:
    """Part of every floor: bars built from the typed columns and written to an empty catalog."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from ntrader_pipeline.core.bars import Timeframe, bar_type_for
    from ntrader_pipeline.core.instruments import make_equity

    local = pd.DatetimeIndex(table.column("timestamp").to_numpy()).tz_localize("America/New_York")
    ts = (local.tz_convert("UTC").as_unit("ns").asi8 + Timeframe.MIN1.nanos).astype(np.uint64)
    columns = [
        np.array(table.column(c).to_numpy(), dtype=np.float64) for c in ("open", "high", "low", "close", "volume")
    ]
    bars = Bar.from_raw_arrays_to_list(bar_type_for("FLOOR", "XNAS", Timeframe.MIN1), 2, 0, *columns, ts, ts.copy())
    catalog = ParquetDataCatalog(str(catalog_dir))
    catalog.write_data([make_equity("FLOOR", "XNAS", 2)])
    catalog.write_data(bars)
    return ts


def floor_postgres(csv: Path, catalog_dir: Path, url: str) -> float:
    """The raw minimum: typed pyarrow read, Nautilus bars to a fresh catalog, Postgres COPY of the
    file itself (Postgres parses the text: no Python formatting at all)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE floor_bars (LIKE market_data INCLUDING ALL)"))
        for column, value in (
            ("symbol", "'FLOOR'"),
            ("bar_type", "'FLOOR'"),
            ("data_source", "'csv'"),
            ("ingested_at", "now()"),
        ):
            connection.execute(text(f"ALTER TABLE floor_bars ALTER COLUMN {column} SET DEFAULT {value}"))
    started = time.perf_counter()
    _nautilus_bars_to_catalog(pacsv.read_csv(csv), catalog_dir)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TIME ZONE 'America/New_York'")
        with (
            cursor.copy(
                'COPY floor_bars ("timestamp", open, high, low, close, volume) FROM STDIN (FORMAT csv, HEADER true)'
            ) as copy,
            open(csv, "rb") as source,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        raw.commit()
    finally:
        raw.close()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def floor_sqlite(csv: Path, catalog_dir: Path, url: str) -> float:
    """The raw minimum on SQLite: typed pyarrow read, Nautilus bars to a fresh catalog, and one
    ``executemany`` of plain tuples (the file's cells, UTC times as text) into an empty table."""
    import sqlite3

    from ntrader_pipeline.adapters.warehouse import Warehouse

    Warehouse(url).migrate()
    started = time.perf_counter()
    table = pacsv.read_csv(csv)
    ts = _nautilus_bars_to_catalog(table, catalog_dir)
    stamps = pc.cast(pa.array(ts.astype(np.int64) // 1000, pa.timestamp("us")), pa.string())
    n = table.num_rows
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    with connection:
        connection.executemany(
            "INSERT INTO market_data VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(
                *[
                    ["FLOOR"] * n,
                    ["FLOOR"] * n,
                    stamps.to_pylist(),
                    *(
                        pc.cast(table.column(c), pa.string()).to_pylist()
                        for c in ("open", "high", "low", "close", "volume")
                    ),
                    ["csv"] * n,
                    ["2000-01-01 00:00:00.000000"] * n,
                ],
                strict=True,
            ),
        )
    connection.close()
    return time.perf_counter() - started


def project(csv: Path, home: Path, url: str) -> tuple[float, int, float]:
    """``Pipeline.import_csv`` (the Dagster run `ntrader data import-csv` makes): its seconds, the
    bars it wrote and the process's resident memory (MB) before it started."""
    os.environ["NTRADER_HOME"] = str(home)
    os.environ["NTRADER_WAREHOUSE_URL"] = url
    os.environ["NTRADER_STRATEGY_CONFIGS_DIR"] = str(REPO / "strategy_configs")
    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.pipeline import Pipeline

    Warehouse.open(url)  # migrate before timing, as a running deployment would be
    pipeline = Pipeline.open()
    before = _rss_mb()
    started = time.perf_counter()
    stored = pipeline.import_csv(csv, "BENCH")
    return time.perf_counter() - started, stored["bars_written"], before


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux


def child(kind: str, csv: Path, work: Path, url: str) -> None:
    """One measurement in this (fresh) process; prints ``key=value`` lines for the parent."""
    if kind == "project":
        seconds, written, before = project(csv, work / "home", url)
        print(f"seconds={seconds} bars_written={written} rss_before_mb={before:.0f} peak_rss_mb={_peak_rss_mb():.0f}")
    else:
        measure = floor_sqlite if url.startswith("sqlite") else floor_postgres
        print(f"seconds={measure(csv, work / 'floor_catalog', url)} peak_rss_mb={_peak_rss_mb():.0f}")


def in_child(kind: str, csv: Path, work: Path, url: str) -> dict[str, float]:
    """Run ``child`` in a fresh interpreter: each figure (peak memory above all) is its own."""
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--csv", str(csv), "--work", str(work), "--url", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {key: float(value) for key, value in (field.split("=") for field in out if "=" in field)}


def measure(warehouse: str, csv: Path, rows: int, work: Path, admin_url) -> None:
    """Floor, then the project, on one warehouse; prints the figures, ratio and peak memory."""
    database = f"ntrader_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT") if warehouse == "postgres" else None
    try:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{database}"'))
            url = admin_url.set(database=database).render_as_string(hide_password=False)
            from ntrader_pipeline.adapters.warehouse import Warehouse

            Warehouse(url).migrate()
            floor_url = project_url = url
        else:
            floor_url, project_url = (f"sqlite:///{work / name / 'warehouse.db'}" for name in ("floor", "project"))
        floor_run = in_child("floor", csv, work / "floor", floor_url)
        project_run = in_child("project", csv, work / "project", project_url)
        assert project_run["bars_written"] == rows, project_run
        print(
            f"[{warehouse}] floor_seconds={floor_run['seconds']:.2f} project_seconds={project_run['seconds']:.2f} "
            f"rss_before_import_mb={project_run['rss_before_mb']:.0f}"
        )
        suffix = "" if warehouse == "postgres" else f"_{warehouse}"
        print(f"ingest_ratio{suffix}={floor_run['seconds'] / project_run['seconds']:.3f}")
        print(f"peak_rss_mb{suffix}={project_run['peak_rss_mb']:.0f}")
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--warehouse", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--child", choices=("floor", "project"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.csv, args.work, args.url)
    admin_url = make_url(os.environ.get("NTRADER_BENCH_POSTGRES_URL", DEFAULT_URL))
    work = Path(tempfile.mkdtemp(prefix="ntrader-bench-"))
    try:
        csv = work / "bars_1min.csv"
        generate_csv(csv, args.rows)
        print(f"rows={args.rows} csv_mb={csv.stat().st_size / 1e6:.1f} load_average={os.getloadavg()[0]:.1f}")
        for warehouse in ("sqlite", "postgres") if args.warehouse == "both" else (args.warehouse,):
            measure(warehouse, csv, args.rows, work / warehouse, admin_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

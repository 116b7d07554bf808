"""What crash safety costs on a big series: recovery after a kill, and the content check.

For SQLite and Postgres: imports a generated one-minute series (default 1,000,000 bars, the
generator of ``bench/ingest.py``) through ``MarketDataStore.replace``, re-imports it with every
price changed in a subprocess killed just before its commit (F1's moment), then times opening
the stores again (which settles the publish) and the ``content_matches`` comparison (the table
read as integer ticks, both stores hashed and compared; the catalog series is the one the other
checks read anyway).

Last lines: ``recovery_ratio_<db>=<recovery/import>`` and ``content_check_ratio_<db>=<check/import>``.
Postgres: ``NTRADER_BENCH_POSTGRES_URL`` (default: the local server); the script creates and
drops its own database. Usage: ``uv run python bench/crash_recovery.py [rows]``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from ingest import DEFAULT_URL, generate_csv  # noqa: E402 - the sibling benchmark's generator

from ntrader_pipeline_tests.support.databases import fresh_database  # noqa: E402

DRIVER = """
import sys
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
catalog, url, csv = sys.argv[1:]
MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(url)).replace(read_bar_csv(csv, "BENCH", Timeframe.MIN1))
"""


def repriced(source: Path, target: Path) -> None:
    """Every price one cent higher: the same bars, all of them different."""
    table = pacsv.read_csv(source)
    for column in ("open", "high", "low", "close"):
        cents = table.column(column).to_numpy() + 0.01
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(np.char.mod("%.2f", cents)))
    pacsv.write_csv(table, target, pacsv.WriteOptions(quoting_style="none"))


def measure(work: Path, url: str, csv: Path, changed: Path, label: str) -> None:
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.market_data_store import MarketDataStore
    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.adapters.warehouse.bar_stats import table_bar_ticks
    from ntrader_pipeline.core import quality
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.csv_bars import read_bar_csv

    catalog = work / f"catalog_{label}"
    warehouse = Warehouse.open(url)
    series = read_bar_csv(csv, "BENCH", Timeframe.MIN1)
    started = time.perf_counter()
    MarketDataStore(BarCatalog(catalog, "XNAS"), warehouse).replace(series)
    import_seconds = time.perf_counter() - started

    env = {**os.environ, "NTRADER_FAULT_KILL_AT": "before-commit"}
    killed = subprocess.run([sys.executable, "-c", DRIVER, str(catalog), url, str(changed)], env=env, timeout=3600)
    assert killed.returncode == -signal.SIGKILL, killed.returncode

    started = time.perf_counter()
    store = MarketDataStore(BarCatalog(catalog, "XNAS"), warehouse)
    recovery_seconds = time.perf_counter() - started

    stored = store.catalog.read("BENCH", Timeframe.MIN1)  # the checks have read it already
    bar_type = str(stored.bar_type("XNAS"))
    started = time.perf_counter()
    finding = quality.same_content(
        quality.bar_ticks(stored.frame, stored.price_precision),
        table_bar_ticks(warehouse, "BENCH", bar_type, stored.price_precision),
        stored.price_precision,
    )
    check_seconds = time.perf_counter() - started
    assert finding.passed, finding.summary
    assert stored.content_hash() == series.content_hash()  # rolled back to the bars the table holds
    print(
        f"{label}: import_seconds={import_seconds:.2f} recovery_seconds={recovery_seconds:.3f} "
        f"content_check_seconds={check_seconds:.2f}"
    )
    print(f"recovery_ratio_{label}={recovery_seconds / import_seconds:.4f}")
    print(f"content_check_ratio_{label}={check_seconds / import_seconds:.3f}")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    admin_url = make_url(os.environ.get("NTRADER_BENCH_POSTGRES_URL", DEFAULT_URL))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    work = Path(tempfile.mkdtemp(prefix="ntrader-bench-"))
    try:
        with fresh_database(admin, "ntrader_bench") as pg_url:
            csv, changed = work / "bars.csv", work / "bars_changed.csv"
            generate_csv(csv, rows)
            repriced(csv, changed)
            print(f"rows={rows}")
            measure(work, f"sqlite:///{work / 'warehouse.sqlite'}", csv, changed, "sqlite")
            measure(work, pg_url, csv, changed, "postgres")
    finally:
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""kill -9 at every phase of a re-import leaves both stores holding the same bars after the next open.

Each case imports ORCL, then re-imports it with every price changed (all 5,036 bars differ) in a
real subprocess that SIGKILLs itself at one phase, through the test-only NTRADER_FAULT_KILL_AT
hook. Opening the stores again must settle it: the catalog and the table hold the same bars, bar
by bar (a hash over time and OHLCV ticks, not counts), the old ones when the kill came before the
commit and the new ones after it, and no staging is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.catalog_publish import JOURNAL, pending
from ntrader_pipeline.adapters.market_data_store import MarketDataStore, series_lock
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.bar_stats import table_bar_ticks
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core import quality
from ntrader_pipeline.core.bars import BarSeries, Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import ORCL_DAILY

BAR_TYPE = "ORCL.XNAS-1-DAY-LAST-EXTERNAL"
DRIVER = """
import sys
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.csv_bars import read_bar_csv
catalog, url, csv = sys.argv[1:]
MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(url)).replace(read_bar_csv(csv, "ORCL"))
"""
# phase -> which bars both stores must hold once settled
PHASES = {
    "staging": "old",  # staged files half-written, no journal yet
    "staged": "old",  # staged and journaled, nothing else done
    "table-written": "old",  # rows replaced and publish marked, not committed
    "instrument-placed": "old",  # the symbol's instrument file replaced, the bars not yet swapped
    "backup-made": "old",  # the live bar folder moved aside, the new one not yet in (F1's instant)
    "before-commit": "old",  # everything swapped, the commit not sent
    "committed": "new",  # committed, journal and staging not yet removed
}


def repriced(path: Path) -> Path:
    """ORCL with every price 7 % higher (6 decimals, like the file): every bar differs."""
    header, *rows = ORCL_DAILY.read_text().splitlines()
    out = [header]
    for row in rows:
        date, *prices, volume = row.split(",")
        out.append(",".join([date, *(f"{Decimal(p) * Decimal('1.07'):.6f}" for p in prices), volume]))
    path.write_text("\n".join(out) + "\n")
    return path


def stored_content(store: MarketDataStore) -> tuple[str, str]:
    """The content hash of the catalog's ORCL bars and of the table's (6 decimals), side by side."""
    series = store.catalog.read("ORCL", Timeframe.DAILY)
    catalog = quality.bar_ticks(series.frame, series.price_precision)
    table = table_bar_ticks(store.warehouse, "ORCL", BAR_TYPE, series.price_precision)
    return quality.content_hash(catalog, 6), quality.content_hash(table, 6)


def expected_hash(csv: Path) -> str:
    return read_bar_csv(csv, "ORCL").content_hash()  # what a backtest on these bars records


def kill_import(catalog: Path, url: str, csv: Path, phase: str) -> None:
    env = {**os.environ, "NTRADER_FAULT_KILL_AT": phase}
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(catalog), url, str(csv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


@pytest.mark.slow  # a process killed at each of 14 phases
@pytest.mark.parametrize("phase", PHASES)
def test_a_kill_at_any_phase_leaves_equal_stores_after_the_next_open(tmp_path, warehouse_url, phase) -> None:
    catalog = tmp_path / "catalog"
    store = MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(warehouse_url))
    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    old = expected_hash(ORCL_DAILY)
    assert stored_content(store) == (old, old)
    new_file = repriced(tmp_path / "ORCL_repriced.csv")
    new = expected_hash(new_file)
    assert new != old

    kill_import(catalog, warehouse_url, new_file, phase)

    staging = catalog / ".staging" / BAR_TYPE
    left = list(staging.glob(f"*/{JOURNAL}")) if phase != "staging" else list(staging.glob("*/new/data"))
    assert left  # the kill did leave an unfinished publish (or, while staging, half-written files) behind
    reopened = MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(warehouse_url))  # the next command
    assert stored_content(reopened) == ((old, old) if PHASES[phase] == "old" else (new, new))
    assert not (catalog / ".staging").exists() or not any((catalog / ".staging").rglob("*"))

    if phase == "before-commit":  # the series then takes the next import normally
        reopened.replace(read_bar_csv(new_file, "ORCL"))
        assert stored_content(reopened) == (new, new)


@pytest.mark.slow  # a killed CLI process
def test_f1_a_killed_cli_import_is_settled_by_the_next_backtest(tmp_path, ntrader_home, monkeypatch) -> None:
    """F1 through the real commands: `ntrader data import-csv` killed with the catalog swapped and the
    table not yet committed; the next `ntrader backtest run` reads the catalog, which must first be
    put back on the bars the table holds."""
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()
    first = runner.invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"])
    assert first.exit_code == 0, first.output
    new_file = repriced(tmp_path / "ORCL_repriced.csv")

    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ntrader_pipeline.cli",
            "data",
            "import-csv",
            "--file",
            str(new_file),
            "--symbol",
            "ORCL",
        ],
        env={**os.environ, "NTRADER_FAULT_KILL_AT": "before-commit"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    catalog = ntrader_home.resolved_catalog_path
    swapped = BarCatalog(catalog, "XNAS").read("ORCL", Timeframe.DAILY)  # read bare: what F1 left behind
    assert swapped.content_hash() == expected_hash(new_file)

    backtest = runner.invoke(cli, ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL"])

    assert backtest.exit_code == 0, backtest.output
    store = MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(ntrader_home.resolved_warehouse_url))
    old = expected_hash(ORCL_DAILY)
    assert stored_content(store) == (old, old)
    assert not any((catalog / ".staging").rglob("*"))
    [run] = store.warehouse.list_runs(symbol="ORCL")
    assert run.bar_count == 5036 and run.data_hash == old  # the backtest ran on the bars the table holds


def test_opening_the_stores_leaves_a_publish_in_progress_alone(tmp_path, sqlite_url) -> None:
    """Another live process holds the series' lock while it publishes: an open elsewhere must not
    settle (or delete) its staging; once the lock is free, the next open does."""
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    store = MarketDataStore(catalog, Warehouse.open(sqlite_url))
    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    staged = catalog.stage(read_bar_csv(repriced(tmp_path / "ORCL_repriced.csv"), "ORCL"))  # a writer's staging

    with series_lock(catalog, BAR_TYPE):  # the writer is alive and holds its series
        assert MarketDataStore(BarCatalog(catalog.path, "XNAS"), store.warehouse).recover() == []
        assert (staged.publish.root / JOURNAL).is_file()

    MarketDataStore(BarCatalog(catalog.path, "XNAS"), store.warehouse)  # the next open settles it
    assert not staged.publish.root.exists()
    old = expected_hash(ORCL_DAILY)
    assert stored_content(store) == (old, old)


def test_a_write_that_fails_while_staging_leaves_no_staging(tmp_path, sqlite_url) -> None:
    """The catalog writer refuses a value it cannot encode (a negative price that skipped validation):
    the error surfaces, nothing is left under staging, and the stored bars are untouched."""
    store = MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), Warehouse.open(sqlite_url))
    good = read_bar_csv(ORCL_DAILY, "ORCL")
    store.replace(good)
    frame = good.frame.copy()
    frame.loc[100, "low"] = -1.0
    broken = BarSeries("ORCL", Timeframe.DAILY, frame, good.price_precision)

    with pytest.raises(ValueError, match="non-negative"):
        store.replace(broken)

    assert not any((store.catalog.path / ".staging").rglob("*"))
    old = expected_hash(ORCL_DAILY)
    assert stored_content(store) == (old, old)


def test_a_publish_an_earlier_version_left_half_done_is_settled_by_the_next_open(tmp_path, sqlite_url) -> None:
    """Earlier versions swapped the instrument folder with the bars folder, and their journals say
    so (no "instrument" entry). A catalog left mid-swap by one (bars and instrument swapped, the
    commit never came) still opens: the next open puts both folders back, and nothing is left."""
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    store = MarketDataStore(catalog, Warehouse.open(sqlite_url))
    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    staged = catalog.stage(read_bar_csv(repriced(tmp_path / "ORCL_repriced.csv"), "ORCL"))
    journal = staged.publish.root / JOURNAL
    record = json.loads(journal.read_text())
    record["folders"].append("data/equity/ORCL.XNAS")  # as an earlier version wrote it
    del record["instrument"]
    journal.write_text(json.dumps(record))
    legacy = pending(catalog.path, BAR_TYPE)[0][0]
    legacy.swap_in()  # both folders swapped, as the earlier version did before its commit

    reopened = MarketDataStore(BarCatalog(catalog.path, "XNAS"), store.warehouse)

    old = expected_hash(ORCL_DAILY)
    assert stored_content(reopened) == (old, old)
    assert reopened.catalog.instrument("ORCL").price_precision == 6
    assert not any((catalog.path / ".staging").rglob("*"))

"""Each series of a symbol keeps its own price precision: importing one never changes another.

A symbol's daily and one-minute series share one instrument in the catalog (``data/equity/ORCL.XNAS``)
but are stored at their own files' decimals (the daily Yahoo file carries 6, a minute file 2). Bars
are read at the precision their own Parquet files carry, so a 2-decimal minute import leaves the
daily bars, the backtests run on them and every later daily append exactly as they were.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from dagster import DagsterInstance
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore, series_lock
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.bars import BarSeries, Timeframe, bar_type_name, frame_from_nautilus_bars
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.definitions import build_definitions
from ntrader_pipeline_tests.support import AAPL_MINUTE, ORCL_DAILY
from ntrader_pipeline_tests.test_append_imports import latest_checks, split_orcl
from ntrader_pipeline_tests.test_checks_quality import checks_alone
from ntrader_pipeline_tests.test_crash_recovery import BAR_TYPE, expected_hash, kill_import, repriced, stored_content


def minute_file(folder: Path, symbol: str = "ORCL") -> Path:
    """The bundled one-minute file (2 decimals) under another symbol, without its bad bar (line 33)."""
    lines = AAPL_MINUTE.read_text().splitlines()
    path = folder / f"{symbol}_2024-01-02_1min.csv"
    path.write_text("\n".join(line for number, line in enumerate(lines, 1) if number != 33) + "\n")
    return path


def test_a_minute_import_leaves_the_daily_series_its_backtests_and_its_appends_exact(
    tmp_path, ntrader_home, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()
    history, recent = split_orcl(tmp_path)
    assert runner.invoke(cli, ["data", "import-csv", "--file", str(history), "--symbol", "ORCL"]).exit_code == 0
    run = runner.invoke(cli, ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL"])
    assert run.exit_code == 0, run.output
    run_id = run.stdout.strip().splitlines()[-1]

    minute = runner.invoke(cli, ["data", "import-csv", "--file", str(minute_file(tmp_path)), "--symbol", "ORCL"])
    assert minute.exit_code == 0, minute.output

    reproduced = runner.invoke(cli, ["backtest", "reproduce", run_id])
    assert reproduced.exit_code == 0, reproduced.output
    assert reproduced.output.startswith(f"run {run_id} reproduced:")
    catalog = BarCatalog(ntrader_home.resolved_catalog_path, "XNAS")
    daily = catalog.read("ORCL", Timeframe.DAILY)
    assert daily.price_precision == 6
    assert daily.content_hash() == read_bar_csv(history, "ORCL").content_hash()  # not rounded to 2 decimals
    assert catalog.read("ORCL", Timeframe.MIN1).price_precision == 2

    appended = runner.invoke(cli, ["data", "import-csv", "--file", str(recent), "--symbol", "ORCL"])
    assert appended.exit_code == 0, appended.output
    checks = latest_checks(DagsterInstance.get(), "ORCL")
    assert checks[("bar_catalog", "content_matches")] and checks[("market_data", "content_matches")], checks
    whole = catalog.read("ORCL", Timeframe.DAILY)
    assert whole.price_precision == 6 and len(whole) == 5036
    assert whole.content_hash() == read_bar_csv(ORCL_DAILY, "ORCL").content_hash()

    # NautilusTrader's own reader still opens the catalog and reads each series at its decimals
    nautilus = ParquetDataCatalog(str(ntrader_home.resolved_catalog_path))
    assert str(nautilus.bars(["ORCL.XNAS-1-DAY-LAST-EXTERNAL"])[0].open) == "2.179012"
    assert str(nautilus.bars(["ORCL.XNAS-1-MINUTE-LAST-EXTERNAL"])[0].open) == "185.25"


def test_two_series_of_one_symbol_publishing_at_once_keep_each_other_whole(tmp_path, sqlite_url) -> None:
    """The daily and minute series of ORCL are written under different series locks, yet share the
    instrument folder. A daily re-import dies just before its commit while a minute import publishes
    (the daily writer's lock still held, as while it lives); the next open rolls the daily one back.
    That must leave the minute publish whole: its bars, its precision and the instrument it placed."""
    catalog = tmp_path / "catalog"
    warehouse = Warehouse.open(sqlite_url)
    MarketDataStore(BarCatalog(catalog, "XNAS"), warehouse).replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    kill_import(catalog, sqlite_url, repriced(tmp_path / "ORCL_repriced.csv"), "before-commit")

    with series_lock(BarCatalog(catalog, "XNAS"), BAR_TYPE):  # the daily writer, as if still alive
        minute = MarketDataStore(BarCatalog(catalog, "XNAS"), warehouse)
        minute.replace(read_bar_csv(minute_file(tmp_path), "ORCL"))
    reopened = MarketDataStore(BarCatalog(catalog, "XNAS"), warehouse)  # settles the daily publish

    old = expected_hash(ORCL_DAILY)
    assert stored_content(reopened) == (old, old)
    bars = reopened.catalog.read("ORCL", Timeframe.MIN1)
    assert (
        bars.price_precision == 2 and bars.content_hash() == read_bar_csv(minute_file(tmp_path), "ORCL").content_hash()
    )
    assert reopened.catalog.instrument("ORCL").price_precision == 2  # the minute publish's, the last committed
    assert not any((catalog / ".staging").rglob("*"))


def test_a_daily_series_an_earlier_version_rounded_is_flagged_and_restored_by_importing_its_file_again(
    ntrader_home, monkeypatch
) -> None:
    """Before each series kept its precision, a daily append after a minute import rewrote the old
    daily bars in the catalog rounded to 2 decimals while the table kept them exact. The checks
    flag such a catalog, and importing the daily file again stores it exactly in both stores."""
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()
    assert runner.invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"]).exit_code == 0
    catalog = BarCatalog(ntrader_home.resolved_catalog_path, "XNAS")
    exact = catalog.read("ORCL", Timeframe.DAILY)
    rounded = exact.frame.copy()
    rounded[["open", "high", "low", "close"]] = rounded[["open", "high", "low", "close"]].round(2)
    catalog.write(BarSeries("ORCL", Timeframe.DAILY, rounded, 2))  # what the earlier version left behind
    defs, instance = build_definitions(ntrader_home), DagsterInstance.get()
    assert not checks_alone(defs, instance, "ORCL")[("bar_catalog", "content_matches")].passed

    again = runner.invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"])

    assert again.exit_code == 0, again.output
    assert checks_alone(defs, instance, "ORCL")[("bar_catalog", "content_matches")].passed
    restored = catalog.read("ORCL", Timeframe.DAILY)
    assert restored.price_precision == 6 and restored.content_hash() == exact.content_hash()


WRITER = """
import sys
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.csv_bars import read_bar_csv
catalog, url, csv, times = sys.argv[1:]
series = read_bar_csv(csv, "ORCL")
for _ in range(int(times)):
    MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(url)).replace(series)
"""


def test_daily_and_minute_imports_of_one_symbol_running_at_once_both_land_whole(tmp_path, sqlite_url) -> None:
    """Two processes publish ORCL's daily and one-minute series again and again at the same time,
    each under its own series lock: every publish succeeds, and each series ends whole at its own
    precision, readable by ntrader and by NautilusTrader's own catalog."""
    catalog = tmp_path / "catalog"
    daily = tmp_path / "ORCL_daily.csv"
    daily.write_text("\n".join(ORCL_DAILY.read_text().splitlines()[:1001]) + "\n")
    files = {Timeframe.DAILY: daily, Timeframe.MIN1: minute_file(tmp_path)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(catalog), sqlite_url, str(path), "10"], stderr=subprocess.PIPE, text=True
        )
        for path in files.values()
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=600)
        assert writer.returncode == 0, errors[-2000:]

    store = MarketDataStore(BarCatalog(catalog, "XNAS"), Warehouse.open(sqlite_url))
    for timeframe, path in files.items():
        expected = read_bar_csv(path, "ORCL")
        stored = store.catalog.read("ORCL", timeframe)
        assert (stored.price_precision, stored.content_hash()) == (expected.price_precision, expected.content_hash())
    assert store.catalog.instrument("ORCL").price_precision in (2, 6)
    nautilus = ParquetDataCatalog(str(catalog))
    for timeframe, path in files.items():
        bars = nautilus.bars([bar_type_name("ORCL", "XNAS", timeframe)])
        assert frame_from_nautilus_bars(bars).equals(read_bar_csv(path, "ORCL").frame)
    assert not any((catalog / ".staging").rglob("*"))

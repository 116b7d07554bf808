"""Exchange calendars per series, through the CLI on real files: a London daily series imported on
XLON passes its checks and backtests on London sessions; the same file on XNYS shows its gaps in
the CLI; a symbol keeps its calendar; ``fresh`` does not fail historical imports."""

from __future__ import annotations

from pathlib import Path

import exchange_calendars
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, DagsterInstance, RunsFilter

from ntrader_pipeline.adapters.catalog import BarCatalog, CalendarMismatchError
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import calendar_timezone
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.fills import open_times_ns
from ntrader_pipeline.core.metrics import daily_returns, period_returns
from ntrader_pipeline.definitions import INGEST_JOB
from ntrader_pipeline_tests.support import ORCL_DAILY
from ntrader_pipeline_tests.test_object_storage import open_store as s3_store

SESSIONS = 400  # enough for the SMA crossover (30 bars) to trade


def london_file(folder: Path) -> Path:
    """ORCL's first daily rows re-dated onto consecutive London (XLON) sessions from 2012-01-03:
    real prices, and dates that are sessions in London but include US holidays (and miss UK ones)."""
    sessions = exchange_calendars.get_calendar("XLON").sessions_in_range("2012-01-03", "2016-01-01")[:SESSIONS]
    rows = pd.read_csv(ORCL_DAILY).head(SESSIONS)
    rows["Date"] = [d.date().isoformat() for d in sessions]
    path = folder / "VOD_daily.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.fixture
def run(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args))


def latest_checks(symbol: str) -> dict[str, object]:
    """The bar_catalog check evaluations of the newest import run of ``symbol``, by check name."""
    with DagsterInstance.get() as instance:
        [latest] = instance.get_runs(RunsFilter(job_name=INGEST_JOB, tags={"dagster/partition": symbol}), limit=1)
        records = instance.get_records_for_run(latest.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records.records]
    return {e.check_name: e for e in evaluations if e.asset_key.to_user_string() == "bar_catalog"}


def test_a_london_series_imports_on_xlon_passes_its_checks_and_backtests_on_london_sessions(
    run, tmp_path, ntrader_home
):
    source = london_file(tmp_path)

    imported = run("data", "import-csv", "--file", str(source), "--symbol", "VOD", "--calendar", "XLON")

    assert imported.exit_code == 0, imported.output
    assert f"Imported {SESSIONS} bars of VOD.XNAS-1-DAY-LAST-EXTERNAL on XLON" in imported.stdout
    checks = latest_checks("VOD")
    assert checks["calendar_gaps"].passed, checks["calendar_gaps"].metadata
    assert checks["calendar_gaps"].metadata["summary"].value == f"a bar for each of {SESSIONS} XLON sessions"
    fresh = checks["fresh"]  # a file from 2012-2013 is history, not a feed that fell behind
    assert fresh.passed and fresh.metadata["summary"].value.startswith("not applicable: VOD's bars come from")
    series = BarCatalog(ntrader_home.catalog_location, ntrader_home.venue).read("VOD", Timeframe.DAILY)
    assert series.calendar == "XLON"
    first_close = pd.Timestamp(int(series.frame["ts_event"].iloc[0]), tz="UTC").tz_convert("Europe/London")
    assert first_close.isoformat() == "2012-01-03T16:30:00+00:00"  # the London close, not New York's
    first_open = pd.Timestamp(int(open_times_ns(series)[0]), tz="UTC").tz_convert("Europe/London")
    assert first_open.isoformat() == "2012-01-03T08:00:00+00:00"  # where a next_open order fills

    backtest = run("backtest", "run", "--strategy", "sma_crossover", "--symbol", "VOD")

    assert backtest.exit_code == 0, backtest.output
    [record] = Warehouse.open(ntrader_home.resolved_warehouse_url).list_runs(symbol="VOD")
    assert record.versions["calendar"] == "XLON"  # what `reproduce` compares against
    assert record.bar_count == SESSIONS


def test_the_same_london_file_on_xnys_reports_its_gaps_in_the_cli(run, tmp_path):
    source = london_file(tmp_path)

    imported = run("data", "import-csv", "--file", str(source), "--symbol", "VOD")

    assert imported.exit_code == 1
    message = imported.stderr
    assert "VOD: stored, but blocking data checks failed (bar_catalog: calendar_gaps)" in message
    # UK sessions on US holidays (2012-01-16, Martin Luther King Day), US sessions on UK holidays (2012-04-09).
    assert "bar_catalog calendar_gaps: against the XNYS calendar:" in message
    assert "missing examples: 2012-04-09" in message
    assert "non session examples: 2012-01-16" in message
    checks = latest_checks("VOD")
    assert not checks["calendar_gaps"].passed
    assert checks["calendar_gaps"].metadata["calendar"].value == "XNYS"


def test_an_unknown_calendar_is_refused_with_the_list_of_known_ones(run, tmp_path):
    result = run("data", "import-csv", "--file", str(london_file(tmp_path)), "--symbol", "VOD", "--calendar", "XXXX")

    assert result.exit_code == 2
    assert "unknown exchange calendar 'XXXX'; known calendars:" in result.stderr
    assert "XLON" in result.stderr and "XNYS" in result.stderr


def test_a_symbol_keeps_its_calendar_an_append_on_another_is_refused(run, tmp_path, ntrader_home):
    source = london_file(tmp_path)
    assert run("data", "import-csv", "--file", str(source), "--symbol", "VOD", "--calendar", "XLON").exit_code == 0

    other = run("data", "import-csv", "--file", str(source), "--symbol", "VOD", "--calendar", "XNYS")

    assert other.exit_code == 1
    assert "VOD is stored on the XLON calendar; refusing bars on XNYS" in other.stderr
    again = run("data", "import-csv", "--file", str(source), "--symbol", "VOD")  # no --calendar: the stored one
    assert again.exit_code == 0, again.output
    assert "on XLON" in again.stdout
    series = BarCatalog(ntrader_home.catalog_location, ntrader_home.venue).read("VOD", Timeframe.DAILY)
    assert (series.calendar, len(series)) == ("XLON", SESSIONS)


def test_days_and_months_of_the_metrics_are_the_series_exchange_time():
    """Wellington closes at 16:45 local, 03:45 UTC: the evening before in New York. Its sessions of
    31 January and 1 February fall in two months in New Zealand, in one in New York."""
    closes = pd.to_datetime(["2024-01-30T03:45Z", "2024-01-31T03:45Z", "2024-02-01T03:45Z"], utc=True)
    curve = pd.DataFrame({"timestamp": closes, "equity": [100.0, 110.0, 132.0]})
    zone = calendar_timezone("XNZE")

    returns = daily_returns(curve, zone)

    assert [d.isoformat() for d in returns.index.tz_convert(zone).date] == ["2024-01-31", "2024-02-01"]
    assert period_returns(returns, "month", zone).round(12).tolist() == [0.1, 0.2]
    assert period_returns(returns, "month").round(12).tolist() == [0.32]  # New York time: all January


def test_bars_on_another_calendar_never_merge_into_a_stored_series(tmp_path, sqlite_url):
    """What an IB fetch (always XNYS) into a London series meets: refused, both stores untouched."""
    warehouse = Warehouse.open(sqlite_url)
    store = MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), warehouse)
    london = read_bar_csv(london_file(tmp_path), "VOD", calendar="XLON")
    store.replace(london)

    with pytest.raises(CalendarMismatchError, match="stored on the XLON calendar; these bars are on XNYS"):
        store.replace(read_bar_csv(london_file(tmp_path), "VOD"))

    kept = store.catalog.read("VOD", Timeframe.DAILY)
    assert kept.calendar == "XLON" and kept.frame.equals(london.frame)
    assert warehouse.count_bars("VOD", "VOD.XNAS-1-DAY-LAST-EXTERNAL") == SESSIONS


def test_a_series_keeps_its_calendar_on_object_storage(s3_bucket, sqlite_url, tmp_path):
    """The calendar is in the bar files themselves, so an S3 catalog keeps it."""
    store = s3_store(f"s3://{s3_bucket['bucket']}/catalog", s3_bucket, sqlite_url)
    store.replace(read_bar_csv(london_file(tmp_path), "VOD", calendar="XLON"))

    assert store.catalog.read("VOD", Timeframe.DAILY).calendar == "XLON"
    assert store.catalog.calendar_of("VOD") == "XLON"
    assert store.catalog.calendar_of("NONE") is None

"""Data-quality rules (pure) and the asset checks that apply them after every real import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    Definitions,
    evaluate_automation_conditions,
)
from sqlalchemy import text

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core import quality
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.definitions import INGEST_JOB, build_definitions
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import AAPL_MINUTE, NVDA_DAILY, ORCL_DAILY, STRATEGY_CONFIGS

NY = "America/New_York"


def ns(local: str) -> int:
    return pd.Timestamp(local, tz=NY).tz_convert("UTC").value


def minute_bars(opens_local: list[str]) -> np.ndarray:
    """Close stamps (UTC ns) of one-minute bars opening at the given New York times."""
    return np.array([ns(t) + Timeframe.MIN1.nanos for t in opens_local], dtype=np.int64)


# --- pure rules ----------------------------------------------------------------------------------


def test_ohlc_rule_names_each_bad_bar() -> None:
    frame = pd.DataFrame(
        {
            "ts_event": [ns("2024-01-02 16:00"), ns("2024-01-03 16:00"), ns("2024-01-04 16:00")],
            "open": [10.0, 11.0, 12.0],
            "high": [10.5, 10.9, 12.5],  # the second bar's high is below its open
            "low": [9.5, 10.5, 12.6],  # the third bar's low is above its open
            "close": [10.2, 10.8, 12.4],
            "volume": [100.0, 100.0, 100.0],
        }
    )
    finding = quality.ohlc_consistency(frame)
    assert not finding.passed
    assert finding.details["bad_bars"] == 2
    assert finding.details["examples"][0].startswith("2024-01-03T21:00:00+00:00 high=10.9")


def test_duplicates_are_counted_per_extra_bar() -> None:
    finding = quality.duplicate_bars(np.array([3, 1, 2, 2, 3, 3], dtype=np.int64))
    assert not finding.passed
    assert finding.details["duplicate_bars"] == 3
    assert quality.duplicate_bars(np.array([1, 2, 3])).passed


def test_daily_gaps_follow_the_exchange_calendar() -> None:
    # January 2024 by hand: weekdays except New Year's Day (1st) and Martin Luther King Day (15th).
    holidays = {"2024-01-01", "2024-01-15"}
    sessions = [d for d in pd.bdate_range("2024-01-02", "2024-01-31").strftime("%Y-%m-%d") if d not in holidays]
    assert len(sessions) == 21
    days = [d for d in sessions if d != "2024-01-10"] + ["2024-01-15"]
    ts = np.sort(np.array([ns(f"{d} 16:00") for d in days], dtype=np.int64))

    finding = quality.calendar_gaps(ts, Timeframe.DAILY)

    assert not finding.passed
    assert finding.details["sessions_expected"] == 21
    assert finding.details["missing_examples"] == ["2024-01-10"]
    assert finding.details["non_session_examples"] == ["2024-01-15"]
    complete = np.array([ns(f"{d} 16:00") for d in sessions], dtype=np.int64)
    assert quality.calendar_gaps(complete, Timeframe.DAILY).passed


def test_intraday_gaps_are_missing_minutes_inside_sessions_only() -> None:
    opens = [f"2024-01-02 09:{m:02d}" for m in range(30, 60)] + [f"2024-01-02 10:{m:02d}" for m in range(0, 21)]
    full = minute_bars(opens)
    assert quality.calendar_gaps(full, Timeframe.MIN1).passed  # 09:30-10:20, nothing after is expected

    gappy = minute_bars([t for t in opens if t != "2024-01-02 10:01"] + ["2024-01-02 08:00"])
    finding = quality.calendar_gaps(np.sort(gappy), Timeframe.MIN1)
    assert not finding.passed
    assert finding.details["missing_examples"] == ["2024-01-02T15:01:00+00:00"]
    assert finding.details["bars_outside_regular_hours"] == 1  # pre-market is counted, not failed


def test_early_close_sessions_expect_no_bars_after_the_close() -> None:
    # The day after Thanksgiving 2024 closed at 13:00; a hand-made 16:00 close would see 180 gaps.
    opens = [f"2024-11-29 12:{m}" for m in range(50, 60)] + [f"2024-12-02 09:{m}" for m in range(30, 36)]
    finding = quality.calendar_gaps(minute_bars(opens), Timeframe.MIN1)
    assert finding.passed
    assert finding.details["slots_expected"] == 16


@pytest.mark.parametrize(
    ("now", "fresh", "behind"),
    [
        ("2024-01-02 17:00", True, 0),  # after Tuesday's close, the last bar is Tuesday's
        ("2024-01-03 12:00", True, 0),  # Wednesday's session is not complete yet
        ("2024-01-04 12:00", False, 1),  # Wednesday completed without a bar
        ("2024-01-08 12:00", False, 3),  # Wed, Thu, Fri missing; the weekend is no session
    ],
)
def test_staleness_counts_completed_sessions_after_the_last_bar(now: str, fresh: bool, behind: int) -> None:
    finding = quality.staleness(ns("2024-01-02 16:00"), pd.Timestamp(now, tz=NY))
    assert finding.passed is fresh
    assert finding.details["sessions_behind"] == behind


def test_row_counts_must_agree_everywhere() -> None:
    assert quality.row_counts(10, 10, 10, 25, 25).passed
    assert not quality.row_counts(10, 10, 9, 25, 24).passed
    assert not quality.row_counts(10, 10, 10, 25, 24).passed


# --- the asset checks, run by real imports ----------------------------------------------------


def settings_for(tmp_path: Path, warehouse_url: str | None = None) -> Settings:
    return Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, warehouse_url=warehouse_url)


def head(source: Path, rows: int, drop_row: int | None = None) -> str:
    """The header and first ``rows`` bars of a bundled file, optionally without one of them."""
    lines = source.read_text().splitlines()[: rows + 1]
    if drop_row is not None:
        del lines[drop_row]
    return "\n".join(lines) + "\n"


def import_file(defs: Definitions, instance: DagsterInstance, path: Path, symbol: str):
    instance.add_dynamic_partitions("symbol", [symbol])
    return defs.resolve_job_def(INGEST_JOB).execute_in_process(
        run_config={"ops": {"csv_bars": {"config": {"file": str(path)}}}},
        instance=instance,
        partition_key=symbol,
        raise_on_error=False,
    )


def evaluations(execution) -> dict[tuple[str, str], object]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in execution.get_asset_check_evaluations()}


def test_failed_error_check_blocks_backtests_of_that_symbol_only(tmp_path: Path) -> None:
    defs = build_definitions(settings_for(tmp_path))
    instance = DagsterInstance.ephemeral()
    clean = tmp_path / "NVDA.csv"
    clean.write_text(head(NVDA_DAILY, 120))
    gappy = tmp_path / "ORCL.csv"
    lines = head(ORCL_DAILY, 120).splitlines()
    missing_day = lines[50].split(",")[0]
    gappy.write_text(head(ORCL_DAILY, 120, drop_row=50))

    before = evaluate_automation_conditions(defs=defs, instance=instance)  # the sensor's tick before the imports
    good = import_file(defs, instance, clean, "NVDA")
    bad = import_file(defs, instance, gappy, "ORCL")

    assert good.success
    assert all(e.passed for key, e in evaluations(good).items() if key[1] != "fresh")
    assert evaluations(good)[("bar_catalog", "fresh")].severity == AssetCheckSeverity.WARN
    counts = evaluations(good)[("bar_catalog", "row_count_matches_source")].metadata
    assert [counts[k].value for k in ("source_rows", "bars_written", "catalog_bars", "table_rows")] == [120] * 4
    assert not bad.success  # the bars were written, then the blocking check failed the run
    assert bad.asset_materializations_for_node("csv_bars")
    gaps = evaluations(bad)[("bar_catalog", "calendar_gaps")]
    assert not gaps.passed and gaps.severity == AssetCheckSeverity.ERROR
    assert gaps.metadata["missing_examples"].value == [missing_day]

    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    every_strategy_on_nvda = {f"{path.stem}|NVDA" for path in STRATEGY_CONFIGS.glob("*.yaml")}
    assert len(every_strategy_on_nvda) >= 1
    assert after.get_requested_partitions(AssetKey("backtest")) == every_strategy_on_nvda
    assert after.get_requested_partitions(AssetKey("backtest_report")) == every_strategy_on_nvda


def nvda_imported(tmp_path: Path, warehouse_url: str):
    """60 NVDA sessions imported through the job: the settings, definitions, instance and file."""
    settings = settings_for(tmp_path, warehouse_url)
    defs = build_definitions(settings)
    instance = DagsterInstance.ephemeral()
    source = tmp_path / "NVDA.csv"
    source.write_text(head(NVDA_DAILY, 60))
    assert import_file(defs, instance, source, "NVDA").success
    return settings, defs, instance, source


def checks_alone(defs, instance: DagsterInstance, symbol: str) -> dict:
    """The ingest job's checks without its assets (the UI's "Execute checks") on what is stored now."""
    ingest = defs.resolve_job_def(INGEST_JOB)
    checks = ingest.get_subset(
        asset_selection=set(), asset_check_selection=set(ingest.asset_layer.asset_graph.asset_check_keys)
    )
    return evaluations(checks.execute_in_process(instance=instance, partition_key=symbol, raise_on_error=False))


def test_checks_catch_stores_that_drift_apart(tmp_path: Path, warehouse_url: str) -> None:
    settings, defs, instance, source = nvda_imported(tmp_path, warehouse_url)

    warehouse = Warehouse.open(settings.resolved_warehouse_url)
    with warehouse.transaction() as connection:  # someone edits the table behind the pipeline's back
        connection.execute(text("DELETE FROM market_data WHERE timestamp = (SELECT MIN(timestamp) FROM market_data)"))
        connection.execute(
            text("UPDATE market_data SET high = '0.5' WHERE timestamp = (SELECT MAX(timestamp) FROM market_data)")
        )
    found = checks_alone(defs, instance, "NVDA")
    counts = found[("market_data", "row_count_matches_source")]
    assert not counts.passed
    assert counts.metadata["table_rows"].value == 59 and counts.metadata["catalog_bars"].value == 60
    assert not found[("market_data", "ohlc_consistent")].passed
    assert found[("market_data", "ohlc_consistent")].metadata["bad_rows"].value == 1
    assert found[("bar_catalog", "ohlc_consistent")].passed  # the catalog still holds the good bars


def test_import_csv_says_that_bars_were_stored_but_checks_block_them_and_why(tmp_path, ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    gappy = tmp_path / "ORCL.csv"
    gappy.write_text(head(ORCL_DAILY, 120, drop_row=50))

    result = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(gappy), "--symbol", "ORCL"])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: ORCL: stored, but blocking data checks failed (bar_catalog: calendar_gaps); "
        "its backtests will not run until this is fixed",
        "error:   bar_catalog calendar_gaps: against the XNYS calendar: 1 sessions without a bar, "
        "0 bars on non-session days; missing examples: 1995-03-14",
    ]
    assert [row["bars"] for row in Warehouse.open(ntrader_home.resolved_warehouse_url).bar_inventory("ORCL")] == [119]


def test_leaderboard_is_requested_after_backtests_finish(tmp_path: Path) -> None:
    defs = build_definitions(settings_for(tmp_path))
    instance = DagsterInstance.ephemeral()
    source = tmp_path / "NVDA.csv"
    source.write_text(head(NVDA_DAILY, 120))
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert import_file(defs, instance, source, "NVDA").success

    while_backtests_pending = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert not while_backtests_pending.get_requested_partitions(AssetKey("leaderboard"))
    for key in while_backtests_pending.get_requested_partitions(AssetKey("backtest")):
        result = defs.resolve_job_def("backtest_job").execute_in_process(instance=instance, partition_key=key)
        assert result.success
    done = evaluate_automation_conditions(defs=defs, instance=instance, cursor=while_backtests_pending.cursor)
    assert done.get_num_requested(AssetKey("leaderboard")) == 1


def test_new_minute_bars_do_not_request_daily_backtests(tmp_path: Path) -> None:
    """Every shipped strategy trades daily bars: one-minute bars of a new symbol give them nothing to run on."""
    defs = build_definitions(settings_for(tmp_path))
    instance = DagsterInstance.ephemeral()
    minutes = tmp_path / "AAPL.csv"
    minutes.write_text(head(AAPL_MINUTE, 30))  # the first half hour, before the file's bad bar
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert import_file(defs, instance, minutes, "AAPL").success
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert not after.get_requested_partitions(AssetKey("backtest"))

    daily = tmp_path / "NVDA.csv"
    daily.write_text(head(NVDA_DAILY, 60))
    assert import_file(defs, instance, daily, "NVDA").success
    later = evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor)
    assert {key.split("|")[1] for key in later.get_requested_partitions(AssetKey("backtest"))} == {"NVDA"}


def test_content_check_fails_when_counts_agree_but_prices_differ(tmp_path: Path, warehouse_url: str) -> None:
    """The F1 shape: both stores hold 60 bars, but the table has one close a cent off."""
    settings, defs, instance, source = nvda_imported(tmp_path, warehouse_url)
    assert all(
        e.passed
        for k, e in evaluations(import_file(defs, instance, source, "NVDA")).items()
        if k[1] == "content_matches"
    )

    warehouse = Warehouse.open(settings.resolved_warehouse_url)
    with warehouse.transaction() as connection:
        last = connection.execute(text("SELECT MAX(timestamp), MAX(close) FROM market_data")).one()
        connection.execute(text("UPDATE market_data SET close = close + 0.01 WHERE timestamp = :t"), {"t": last[0]})
    found = checks_alone(defs, instance, "NVDA")

    assert found[("market_data", "row_count_matches_source")].passed  # counts cannot see it
    for asset in ("bar_catalog", "market_data"):
        content = found[(asset, "content_matches")]
        assert not content.passed and content.severity == AssetCheckSeverity.ERROR
        assert content.metadata["bars_differing"].value == 1
        assert content.metadata["catalog_sha256"].value != content.metadata["table_sha256"].value
        [example] = content.metadata["examples"].value
        assert " close: catalog " in example and example.startswith("1999-04-19T20:00:00+00:00")

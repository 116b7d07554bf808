"""The daily workflow: a file holding only the newest sessions is appended to a long series.

The CLI and inbox imports must pass every check on such an append, and the symbol's automatic
backtests must then be requested, not blocked (the IB fetch: ``ibkr/test_dagster.py``).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    RunsFilter,
    evaluate_automation_conditions,
)

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.definitions import INGEST_JOB, build_definitions
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS
from ntrader_pipeline_tests.test_sensor_inbox import after_run, drop, run_request, tick

ORCL_ROWS = 5036
LAST_SESSIONS = 60  # 2014-10-07 .. 2014-12-31


def split_orcl(folder: Path) -> tuple[Path, Path]:
    """ORCL up to 2014-10-06, and a second file with only the last 60 sessions."""
    lines = ORCL_DAILY.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    assert rows[-LAST_SESSIONS - 1].startswith("2014-10-06")
    history, recent = folder / "ORCL_history.csv", folder / "ORCL_recent.csv"
    history.write_text("\n".join([header, *rows[:-LAST_SESSIONS]]) + "\n")
    recent.write_text("\n".join([header, *rows[-LAST_SESSIONS:]]) + "\n")
    return history, recent


def backtests_requested(defs, instance: DagsterInstance, cursor) -> set[str]:
    return evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor).get_requested_partitions(
        AssetKey("backtest")
    )


def every_strategy_on(symbol: str) -> set[str]:
    return {f"{path.stem}|{symbol}" for path in STRATEGY_CONFIGS.glob("*.yaml")}


def test_cli_append_of_the_last_sessions_passes_every_check(tmp_path, ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    history, recent = split_orcl(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["data", "import-csv", "--file", str(history), "--symbol", "ORCL"]).exit_code == 0
    defs = build_definitions(ntrader_home)
    instance = DagsterInstance.get()
    before = evaluate_automation_conditions(defs=defs, instance=instance)
    for key in before.get_requested_partitions(AssetKey("backtest")):  # as the daemon would
        assert defs.resolve_job_def("backtest_job").execute_in_process(instance=instance, partition_key=key).success
    settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)

    result = runner.invoke(cli, ["data", "import-csv", "--file", str(recent), "--symbol", "ORCL"])

    assert result.exit_code == 0, result.output
    assert "Imported 60 bars" in result.stdout and "5036 stored in all" in result.stdout
    assert "2014-10-07T20:00:00+00:00 -> 2014-12-31T21:00:00+00:00" in result.stdout  # the file's range
    checks = latest_checks(instance, "ORCL")
    assert checks[("bar_catalog", "row_count_matches_source")]
    assert all(passed for (_, name), passed in checks.items() if name != "fresh"), checks
    assert backtests_requested(defs, instance, settled.cursor) == every_strategy_on("ORCL")


def latest_checks(instance: DagsterInstance, symbol: str) -> dict[tuple[str, str], bool]:
    """Whether each check of the newest import run of ``symbol`` passed."""
    [run] = instance.get_runs(RunsFilter(job_name=INGEST_JOB, tags={"dagster/partition": symbol}), limit=1)
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    return {(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations}


def test_inbox_append_of_the_last_sessions_passes_every_check_and_is_archived(tmp_path):
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, inbox_dir=tmp_path / "inbox")
    defs = build_definitions(settings)
    instance = DagsterInstance.ephemeral()
    history, recent = split_orcl(tmp_path)
    before = evaluate_automation_conditions(defs=defs, instance=instance)
    cursor = None
    for source, age in ((history, 120), (recent, 60)):
        drop(settings, source, source.name, age_seconds=age)
        result = tick(defs, instance, cursor)
        cursor = result.cursor
        [request] = result.run_requests
        execution = run_request(defs, instance, result, request)
        assert execution.success, source.name
        after_run(defs, instance, execution)
        assert (settings.resolved_inbox_dir / "archive" / source.name).exists()

    assert all(passed for (_, name), passed in latest_checks(instance, "ORCL").items() if name != "fresh")
    [row] = Warehouse.open(settings.resolved_warehouse_url).bar_inventory("ORCL")
    assert row["bars"] == ORCL_ROWS
    assert backtests_requested(defs, instance, before.cursor) == every_strategy_on("ORCL")

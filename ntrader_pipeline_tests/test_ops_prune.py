"""``ntrader ops prune`` and ``ntrader ops keep`` on a real home: old Dagster runs and equity
curves go, everything a user keeps stays (the newest result per strategy × symbol, pinned runs,
runs holding an asset's latest materialization or check)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, MultiPartitionKey, RunsFilter

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline_tests.support import ORCL_DAILY


@pytest.fixture
def run(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output + result.stderr
        return result.output

    return invoke


def backtest(run) -> str:
    return run("backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL").splitlines()[-1]


def test_prune_deletes_old_runs_and_curves_and_keeps_what_a_user_keeps(run, ntrader_home):
    run("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
    pinned, superseded, newest = backtest(run), backtest(run), backtest(run)
    other = run("backtest", "run", "--strategy", "mean_reversion", "--symbol", "ORCL").splitlines()[-1]
    warehouse = Warehouse.open(ntrader_home.resolved_warehouse_url)
    instance = DagsterInstance.get()
    dagster_run = {r: warehouse.get_run(r).dagster_run_id for r in (pinned, superseded, newest, other)}
    assert f"kept: Dagster run {dagster_run[pinned]}" in run("ops", "keep", pinned)
    before = {r.dagster_run.run_id for r in instance.get_run_records()}
    curve = {r: len(warehouse.get_equity_curve(r)) for r in dagster_run}
    assert set(curve.values()) == {5036}  # one row per bar

    dry = " ".join(run("ops", "prune", "--older-than", "0d", "--dry-run").split())

    assert "would delete 1 Dagster runs finished before" in dry
    assert "would delete the equity curves of 1 stored runs (5,036 rows)" in dry
    assert {r.dagster_run.run_id for r in instance.get_run_records()} == before  # a dry run changes nothing
    assert len(warehouse.get_equity_curve(superseded)) == 5036

    done = " ".join(run("ops", "prune", "--older-than", "0d").split())

    assert "deleted 1 Dagster runs" in done and "deleted the equity curves of 1 stored runs (5,036 rows)" in done
    assert "1 tagged ntrader/keep" in done and "2 the newest of its strategy × symbol" in done
    assert {r.dagster_run.run_id for r in instance.get_run_records()} == before - {dagster_run[superseded]}
    assert instance.all_logs(dagster_run[superseded]) == []  # its event log went with it
    assert len(warehouse.get_equity_curve(superseded)) == 0
    assert {r: len(warehouse.get_equity_curve(r)) for r in (pinned, newest, other)} == dict.fromkeys(
        (pinned, newest, other), 5036
    )
    # The result itself stays listed, with its metrics; the asset's latest materialization is the newest run's.
    listed = json.loads(run("backtest", "list-results", "--format", "json"))
    assert {r["run_id"] for r in listed} == {pinned, superseded, newest, other}
    latest = instance.get_latest_materialization_event(AssetKey("backtest"))
    assert latest.run_id == dagster_run[other]
    key = MultiPartitionKey({"strategy": "sma_crossover", "symbol": "ORCL"})
    [record] = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("backtest"), asset_partitions=[str(key)]), limit=1
    ).records
    assert record.run_id == dagster_run[newest]
    # Its reports are rebuilt without the curve, but for the two drawn from it, which say why.
    assert run("report", "summary", superseded).startswith(f"Backtest {superseded}: sma_crossover on ORCL")
    tearsheet = CliRunner().invoke(cli, ["report", "generate", "--backtest-id", superseded, "--format", "html"])
    assert tearsheet.exit_code == 1
    assert f"error: the equity curve of run {superseded} was pruned (ntrader ops prune)" in tearsheet.output
    # Nothing left to prune: a second pass deletes nothing.
    again = " ".join(run("ops", "prune", "--older-than", "0d").split())
    assert "deleted 0 Dagster runs" in again and "equity curves of 0 stored runs" in again
    [kept] = instance.get_run_records(RunsFilter(tags={"ntrader/keep": "true"}))
    assert kept.dagster_run.run_id == dagster_run[pinned]


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.scale.yaml", ".ntrader/dagster/dagster.yaml"])
def test_every_instance_file_purges_sensor_and_schedule_ticks(path):
    """Dagster's daemon purges ticks by the instance file's ``retention:``; read here by Dagster's own rules."""
    import yaml
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.instance.config import get_default_tick_retention_settings, get_tick_retention_settings
    from dagster._core.scheduler.instigation import TickStatus

    from ntrader_pipeline_tests.support import REPO_ROOT

    retention = yaml.safe_load((REPO_ROOT / path).read_text())["retention"]
    kinds = {"schedule": InstigatorType.SCHEDULE, "sensor": InstigatorType.SENSOR}
    days = {
        name: get_tick_retention_settings(retention[name], get_default_tick_retention_settings(kind))
        for name, kind in kinds.items()
    }
    assert days["schedule"] == dict.fromkeys(TickStatus, 90)
    assert days["sensor"] == {
        TickStatus.SKIPPED: 1,
        TickStatus.SUCCESS: 30,
        TickStatus.FAILURE: 30,
        TickStatus.STARTED: 30,
    }

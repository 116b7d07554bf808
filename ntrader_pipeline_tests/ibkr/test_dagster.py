"""The IBKR asset, its check, pool, retry policy and schedule, materialized for real."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Backoff,
    DagsterEventType,
    DagsterInstance,
    build_schedule_context,
    instance_for_test,
    materialize,
)
from sqlalchemy import delete

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.adapters.warehouse import market_data
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.definitions import build_definitions
from ntrader_pipeline.defs.ibkr.assets import (
    IBKR_JOB,
    IbkrGateway,
    ibkr_bars,
    ibkr_bars_checks,
)
from ntrader_pipeline.defs.ibkr.definitions import ibkr_daily_schedule
from ntrader_pipeline.defs.partitions import symbol_partitions
from ntrader_pipeline.defs.resources import PipelineStores

from .conftest import fast_settings

RUN_CONFIG = {"ops": {"ibkr_bars": {"config": {"start": "2013-01-01", "end": "2013-06-30"}}}}


def resources(settings, port, universe="ORCL,NVDA"):
    gateway = IbkrGateway.from_settings(fast_settings(port, universe=universe))
    return {"stores": PipelineStores.from_settings(settings), "ibkr": gateway}


def test_ingestion_fetches_the_universe_and_passes_its_check(ntrader_home, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    with instance_for_test() as instance:
        result = materialize(
            [ibkr_bars, ibkr_bars_checks],
            resources=resources(ntrader_home, gateway.port),
            run_config=RUN_CONFIG,
            instance=instance,
        )
        assert result.success
        metadata = result.asset_materializations_for_node("ibkr_bars")[0].metadata
        assert metadata["bars_written"].value == 2 * 124  # H1 2013 sessions, both symbols
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert set(checks) == {
            "ohlc_consistent",
            "no_duplicate_bars",
            "row_count_matches_source",
            "calendar_gaps",
            "fresh",
        }
        assert all(checks[name].passed for name in checks if name != "fresh")  # 2013 bars are stale today
        assert not checks["fresh"].passed and checks["fresh"].severity.value == "WARN"
        counts = checks["row_count_matches_source"].metadata["symbols"].value
        assert counts["NVDA"] == "124 bars in the catalog, 124 in market_data"
        # Fetched symbols become symbol partitions, ready for backtests.
        assert set(instance.get_dynamic_partitions(symbol_partitions.name)) == {"ORCL", "NVDA"}

        # The check fails once the two stores disagree.
        stores = PipelineStores.from_settings(ntrader_home)
        with stores.warehouse().transaction() as connection:
            connection.execute(delete(market_data).where(market_data.c.symbol == "NVDA"))
        rerun = materialize(
            [ibkr_bars, ibkr_bars_checks],
            resources=resources(ntrader_home, gateway.port),
            instance=instance,
            selection=AssetSelection.checks(ibkr_bars_checks),
            raise_on_error=False,
        )
        check = next(c for c in rerun.get_asset_check_evaluations() if c.check_name == "row_count_matches_source")
        assert not check.passed
        assert check.metadata["problems"].value == ["NVDA: 124 bars in the catalog, 0 in market_data"]
    catalog = PipelineStores.from_settings(ntrader_home).catalog()
    assert len(catalog.read("ORCL", Timeframe.DAILY)) == 124


def test_unknown_symbol_fails_the_run_without_retries(ntrader_home, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    with instance_for_test() as instance:
        result = materialize(
            [ibkr_bars],
            resources=resources(ntrader_home, gateway.port, universe="ORCL,NOSUCH"),
            run_config=RUN_CONFIG,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        events = [e.event_type for e in result.all_events]
        assert DagsterEventType.STEP_UP_FOR_RETRY not in events
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
        assert "NOSUCH: IB error 200" in failure.event_specific_data.error.message
    # The good symbol of the run was stored all the same.
    assert len(PipelineStores.from_settings(ntrader_home).catalog().read("ORCL", Timeframe.DAILY)) == 124


def test_asset_uses_the_ibkr_pool_and_a_backoff_retry_policy():
    assert ibkr_bars.op.pool == "ibkr"
    policy = ibkr_bars.op.retry_policy
    assert policy.max_retries == 3 and policy.delay and policy.backoff == Backoff.EXPONENTIAL


def test_daily_schedule_runs_after_the_us_close_and_is_on_only_with_a_universe(ntrader_home):
    off = ibkr_daily_schedule(IbkrSettings(universe=""))
    on = ibkr_daily_schedule(IbkrSettings(universe="AAPL"))
    assert (on.cron_schedule, on.execution_timezone) == ("30 17 * * 1-5", "America/New_York")
    assert off.default_status.value == "STOPPED" and on.default_status.value == "RUNNING"
    with DagsterInstance.ephemeral() as instance:
        data = on.evaluate_tick(build_schedule_context(instance=instance))
    [request] = data.run_requests
    assert request.job_name in (None, IBKR_JOB)


def test_code_location_includes_ibkr_next_to_csv(ntrader_home):
    defs = build_definitions(ntrader_home)
    repository = defs.get_repository_def()
    assert repository.has_job(IBKR_JOB) and repository.has_job("import_csv_job")
    assert {"ibkr", "stores"} <= set(repository.get_top_level_resources())


def test_ib_fetch_of_newer_sessions_appends_and_passes_every_check(ntrader_home, start_gateway, clean_bars):
    """The IB path shares core.quality's rules: a second fetch of later sessions is an append."""
    gateway = start_gateway(clean_bars)
    with instance_for_test() as instance:
        for start, end in (("2013-01-01", "2013-03-31"), ("2013-04-01", "2013-06-30")):
            result = materialize(
                [ibkr_bars, ibkr_bars_checks],
                resources=resources(ntrader_home, gateway.port, "ORCL"),
                instance=instance,
                run_config={"ops": {"ibkr_bars": {"config": {"start": start, "end": end}}}},
            )
            assert result.success
            checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
            assert all(checks[name].passed for name in checks if name != "fresh"), start
        metadata = result.asset_materializations_for_node("ibkr_bars")[0].metadata
        assert metadata["bars_written"].value == 64  # the 2013 Q2 sessions only
    [row] = PipelineStores.from_settings(ntrader_home).warehouse().bar_inventory("ORCL")
    assert row["bars"] == 124 and row["source"] == "ibkr"


def test_a_fetch_that_stored_bars_requests_that_symbols_backtests_and_no_others(
    ntrader_home, start_gateway, clean_bars, monkeypatch
):
    """IB bars trigger backtests as CSV bars do: ``ibkr_backtests_sensor`` sees the fetch (here
    ``ntrader data fetch``) succeed, and requests every daily strategy on the symbol it stored
    bars for; not NVDA, whose bars came from a file and did not change; nothing for a fetch that
    stored nothing. The requests run."""
    from click.testing import CliRunner
    from dagster import DagsterRunStatus, RunsFilter, build_run_status_sensor_context

    from ntrader_pipeline.cli.main import cli
    from ntrader_pipeline.definitions import BACKTEST_JOB
    from ntrader_pipeline_tests.support import NVDA_DAILY

    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    for key, value in {"NTRADER_IB_REQUEST_TIMEOUT": "30", "NTRADER_IB_RETRY_BACKOFF": "0.05"}.items():
        monkeypatch.setenv(key, value)
    gateway = start_gateway(clean_bars)
    runner = CliRunner()
    assert runner.invoke(cli, ["data", "import-csv", "--file", str(NVDA_DAILY), "--symbol", "NVDA"]).exit_code == 0
    fetch = ["data", "fetch", "--instruments", "ORCL", "--start", "2013-01-01", "--end", "2013-06-30"]
    defs = build_definitions(ntrader_home)
    sensor = defs.resolve_sensor_def("ibkr_backtests_sensor")
    instance = DagsterInstance.get()

    def requests_after_fetch() -> list:
        result = runner.invoke(cli, [*fetch, "--port", str(gateway.port)])
        assert result.exit_code == 0, result.output
        [record] = instance.get_run_records(RunsFilter(job_name=IBKR_JOB), limit=1)
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        # the run's RUN_SUCCESS event, as the daemon hands it to the sensor
        [success] = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.RUN_SUCCESS)
        context = build_run_status_sensor_context(
            "ibkr_backtests_sensor",
            success.dagster_event,
            instance,
            record.dagster_run,
            repository_def=defs.get_repository_def(),
        )
        return list(sensor(context) or [])

    requests = requests_after_fetch()

    keys = sorted(r.partition_key for r in requests)
    assert keys == ["mean_reversion|ORCL", "momentum|ORCL", "sma_crossover|ORCL"]
    for request in requests:
        run = defs.resolve_job_def(BACKTEST_JOB).execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags
        )
        assert run.success
    assert requests_after_fetch() == []  # up to date: nothing stored, nothing to re-run

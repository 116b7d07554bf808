"""A daily strategy × a symbol with only minute bars is a partition that could only fail: it is not
applicable, never a failure, whether the CLI's backfill or a run over it (the UI's way) meets it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.definitions import BACKTEST_JOB, build_definitions
from ntrader_pipeline.defs.backtests.assets import BACKTEST_ASSET_KEYS
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import AAPL_MINUTE, ORCL_DAILY


@pytest.fixture
def run(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args))


def test_a_daily_strategy_on_a_minute_only_symbol_is_not_applicable_not_failed(run):
    assert run("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL").exit_code == 0
    minute = run("data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL", "--on-invalid", "skip")
    assert minute.exit_code == 0, minute.output

    backfill = run("backtest", "backfill", "--strategy", "sma_crossover", "--start", "2010-01-01", "--jobs", "1")

    assert backfill.exit_code == 0, backfill.output
    assert "sma_crossover|AAPL: not applicable: AAPL has no DAILY bars (not run)" in backfill.stdout
    assert "1 partitions" in backfill.stdout and "failed" not in backfill.output
    one = run("backtest", "run", "--strategy", "sma_crossover", "--symbol", "AAPL")  # asked for by name
    assert one.exit_code == 1
    assert one.stderr == (
        "error: not applicable: AAPL has no DAILY bars, only 1MIN; import DAILY bars or run with --timeframe 1MIN\n"
    )

    # A run over that partition anyway (a backfill of every partition from the UI) succeeds, leaves
    # it unmaterialized and says why on it.
    with DagsterInstance.get() as instance:
        result = (
            build_definitions(get_settings())
            .resolve_job_def(BACKTEST_JOB)
            .execute_in_process(instance=instance, partition_key="sma_crossover|AAPL", raise_on_error=False)
        )
        assert result.success
        assert result.get_asset_materialization_events() == []
        observed = instance.fetch_observations(AssetKey("backtest"), limit=5).records
        [observation] = [r.asset_observation for r in observed]
        assert observation.partition == "sma_crossover|AAPL"
        assert observation.metadata["not_applicable"].value == "not applicable: AAPL has no DAILY bars"

        # A batch over both symbols (a UI backfill's run of a partition range): ORCL is backtested,
        # AAPL is not applicable, and the run succeeds.
        batch = (
            build_definitions(get_settings())
            .resolve_job_def(BACKTEST_JOB)
            .execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: "sma_crossover|ORCL",
                    ASSET_PARTITION_RANGE_END_TAG: "sma_crossover|AAPL",
                },
                run_config={"ops": {"backtest": {"config": {"start": "2010-01-01"}}}},
            )
        )
        assert batch.success
        materialized = {(e.asset_key.to_user_string(), e.partition) for e in batch.get_asset_materialization_events()}
        assert materialized == {(asset, "sma_crossover|ORCL") for asset in BACKTEST_ASSET_KEYS}

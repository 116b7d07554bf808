"""The backtests domain's definitions: the per-partition backtest assets, their job, and the
sensor that re-runs them after an IB fetch (it lives with what it targets)."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Definitions, MultiPartitionsDefinition, define_asset_job

from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.backtests.assets import build_backtest_assets
from ntrader_pipeline.defs.backtests.automation import ibkr_backtests_sensor, on_new_bars
from ntrader_pipeline.defs.ibkr.assets import ibkr_job
from ntrader_pipeline.settings import Settings

BACKTEST_JOB = "backtest_job"


def build_backtest_definitions(
    settings: Settings, partitions: MultiPartitionsDefinition, timeframes: Mapping[str, Timeframe]
) -> Definitions:
    """``timeframes``: each strategy's interval, which decides which symbols' bars re-run it."""
    assets = build_backtest_assets(
        partitions, on_new_bars(settings.catalog_location, settings.venue, timeframes), settings.backtests_per_run
    )
    backtest_job = define_asset_job(BACKTEST_JOB, selection=assets)
    return Definitions(
        assets=assets,
        jobs=[backtest_job],
        sensors=[ibkr_backtests_sensor(ibkr_job, backtest_job, timeframes, settings.automation_sensor_interval)],
    )

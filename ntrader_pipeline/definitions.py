"""The Dagster code location: ``dagster dev`` (via workspace.yaml) and the CLI both load ``defs``."""

from __future__ import annotations

from dagster import Definitions, define_asset_job, in_process_executor

from ntrader_pipeline.core.strategy_specs import load_specs
from ntrader_pipeline.defs.analytics.assets import leaderboard
from ntrader_pipeline.defs.backtests.assets import build_backtest_assets
from ntrader_pipeline.defs.backtests.automation import ibkr_backtests_sensor, on_new_bars
from ntrader_pipeline.defs.ibkr.assets import build_ibkr_definitions, ibkr_job
from ntrader_pipeline.defs.market_data.assets import csv_bars, raw_bar_files
from ntrader_pipeline.defs.market_data.checks import stored_bar_checks
from ntrader_pipeline.defs.market_data.sensors import backtests_refresh_sensor, build_inbox_sensors
from ntrader_pipeline.defs.partitions import backtest_partitions
from ntrader_pipeline.defs.research.assets import build_research_assets
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import Settings, get_settings

INGEST_JOB = "import_csv_job"
BACKTEST_JOB = "backtest_job"
SWEEP_JOB = "sweep_job"
SWEEP_SET_JOB = "sweep_set_job"
WALK_FORWARD_JOB = "walk_forward_job"


def build_definitions(settings: Settings) -> Definitions:
    # pydantic alone: checking each ``config:`` block against its class would import NautilusTrader
    # (seconds, ~300 MB) into every UI, daemon and run process; each run checks its own file.
    specs = load_specs(settings.strategy_configs_dir, check_config=False)
    if not specs:
        raise ValueError(f"no strategy YAML files in {settings.strategy_configs_dir}")
    partitions = backtest_partitions(list(specs))
    stores = PipelineStores.from_settings(settings)
    timeframes = {name: spec.backtest.timeframe for name, spec in specs.items()}
    backtest_assets = build_backtest_assets(
        partitions, on_new_bars(stores.catalog_path, stores.venue, timeframes), settings.backtests_per_run
    )
    sweep_set, sweep_results, walk_forward = build_research_assets(partitions)
    backtest_job = define_asset_job(BACKTEST_JOB, selection=backtest_assets)
    base = Definitions(
        assets=[raw_bar_files, csv_bars, *backtest_assets, leaderboard, sweep_set, sweep_results, walk_forward],
        asset_checks=[stored_bar_checks],
        sensors=[
            *build_inbox_sensors(settings, INGEST_JOB),
            backtests_refresh_sensor([*backtest_assets, leaderboard], settings.automation_sensor_interval),
            ibkr_backtests_sensor(ibkr_job, backtest_job, timeframes, settings.automation_sensor_interval),
        ],
        jobs=[
            define_asset_job(INGEST_JOB, selection=[csv_bars]),
            backtest_job,
            define_asset_job(SWEEP_JOB, selection=[sweep_results]),
            define_asset_job(SWEEP_SET_JOB, selection=[sweep_set]),
            define_asset_job(WALK_FORWARD_JOB, selection=[walk_forward]),
        ],
        resources={"stores": stores},
        # A run launched by the UI, a sensor or a backfill runs all its steps in its one process:
        # the default multiprocess executor would pay the ~5 s import of Dagster and
        # NautilusTrader again for every step of a sub-second backtest.
        executor=in_process_executor,
    )
    return Definitions.merge(base, build_ibkr_definitions())


defs = build_definitions(get_settings())

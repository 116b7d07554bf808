"""The Dagster code location: ``dagster dev`` (via workspace.yaml) and the CLI both load ``defs``."""

from __future__ import annotations

from dagster import Definitions, define_asset_job

from ntrader_pipeline.core.strategy_specs import load_specs
from ntrader_pipeline.defs.backtests.assets import build_backtest_assets
from ntrader_pipeline.defs.ibkr.assets import build_ibkr_definitions
from ntrader_pipeline.defs.market_data.assets import csv_bars, raw_bar_files
from ntrader_pipeline.defs.partitions import backtest_partitions, symbol_partitions
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import Settings, get_settings

INGEST_JOB = "import_csv_job"
BACKTEST_JOB = "backtest_job"


def build_definitions(settings: Settings) -> Definitions:
    specs = load_specs(settings.strategy_configs_dir)
    if not specs:
        raise ValueError(f"no strategy YAML files in {settings.strategy_configs_dir}")
    partitions = backtest_partitions(list(specs))
    backtest_assets = build_backtest_assets(partitions)
    base = Definitions(
        assets=[raw_bar_files, csv_bars, *backtest_assets],
        jobs=[
            define_asset_job(INGEST_JOB, selection=[csv_bars], partitions_def=symbol_partitions),
            define_asset_job(BACKTEST_JOB, selection=backtest_assets, partitions_def=partitions),
        ],
        resources={"stores": PipelineStores.from_settings(settings)},
    )
    return Definitions.merge(base, build_ibkr_definitions())


defs = build_definitions(get_settings())

"""The market-data domain's definitions: CSV import, the stored bars' checks and the inbox sensors."""

from __future__ import annotations

from dagster import Definitions, define_asset_job

from ntrader_pipeline.defs.market_data.assets import csv_bars, raw_bar_files
from ntrader_pipeline.defs.market_data.checks import stored_bar_checks
from ntrader_pipeline.defs.market_data.sensors import build_inbox_sensors
from ntrader_pipeline.settings import Settings

INGEST_JOB = "import_csv_job"


def build_market_data_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[raw_bar_files, csv_bars],
        asset_checks=[stored_bar_checks],
        sensors=build_inbox_sensors(settings, INGEST_JOB),
        jobs=[define_asset_job(INGEST_JOB, selection=[csv_bars])],
    )

"""The IBKR domain's definitions: the fetch asset, its checks, its job and its daily schedule."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings, get_ibkr_settings
from ntrader_pipeline.defs.ibkr.assets import IbkrGateway, ibkr_bars, ibkr_bars_checks, ibkr_job


def ibkr_daily_schedule(ibkr_settings: IbkrSettings) -> ScheduleDefinition:
    """Weekdays at 17:30 New York, after the close; switched on only when a universe is configured."""
    return ScheduleDefinition(
        name="ibkr_daily_schedule",
        job=ibkr_job,
        cron_schedule="30 17 * * 1-5",
        execution_timezone="America/New_York",
        default_status=DefaultScheduleStatus.RUNNING if ibkr_settings.symbols else DefaultScheduleStatus.STOPPED,
        description="Fetch the IBKR universe's missing bars after the US close.",
    )


def build_ibkr_definitions(ibkr_settings: IbkrSettings | None = None) -> Definitions:
    """IBKR asset, check, job and schedule; the root ``definitions.py`` merges them."""
    ibkr_settings = ibkr_settings or get_ibkr_settings()
    return Definitions(
        assets=[ibkr_bars],
        asset_checks=[ibkr_bars_checks],
        jobs=[ibkr_job],
        schedules=[ibkr_daily_schedule(ibkr_settings)],
        resources={"ibkr": IbkrGateway.from_settings(ibkr_settings)},
    )

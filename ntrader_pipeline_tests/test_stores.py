"""One way to the stores: built from settings, opened once per run by the Dagster resource."""

from __future__ import annotations

import logging

from dagster import asset, instance_for_test, materialize

from ntrader_pipeline.adapters.warehouse.retry import Retries
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import get_settings

RECOVERY_LOGGER = "ntrader_pipeline.adapters.market_data_store"


@asset
def reads_the_catalog_per_symbol(stores: PipelineStores) -> None:
    """What ``ibkr_bars`` and the research assets do: reach the catalog again for every symbol."""
    for _symbol in ("ORCL", "NVDA", "AAPL"):
        stores.catalog()
        stores.warehouse()


def _recoveries(caplog) -> int:
    return sum(1 for r in caplog.records if r.name == RECOVERY_LOGGER and "unsettled publishes" in r.getMessage())


def test_a_run_settles_the_catalogs_publishes_once_however_often_it_opens_it(ntrader_home, caplog):
    caplog.set_level(logging.DEBUG, logger=RECOVERY_LOGGER)
    resources = {"stores": PipelineStores.from_settings(ntrader_home)}
    with instance_for_test() as instance:
        assert materialize([reads_the_catalog_per_symbol], instance=instance, resources=resources).success
        assert _recoveries(caplog) == 1
        # the next run is a fresh look: a writer killed in between is settled by it
        assert materialize([reads_the_catalog_per_symbol], instance=instance, resources=resources).success
        assert _recoveries(caplog) == 2


def test_the_database_retry_settings_reach_every_warehouse_the_stores_open(ntrader_home, monkeypatch):
    monkeypatch.setenv("NTRADER_DB_RETRIES", "2")
    monkeypatch.setenv("NTRADER_DB_RETRY_BACKOFF", "0.25")
    settings = get_settings()

    assert settings.stores().warehouse().retries == Retries(2, 0.25)
    assert PipelineStores.from_settings(settings).warehouse().retries == Retries(2, 0.25)
    assert ntrader_home.stores().warehouse().retries == Retries()  # the defaults: 5 retries from 0.5 s

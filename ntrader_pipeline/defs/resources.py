"""The one resource every asset uses: the stores, resolved from ntrader settings.

It wraps one ``adapters.stores.Stores`` per run (``setup_for_execution``), so a run opens the
warehouse and the catalog once, and settles a killed writer's publish once, however many symbols
or steps it has.

Secrets reach Dagster by name only. Dagster keeps a resource's configured values in the code
location's snapshot (which the UI shows) and in every run's job snapshot; an ``EnvVar`` is kept
there as the variable's name and read from the environment when a run starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit  # not SQLAlchemy's make_url: the code location loads without SQLAlchemy

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import PrivateAttr

from ntrader_pipeline.adapters.object_store import ObjectStore, S3Options
from ntrader_pipeline.adapters.stores import Stores
from ntrader_pipeline.core.paths import DEFAULT_MAX_CSV_BYTES, confined
from ntrader_pipeline.settings import Settings

if TYPE_CHECKING:  # the stores import NautilusTrader, pandas and SQLAlchemy: only once a run uses them
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.market_data_store import MarketDataStore
    from ntrader_pipeline.adapters.warehouse import Warehouse

WAREHOUSE_URL_VAR = "NTRADER_WAREHOUSE_URL"
S3_ACCESS_KEY_ID_VAR = "NTRADER_S3_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY_VAR = "NTRADER_S3_SECRET_ACCESS_KEY"


def by_name(variable: str, value: str, *, secret: bool = True) -> str:
    """``EnvVar(variable)`` when the environment holds ``value``, so Dagster records only the name.

    A secret given any other way (in code) is refused instead of being written into Dagster's storage.
    """
    if os.environ.get(variable) == value:
        return EnvVar(variable)
    if secret:
        raise ValueError(
            f"{variable} holds a secret: set it in the environment (or .env), where Dagster reads it by name"
        )
    return value


def resolved(value: str | None) -> str | None:
    """A field's value; outside a run (the CLI, tests) an ``EnvVar`` is still unresolved."""
    return value.get_value() if isinstance(value, EnvVar) else value


def secret_by_name(variable: str, value: str | None) -> str | None:
    return None if value is None else by_name(variable, value)


class PipelineStores(ConfigurableResource):
    """Where bars, results and reports live (see ``ntrader_pipeline.settings``)."""

    warehouse_url: str  # the embedded SQLite URL, else EnvVar(WAREHOUSE_URL_VAR): it may hold a password
    catalog_path: str  # a folder, or s3://bucket/prefix
    reports_dir: str  # a folder, or s3://bucket/prefix
    strategy_configs_dir: str
    venue: str
    strategy_module_allowlist: list[str] = []
    max_csv_bytes: int = DEFAULT_MAX_CSV_BYTES
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # EnvVar(S3_ACCESS_KEY_ID_VAR) when set
    s3_secret_access_key: str | None = None  # EnvVar(S3_SECRET_ACCESS_KEY_VAR) when set
    research_processes: int | None = None  # a sweep's or walk-forward's workers; None: one per core
    db_retries: int = 5
    db_retry_backoff: float = 0.5
    _stores: Stores | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineStores:
        url = settings.warehouse_url
        return cls(
            warehouse_url=by_name(WAREHOUSE_URL_VAR, url, secret=urlsplit(url).password is not None)
            if url
            else settings.resolved_warehouse_url,
            catalog_path=settings.catalog_location,
            reports_dir=settings.reports_location,
            strategy_configs_dir=str(Path(settings.strategy_configs_dir).resolve()),
            venue=settings.venue,
            strategy_module_allowlist=settings.strategy_module_allowlist,
            max_csv_bytes=settings.max_csv_bytes,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
            s3_access_key_id=secret_by_name(S3_ACCESS_KEY_ID_VAR, settings.s3_access_key_id),
            s3_secret_access_key=secret_by_name(S3_SECRET_ACCESS_KEY_VAR, settings.s3_secret_access_key),
            research_processes=settings.research_processes,
            db_retries=settings.db_retries,
            db_retry_backoff=settings.db_retry_backoff,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._stores = self._open()  # one per run: a fresh run settles publishes a crash left since

    def stores(self) -> Stores:
        """This run's stores (outside a run, built on first use and kept by this object)."""
        if self._stores is None:
            self._stores = self._open()
        return self._stores

    def _open(self) -> Stores:
        url = resolved(self.warehouse_url)
        if url is None:
            raise ValueError(f"{WAREHOUSE_URL_VAR} is not set in the environment of this process")
        return Stores(
            url,
            self.catalog_path,
            self.reports_dir,
            self.venue,
            self.s3(),
            self.db_retries,
            self.db_retry_backoff,
        )

    def s3(self) -> S3Options:
        """How to reach the ``s3://`` locations (keys read from the environment only now)."""
        return S3Options(
            self.s3_endpoint_url, self.s3_region, resolved(self.s3_access_key_id), resolved(self.s3_secret_access_key)
        )

    def catalog(self) -> BarCatalog:
        """The catalog, once any publish a killed writer left is settled (see ``market_data_store``)."""
        return self.stores().catalog()

    def warehouse(self) -> Warehouse:
        return self.stores().warehouse()

    def market_data(self) -> MarketDataStore:
        return self.stores().market_data()

    def reports(self) -> ObjectStore:
        """The reports destination (a folder or an ``s3://`` prefix)."""
        return self.stores().reports()

    def reports_dir_for(self, run_id: str) -> str:
        """Where one run's reports go: a folder, or an ``s3://`` URL (what the UI shows)."""
        return self.reports().url(run_id)

    def strategy_file(self, name: str) -> Path:
        return confined(self.strategy_configs_dir, f"{name}.yaml")

"""One way to the stores: the catalog, the warehouse and the reports of one deployment.

The CLI, the Python API, reproduction, the sensors and the Dagster resource all reach them through
a ``Stores`` (``Settings.stores()`` builds it), so every reader opens the catalog the same way: once
any publish a killed import left is settled (``MarketDataStore`` recovers on opening), and only
once per ``Stores``, not once per use. The Dagster resource holds one ``Stores`` per run.

Nothing heavy is imported here: NautilusTrader, pandas and SQLAlchemy load when a store is first
used, so a code location that only builds the object stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ntrader_pipeline.adapters.object_store import ObjectStore, S3Options, open_store

if TYPE_CHECKING:
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.market_data_store import MarketDataStore
    from ntrader_pipeline.adapters.warehouse import Warehouse


class Stores:
    """Where bars, results and reports live; each store is opened when first used, then kept."""

    def __init__(
        self,
        warehouse_url: str,
        catalog_location: str,
        reports_location: str,
        venue: str,
        s3: S3Options | None = None,
        db_retries: int = 5,
        db_retry_backoff: float = 0.5,
    ):
        self.warehouse_url = warehouse_url
        self.catalog_location = catalog_location  # a folder, or s3://bucket/prefix
        self.reports_location = reports_location  # a folder, or s3://bucket/prefix
        self.venue = venue
        self.s3 = s3 or S3Options()
        self.db_retries = db_retries
        self.db_retry_backoff = db_retry_backoff
        self._warehouse: Warehouse | None = None
        self._market_data: dict[str, MarketDataStore] = {}

    def warehouse(self) -> Warehouse:
        """The migrated warehouse (one per URL and retry policy per process, see ``Warehouse.open``)."""
        if self._warehouse is None:
            from ntrader_pipeline.adapters.warehouse import Warehouse
            from ntrader_pipeline.adapters.warehouse.retry import Retries

            self._warehouse = Warehouse.open(self.warehouse_url, Retries(self.db_retries, self.db_retry_backoff))
        return self._warehouse

    def market_data(self, venue: str | None = None) -> MarketDataStore:
        """Both bar stores, for ``venue`` (default: the settings' venue); the first call per venue
        settles any publish a killed writer left."""
        venue = venue or self.venue
        if venue not in self._market_data:
            from ntrader_pipeline.adapters.catalog import BarCatalog
            from ntrader_pipeline.adapters.market_data_store import MarketDataStore

            catalog = BarCatalog(self.catalog_location, venue, self.s3)
            self._market_data[venue] = MarketDataStore(catalog, self.warehouse())
        return self._market_data[venue]

    def catalog(self, venue: str | None = None) -> BarCatalog:
        """The catalog, once any publish a killed writer left is settled (see ``market_data_store``)."""
        return self.market_data(venue).catalog

    def reports(self) -> ObjectStore:
        """The reports destination (a folder or an ``s3://`` prefix)."""
        return open_store(self.reports_location, self.s3)

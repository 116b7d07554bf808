"""The one resource every asset uses: the stores, resolved from ntrader settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from ntrader_pipeline.settings import Settings

if TYPE_CHECKING:  # the stores import NautilusTrader, pandas and SQLAlchemy: only once a run uses them
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.market_data_store import MarketDataStore
    from ntrader_pipeline.adapters.warehouse import Warehouse


class PipelineStores(ConfigurableResource):
    """Where bars, results and reports live (see ``ntrader_pipeline.settings``)."""

    warehouse_url: str
    catalog_path: str
    reports_dir: str
    strategy_configs_dir: str
    venue: str
    strategy_module_allowlist: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineStores:
        return cls(
            warehouse_url=settings.resolved_warehouse_url,
            catalog_path=str(settings.resolved_catalog_path),
            reports_dir=str(settings.resolved_reports_dir),
            strategy_configs_dir=str(Path(settings.strategy_configs_dir).resolve()),
            venue=settings.venue,
            strategy_module_allowlist=settings.strategy_module_allowlist,
        )

    def catalog(self) -> BarCatalog:
        from ntrader_pipeline.adapters.catalog import BarCatalog

        return BarCatalog(self.catalog_path, self.venue)

    def warehouse(self) -> Warehouse:
        from ntrader_pipeline.adapters.warehouse import Warehouse

        return Warehouse.open(self.warehouse_url)

    def market_data(self) -> MarketDataStore:
        from ntrader_pipeline.adapters.market_data_store import MarketDataStore

        return MarketDataStore(self.catalog(), self.warehouse())

    def reports_dir_for(self, run_id: str) -> Path:
        return Path(self.reports_dir) / run_id

    def strategy_file(self, name: str) -> Path:
        return Path(self.strategy_configs_dir) / f"{name}.yaml"

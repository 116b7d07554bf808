"""The one resource every asset uses: the stores, resolved from ntrader settings."""

from pathlib import Path

from dagster import ConfigurableResource

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.paths import DEFAULT_MAX_CSV_BYTES, confined
from ntrader_pipeline.settings import Settings


class PipelineStores(ConfigurableResource):
    """Where bars, results and reports live (see ``ntrader_pipeline.settings``)."""

    warehouse_url: str
    catalog_path: str
    reports_dir: str
    strategy_configs_dir: str
    venue: str
    strategy_module_allowlist: list[str] = []
    max_csv_bytes: int = DEFAULT_MAX_CSV_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> "PipelineStores":
        return cls(
            warehouse_url=settings.resolved_warehouse_url,
            catalog_path=str(settings.resolved_catalog_path),
            reports_dir=str(settings.resolved_reports_dir),
            strategy_configs_dir=str(Path(settings.strategy_configs_dir).resolve()),
            venue=settings.venue,
            strategy_module_allowlist=settings.strategy_module_allowlist,
            max_csv_bytes=settings.max_csv_bytes,
        )

    def catalog(self) -> BarCatalog:
        return BarCatalog(self.catalog_path, self.venue)

    def warehouse(self) -> Warehouse:
        return Warehouse.open(self.warehouse_url)

    def market_data(self) -> MarketDataStore:
        return MarketDataStore(self.catalog(), self.warehouse())

    def reports_dir_for(self, run_id: str) -> Path:
        return confined(self.reports_dir, run_id)

    def strategy_file(self, name: str) -> Path:
        return confined(self.strategy_configs_dir, f"{name}.yaml")

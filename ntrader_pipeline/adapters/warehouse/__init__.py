"""The SQL warehouse: the ``Warehouse`` class (``store``), its tables and its one error type."""

from ntrader_pipeline.adapters.warehouse.retry import WarehouseError
from ntrader_pipeline.adapters.warehouse.store import Warehouse
from ntrader_pipeline.adapters.warehouse.tables import (
    backtest_metrics,
    backtest_runs,
    equity_curve,
    market_data,
    metadata,
    store_publishes,
    trades,
)

__all__ = [
    "Warehouse",
    "WarehouseError",
    "metadata",
    "market_data",
    "backtest_runs",
    "backtest_metrics",
    "trades",
    "equity_curve",
    "store_publishes",
]

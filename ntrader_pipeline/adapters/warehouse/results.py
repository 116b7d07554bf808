"""A stored backtest run read back whole: what reports, comparisons and reproductions start from."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.ledger import LEDGER_COLUMNS
from ntrader_pipeline.core.metric_registry import Metrics
from ntrader_pipeline.core.records import RunRecord


class UnknownRunError(LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no backtest run with id {run_id!r} (see `ntrader backtest list-results`)")


@dataclass(frozen=True)
class StoredRun:
    record: RunRecord
    metrics: Metrics
    ledger: pd.DataFrame  # LEDGER_COLUMNS, exact decimals, UTC timestamps
    curve: pd.DataFrame  # timestamp, equity, drawdown


def load_run(warehouse: Warehouse, run_id: str) -> StoredRun:
    """Everything stored about ``run_id``; raises UnknownRunError when there is no such run."""
    record = warehouse.get_run(run_id)
    if record is None:
        raise UnknownRunError(run_id)
    ledger = pd.DataFrame(warehouse.get_trades(run_id), columns=["run_id", *LEDGER_COLUMNS])[LEDGER_COLUMNS]
    for column in ("entry_time", "exit_time"):
        ledger[column] = pd.to_datetime(ledger[column], utc=True).dt.as_unit("ns")  # SQLite: naive UTC
    if len(ledger):
        ledger["holding_seconds"] = ledger["holding_seconds"].astype("int64")
    ledger = ledger.sort_values(["entry_time", "position_id"], kind="stable").reset_index(drop=True)
    return StoredRun(record, warehouse.get_metrics(run_id), ledger, warehouse.get_equity_curve(run_id))

"""Re-run a stored backtest from its stored inputs and say exactly what, if anything, changed.

The inputs are the run's record: the strategy spec as it was (not today's YAML), the catalog bars
of its symbol and interval cut to its first and last bar, and the package versions it ran with.
The re-run is compared with the stored run on the data hash, the versions and every metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.results import load_run
from ntrader_pipeline.core.backtest import FILL_CONVENTION, run_backtest, versions, window
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import EXCHANGE
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import EXCHANGE_TZ, benchmark_for, compute_metrics, metric_differences
from ntrader_pipeline.core.strategy_specs import StrategySpec
from ntrader_pipeline.settings import get_settings


@dataclass
class Reproduction:
    run_id: str
    stored_hash: str
    fresh_hash: str | None
    version_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    metric_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    compared: int = 0
    problem: str | None = None  # why the re-run could not happen at all

    @property
    def identical(self) -> bool:
        return (
            self.problem is None
            and self.fresh_hash == self.stored_hash
            and not self.version_changes
            and not self.metric_changes
        )

    def explanation(self) -> list[str]:
        if self.problem:
            return [f"run {self.run_id} not reproduced: {self.problem}"]
        if self.identical:
            return [
                f"run {self.run_id} reproduced: data sha256 {self.stored_hash[:12]}…, same versions, "
                f"all {self.compared} metrics identical"
            ]
        lines = [f"run {self.run_id} did NOT reproduce:"]
        if self.fresh_hash != self.stored_hash:
            lines.append(f"  data hash differs: stored {self.stored_hash}, catalog now {self.fresh_hash}")
        for name, (old, new) in self.version_changes.items():
            lines.append(f"  version of {name} differs: stored {old}, now {new}")
        for name, old, new in self.metric_changes:
            lines.append(f"  metric {name} differs: stored {old}, now {new}")
        return lines


def _timeframe(bar_type: str) -> Timeframe:
    return Timeframe.of_bar_type(bar_type)


def _exchange_date(stamp) -> date:
    stamp = pd.Timestamp(stamp)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp  # SQLite gives naive UTC
    return stamp.tz_convert(EXCHANGE_TZ).date()


def reproduce_run(warehouse: Warehouse, run_id: str, catalog: BarCatalog | None = None) -> Reproduction:
    stored = load_run(warehouse, run_id)
    record = stored.record
    symbol, venue = record.bar_type.split("-", 1)[0].rsplit(".", 1)
    if catalog is None:  # opened through the store, so a publish a killed import left is settled first
        catalog = MarketDataStore(
            BarCatalog(get_settings().catalog_location, venue, get_settings().s3_options()), warehouse
        ).catalog
    timeframe = _timeframe(record.bar_type)
    outcome = Reproduction(run_id, record.data_hash, None)
    series = catalog.read(symbol, timeframe)
    if series is None:
        outcome.problem = f"the catalog has no {timeframe.value} bars of {symbol} any more"
        return outcome
    first, last = _exchange_date(record.start), _exchange_date(record.end)
    if len(window(series, first, last)) == 0:
        outcome.problem = f"the catalog has no {symbol} bars between {first} and {last} any more"
        return outcome
    spec = StrategySpec(**record.config)
    result = run_backtest(series, spec, venue, run_id, first, last)
    outcome.fresh_hash = result.data_hash
    now = {**versions(), "calendar": EXCHANGE, "fills": FILL_CONVENTION}
    outcome.version_changes = {
        name: (old, now[name]) for name, old in record.versions.items() if name in now and now[name] != old
    }
    fresh = compute_metrics(result, trade_ledger(result.fills), benchmark_for(result, catalog.closes_reader(timeframe)))
    outcome.compared = len([n for n in fresh if n != "run_id"])
    outcome.metric_changes = metric_differences(stored.metrics, fresh)
    return outcome

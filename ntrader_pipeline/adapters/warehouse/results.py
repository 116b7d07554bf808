"""A stored backtest run read back whole: what reports, comparisons and reproductions start from.

The warehouse holds a run's record, metrics, trades and equity curve; the bars it traded and its
benchmark's closes stay in the catalog. ``stored_market`` reads those back the way
``core.metrics`` took them when the run was made, and checks them against the stored metrics, so
a report rebuilt later (``returns.csv``'s benchmark column, the tearsheet's charts) shows what
the run was measured against or says why it cannot. ``write_stored_reports`` writes a run's report
folder that way when its backfill deferred it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.ledger import LEDGER_COLUMNS
from ntrader_pipeline.core.metric_registry import Metrics
from ntrader_pipeline.core.records import RunRecord

if TYPE_CHECKING:  # the catalog imports NautilusTrader: only where bars are read
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.stores import Stores
    from ntrader_pipeline.core.metrics import Benchmark


class UnknownRunError(LookupError):
    def __init__(self, run_id: str):
        super().__init__(f"no backtest run with id {run_id!r} (see `ntrader backtest list-results`)")


@dataclass(frozen=True)
class StoredRun:
    record: RunRecord
    metrics: Metrics
    ledger: pd.DataFrame  # LEDGER_COLUMNS, exact decimals, UTC timestamps
    curve: pd.DataFrame  # timestamp, equity, drawdown


def get_record(warehouse: Warehouse, run_id: str) -> RunRecord:
    """The run's record; raises UnknownRunError when there is no such run."""
    record = warehouse.get_run(run_id)
    if record is None:
        raise UnknownRunError(run_id)
    return record


def read_ledger(warehouse: Warehouse, run_id: str) -> pd.DataFrame:
    """The run's trade ledger: ``LEDGER_COLUMNS``, UTC times, in entry order."""
    ledger = pd.DataFrame(warehouse.get_trades(run_id), columns=["run_id", *LEDGER_COLUMNS])[LEDGER_COLUMNS]
    for column in ("entry_time", "exit_time"):
        ledger[column] = pd.to_datetime(ledger[column], utc=True).dt.as_unit("ns")  # SQLite: naive UTC
    if len(ledger):
        ledger["holding_seconds"] = ledger["holding_seconds"].astype("int64")
    return ledger.sort_values(["entry_time", "position_id"], kind="stable").reset_index(drop=True)


def load_run(warehouse: Warehouse, run_id: str) -> StoredRun:
    """Everything stored about ``run_id``; raises UnknownRunError when there is no such run."""
    record = get_record(warehouse, run_id)
    return StoredRun(
        record, warehouse.get_metrics(run_id), read_ledger(warehouse, run_id), warehouse.get_equity_curve(run_id)
    )


# --- the bars behind a stored run ----------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """A stored run's bars as the catalog holds them now.

    ``prices``: the traded symbol's closes (``ts_event``, ``close``) over the run's span, for the
    price chart. ``benchmark``: the closes the metrics were measured against, only when they still
    give the stored benchmark figures; otherwise None and ``problem`` says why.
    """

    prices: pd.DataFrame | None
    benchmark: Benchmark | None
    problem: str | None = None


def symbol_and_venue(record: RunRecord) -> tuple[str, str]:
    """``ORCL.XNAS-1-DAY-LAST-EXTERNAL`` → (``ORCL``, ``XNAS``)."""
    symbol, venue = record.bar_type.split("-", 1)[0].rsplit(".", 1)
    return symbol, venue


def stored_market(record: RunRecord, metrics: Metrics, curve: pd.DataFrame, catalog: BarCatalog) -> Market:
    """The run's closes and its benchmark, read back as ``core.metrics`` took them.

    Buy and hold of the run's own symbol is measured on the closes of the very bars the run traded
    (one per row of its equity curve); another ``benchmark:`` symbol on its closes between the run's
    first and last bar. The benchmark is kept only when it reproduces the stored benchmark return
    and relative figures: bars re-imported since would otherwise pass for what the run was
    measured against.
    """
    from ntrader_pipeline.core.metrics import Benchmark, exchange_zone
    from ntrader_pipeline.core.reports import benchmark_mismatch
    from ntrader_pipeline.core.timeframes import Timeframe

    symbol = symbol_and_venue(record)[0]
    timeframe = Timeframe.of_bar_type(record.bar_type)
    stamps = curve["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    traded = stamps.astype("int64")  # the close time of every bar the run traded
    if not len(traded):
        return Market(None, None, "the run has no stored equity curve")
    first, last = int(traded[0]), int(traded[-1])
    other = str(metrics.get("benchmark") or (record.config or {}).get("benchmark") or symbol)
    read = catalog.closes_reader(timeframe)
    try:
        own = read(symbol)
        bench = own if other == symbol else read(other)
    except (OSError, ValueError, KeyError) as exc:
        return Market(None, None, f"the catalog cannot be read ({exc})")
    prices = _between(own, first, last)
    if bench is None:
        return Market(prices, None, f"the catalog has no {timeframe.value} bars of {other} any more")
    if other == symbol:
        closes = pd.DataFrame({"ts_event": traded}).merge(bench[["ts_event", "close"]], on="ts_event", how="left")
        if closes["close"].isna().any():
            missing = int(closes["close"].isna().sum())
            return Market(prices, None, f"the catalog no longer holds {missing} of the {other} bars the run traded")
    else:
        closes = _between(bench, first, last)
        if closes is None or len(closes) < 2:
            return Market(prices, None, f"the catalog has no {other} bars between the run's first and last bar")
    benchmark = Benchmark(other, closes[["ts_event", "close"]].reset_index(drop=True))
    problem = benchmark_mismatch(metrics, curve, benchmark, exchange_zone(record.versions))
    if problem is not None:
        return Market(prices, None, f"the catalog's {other} bars are not those the run was measured against: {problem}")
    return Market(prices, benchmark)


def _between(frame: pd.DataFrame | None, first: int, last: int) -> pd.DataFrame | None:
    if frame is None:
        return None
    ts = frame["ts_event"].to_numpy()
    cut = frame[(ts >= first) & (ts <= last)].reset_index(drop=True)
    return cut if len(cut) else None


def write_stored_reports(stores: Stores, run_id: str) -> bool:
    """Write the report folder of a stored run, from the warehouse and the catalog of ``stores``,
    if it has none yet (a backfill batch defers it); whether it wrote it. Runs without a folder of
    their own (sweep sets) and runs whose equity curve was pruned are left as they are. Raises
    UnknownRunError when there is no such run."""
    from ntrader_pipeline.adapters.object_store import written_folder
    from ntrader_pipeline.core.reports import REPORT_FILES, write_reports

    reports = stores.reports()
    if reports.exists(f"{run_id}/{REPORT_FILES['html']}"):
        return False
    stored = load_run(stores.warehouse(), run_id)
    if stored.record.report_dir is None or (len(stored.curve) == 0 and stored.record.bar_count):
        return False
    catalog = stores.catalog(symbol_and_venue(stored.record)[1])
    market = stored_market(stored.record, stored.metrics, stored.curve, catalog)
    record, metrics, ledger, curve = stored.record, stored.metrics, stored.ledger, stored.curve
    with written_folder(reports, run_id) as folder:
        write_reports(folder, record, metrics, ledger, curve, None, market.prices, market.benchmark)
    return True

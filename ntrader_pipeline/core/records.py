"""The records that cross layers: a stored run, its metrics beside it, and a partition's outcome.

Frozen and typed, so the warehouse, the Dagster assets, the reports and the CLI agree on what a
run is without reading string keys out of dicts. No pandas here: ``list-results`` reads these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload

from ntrader_pipeline.core.metric_registry import Metrics

if TYPE_CHECKING:
    from ntrader_pipeline.core.backtest import BacktestResult


@overload
def utc(value: datetime | str) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime: SQLite hands timestamps back naive (they were stored as UTC)."""
    if value is None:
        return None
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def from_ns(ns: int) -> datetime:
    """Nanoseconds since the epoch (UTC) as a datetime, to the microsecond."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(microsecond=(ns // 1_000) % 1_000_000)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One ``backtest_runs`` row: what ran on which data with which versions, to say what it was
    and to run it again."""

    run_id: str
    strategy: str
    symbol: str
    bar_type: str
    bar_count: int
    data_hash: str
    config: dict[str, Any]  # the strategy spec as it ran (StrategySpec.canonical())
    versions: dict[str, str]
    created_at: datetime
    start: datetime | None = None  # close time of the first bar, UTC
    end: datetime | None = None
    dagster_run_id: str | None = None
    report_dir: str | None = None
    risk_events: tuple[dict[str, Any], ...] = field(default=())  # risk controls that fired, in time order

    @classmethod
    def of_result(
        cls,
        result: BacktestResult,
        dagster_run_id: str | None = None,
        report_dir: str | None = None,
        created_at: datetime | None = None,
    ) -> RunRecord:
        """The record of a run just made."""
        return cls(
            run_id=result.run_id,
            strategy=result.strategy,
            symbol=result.symbol,
            bar_type=result.bar_type,
            bar_count=result.bar_count,
            data_hash=result.data_hash,
            config=result.spec,
            versions=result.versions,
            created_at=created_at or datetime.now(UTC),
            start=from_ns(result.start_ns),
            end=from_ns(result.end_ns),
            dagster_run_id=dagster_run_id,
            report_dir=report_dir,
            risk_events=tuple(
                {"time": from_ns(int(e["ts_event"])).isoformat(), **{k: v for k, v in e.items() if k != "ts_event"}}
                for e in result.risk_events
            ),
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RunRecord:
        """A ``backtest_runs`` row as the database hands it back."""
        return cls(
            run_id=row["run_id"],
            strategy=row["strategy"],
            symbol=row["symbol"],
            bar_type=row["bar_type"],
            bar_count=int(row["bar_count"]),
            data_hash=row["data_hash"],
            config=row["config"],
            versions=row["versions"],
            created_at=utc(row["created_at"]),
            start=utc(row["start"]),
            end=utc(row["end"]),
            dagster_run_id=row["dagster_run_id"],
            report_dir=row["report_dir"],
            risk_events=tuple(row["risk_events"] or ()),
        )

    def row(self) -> dict[str, Any]:
        """The ``backtest_runs`` row to insert."""
        return {**asdict(self), "risk_events": list(self.risk_events)}


@dataclass(frozen=True)
class StoredResult:
    """A stored run with its metrics (what ``Warehouse.list_results`` gives)."""

    record: RunRecord
    metrics: Metrics


@dataclass(frozen=True)
class Backtested:
    """A partition that ran: its metrics as the warehouse holds them."""

    metrics: Metrics


@dataclass(frozen=True)
class Failed:
    """A partition that did not run, and why (one line)."""

    reason: str


@dataclass(frozen=True)
class NotApplicable:
    """A partition that cannot run and is not a failure: its symbol has no bars at the strategy's
    interval (a daily strategy on a symbol with only minute bars). Never requested, never failed."""

    reason: str


PartitionOutcome = Backtested | Failed | NotApplicable

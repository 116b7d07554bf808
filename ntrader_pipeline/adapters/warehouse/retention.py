"""Stored equity curves that may go: the bulk of what the warehouse grows by.

A backtest stores one equity-curve row per bar (about 2,500 for ten years of daily bars), and the
automatic backtests store a new run of every strategy × symbol each time its bars change. Only the
newest run of a strategy × symbol is what the leaderboard, ``list-results`` and a later sweep
compare against; older runs keep their record, metrics and trades (``list-results``, ``compare``
and ``reproduce`` still work) and lose only their curve.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, Select, delete, func, select

from ntrader_pipeline.adapters.warehouse.store import Warehouse, _as_utc
from ntrader_pipeline.adapters.warehouse.tables import backtest_runs, equity_curve

CHUNK = 500  # run ids per DELETE statement


@dataclass(frozen=True)
class StoredRunRef:
    run_id: str
    strategy: str
    symbol: str
    created_at: datetime
    dagster_run_id: str | None


def stored_runs(warehouse: Warehouse) -> list[StoredRunRef]:
    """Every stored backtest run, newest first (what retention decides on; no curves read)."""
    c = backtest_runs.c
    query = select(c.run_id, c.strategy, c.symbol, c.created_at, c.dagster_run_id).order_by(c.created_at.desc())
    rows = warehouse.read("listing backtest runs", lambda connection: connection.execute(query).all())
    return [StoredRunRef(r.run_id, r.strategy, r.symbol, _as_utc(r.created_at), r.dagster_run_id) for r in rows]


def newest_per_pair(runs: list[StoredRunRef]) -> set[str]:
    """The newest run id of every strategy × symbol (``runs`` newest first)."""
    newest: dict[tuple[str, str], str] = {}
    for run in runs:
        newest.setdefault((run.strategy, run.symbol), run.run_id)
    return set(newest.values())


def curve_rows(warehouse: Warehouse, run_ids: Collection[str]) -> dict[str, int]:
    """Equity-curve rows stored per run (runs without any are left out)."""
    ids, counts = list(run_ids), {}
    for start in range(0, len(ids), CHUNK):
        query = (
            select(equity_curve.c.run_id, func.count())
            .where(equity_curve.c.run_id.in_(ids[start : start + CHUNK]))
            .group_by(equity_curve.c.run_id)
        )
        rows = warehouse.read("counting equity-curve rows", partial(_all_rows, query))
        counts.update({run_id: int(n) for run_id, n in rows})
    return counts


def delete_curves(warehouse: Warehouse, run_ids: Collection[str]) -> int:
    """Delete the equity curves of ``run_ids`` in one transaction (retried whole); rows deleted."""
    ids = list(run_ids)

    def work(connection) -> int:
        deleted = 0
        for start in range(0, len(ids), CHUNK):
            statement = delete(equity_curve).where(equity_curve.c.run_id.in_(ids[start : start + CHUNK]))
            deleted += connection.execute(statement).rowcount
        return deleted

    return warehouse.run(f"deleting the equity curves of {len(ids)} runs", work) if ids else 0


def _all_rows(query: Select, connection: Connection) -> list:
    return list(connection.execute(query).all())

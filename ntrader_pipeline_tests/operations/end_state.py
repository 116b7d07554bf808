"""What must hold after a soak: each judged from the stores and the instance, never from the driver's say-so.

Each function returns a list of problems (empty when all is well), so the bench can count them and
the test can show all of them at once.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pandas as pd
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from sqlalchemy import select

from ntrader_pipeline.adapters.warehouse import market_data
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import session_close_ns
from ntrader_pipeline.core.inbox import ARCHIVE, QUARANTINE
from ntrader_pipeline.definitions import INGEST_JOB
from ntrader_pipeline.defs.analytics.assets import LEADERBOARD_FILE
from ntrader_pipeline.defs.ibkr.assets import IBKR_JOB
from ntrader_pipeline.defs.resources import PipelineStores

from .market_days import PRICE_FIELDS, SYMBOLS, SYNTHETIC
from .soak import IB_SYMBOL, SoakRecord

PARTITION = "dagster/partition"


def stored_bars(record: SoakRecord) -> list[str]:
    """Every session's bar, exactly once, with the file's values, in the catalog and in ``market_data``."""
    stores = PipelineStores.from_settings(record.settings)
    problems = []
    sessions = record.history.sessions
    expected_ns = session_close_ns(pd.Series(sessions))
    ib_session = pd.Timestamp(record.days[record.plan.ib_day].session)
    for symbol in SYMBOLS:
        truth = [
            record.history.as_ib_sends(symbol, s)
            if (symbol, s) == (IB_SYMBOL, ib_session)
            else record.history.bars[symbol][s]
            for s in sessions
        ]
        series = stores.catalog().read(symbol, Timeframe.DAILY)
        frame = series.frame if series is not None else pd.DataFrame(columns=["ts_event", *PRICE_FIELDS, "volume"])
        if list(frame["ts_event"]) != list(expected_ns):
            dupes = [ts for ts, n in Counter(frame["ts_event"]).items() if n > 1]
            problems.append(
                f"catalog {symbol}: {len(frame)} bars for {len(sessions)} sessions, {len(dupes)} duplicated"
            )
        else:
            for column in (*PRICE_FIELDS, "volume"):
                wrong = [b.session.date() for b, v in zip(truth, frame[column]) if float(getattr(b, column)) != v]
                if wrong:
                    problems.append(f"catalog {symbol} {column} differs from the files on {wrong[:3]}")
        with stores.warehouse().engine.connect() as connection:
            rows = connection.execute(
                select(market_data).where(market_data.c.symbol == symbol).order_by(market_data.c.timestamp)
            ).all()
        stamps = [pd.Timestamp(r.timestamp).value for r in rows]
        if stamps != list(expected_ns):
            problems.append(f"market_data {symbol}: {len(rows)} rows for {len(sessions)} sessions")
            continue
        for bar, row in zip(truth, rows):
            stored = tuple(Decimal(getattr(row, c)) for c in (*PRICE_FIELDS, "volume"))
            if stored != tuple(getattr(bar, c) for c in (*PRICE_FIELDS, "volume")):
                problems.append(f"market_data {symbol} {bar.session.date()}: {stored} is not the file's {bar.line}")
            source = "ibkr" if (symbol, bar.session) == (IB_SYMBOL, ib_session) else "csv"
            if row.data_source != source:
                problems.append(f"market_data {symbol} {bar.session.date()}: source {row.data_source}, not {source}")
    return problems


def runs(record: SoakRecord, instance: DagsterInstance) -> list[str]:
    """Each expected run once and successful (the malformed file's import failed), and nothing more."""
    problems = []
    records = instance.get_run_records()
    by_id = {r.dagster_run.run_id: r.dagster_run for r in records}
    expected_imports, expected_backtests = _expected_runs(record)
    imports, failed_imports, backtests, other = Counter(), Counter(), Counter(), []
    for run in by_id.values():
        partition = run.tags.get(PARTITION, "")
        covered = backtest_partitions(instance, run)
        if run.job_name == INGEST_JOB:
            (imports if run.status == DagsterRunStatus.SUCCESS else failed_imports)[partition] += 1
        elif run.job_name == IBKR_JOB:
            if run.run_id != record.ib_run_id or run.status != DagsterRunStatus.SUCCESS:
                problems.append(f"IB run {run.run_id}: {run.status.value}, expected one successful run")
        elif covered:
            backtests.update(covered)
            if run.status != DagsterRunStatus.SUCCESS:
                problems.append(f"backtest run {run.run_id} of {covered}: {run.status.value}")
        elif run.asset_selection == {AssetKey("leaderboard")}:
            if run.status != DagsterRunStatus.SUCCESS:
                problems.append(f"leaderboard run {run.run_id}: {run.status.value}")
        else:
            other.append(f"{run.job_name} {partition} {sorted(k.to_user_string() for k in run.asset_selection or [])}")
    if record.ib_run_id not in by_id:
        problems.append("the IB run is missing")
    if imports != expected_imports:
        problems.append(f"imports per symbol {dict(imports)}, expected {dict(expected_imports)}")
    if failed_imports != Counter({SYNTHETIC: 1}):
        problems.append(f"failed imports {dict(failed_imports)}, expected only the malformed {SYNTHETIC} file")
    if backtests != expected_backtests:
        extra = {
            k: backtests[k] - expected_backtests[k]
            for k in backtests | expected_backtests
            if backtests[k] != expected_backtests[k]
        }
        problems.append(f"backtest runs per partition off by {extra} (expected {dict(expected_backtests)})")
    if other:
        problems.append(f"unexpected runs: {other}")
    return problems + _leaderboard_runs(record, by_id, instance)


def _expected_runs(record: SoakRecord) -> tuple[Counter, Counter]:
    """Import runs per symbol and backtest runs per partition that the soak's days call for."""
    expected_imports: Counter = Counter()
    expected_backtests: Counter = Counter()
    for day in record.days:
        for symbol in day.imported:
            expected_imports[symbol] += 1
            for strategy in record.plan.strategies:
                expected_backtests[f"{strategy}|{symbol}"] += 1
    for strategy in record.plan.strategies:  # the IB day's bar re-runs its symbol's backtests too
        expected_backtests[f"{strategy}|{IB_SYMBOL}"] += 1
    for strategy in record.plan.strategies:  # the backfill
        for symbol in SYMBOLS:
            expected_backtests[f"{strategy}|{symbol}"] += 1
    return expected_imports, expected_backtests


def backtest_partitions(instance: DagsterInstance, run) -> list[str]:
    """The backtest partitions a run covers: its partition tag, or, for a run the automation or a
    backfill gave several partitions (one step loops over them), those its ``backtest`` materialized."""
    partition = run.tags.get(PARTITION, "")
    if "|" in partition:
        return [partition]
    if AssetKey("backtest") not in (run.asset_selection or set()):
        return []
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    return [
        m.partition
        for m in (r.event_log_entry.asset_materialization for r in records)
        if m.asset_key == AssetKey("backtest") and m.partition
    ]


def _leaderboard_runs(record: SoakRecord, by_id: dict, instance: DagsterInstance) -> list[str]:
    """Each day's backtests are followed by a leaderboard build, and it never runs more often than they do.

    The build may start in the next day's window: the automation waits until no backtest is in
    progress, and a day is taken as settled once both sensors ticked without launching a run.
    """
    problems = []
    times = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    boards = [times[i] for i in by_id if by_id[i].asset_selection == {AssetKey("leaderboard")}]
    all_backtests = 0
    for day in record.days:
        backtests = [times[i] for i in day.run_ids if backtest_partitions(instance, by_id[i])]
        all_backtests += len(backtests)
        if backtests:
            finished = max(r.end_time or 0 for r in backtests)
            if not any((r.start_time or 0) >= finished for r in boards):
                problems.append(f"day {day.day}: no leaderboard build after its {len(backtests)} backtest runs")
    if len(boards) > all_backtests + len(record.backfill_run_ids):
        problems.append(f"{len(boards)} leaderboard builds for {all_backtests} backtest runs")
    return problems


def leaderboard(record: SoakRecord, instance: DagsterInstance) -> list[str]:
    """One row per strategy × symbol, built after the last backtest."""
    stores = PipelineStores.from_settings(record.settings)
    expected = {(strategy, symbol) for strategy in record.plan.strategies for symbol in SYMBOLS}
    latest = [(r.record.strategy, r.record.symbol) for r in stores.warehouse().latest_results()]
    problems = [] if sorted(latest) == sorted(expected) else [f"latest results {latest}, expected {sorted(expected)}"]
    board = instance.get_latest_materialization_event(AssetKey("leaderboard"))
    metrics = instance.get_latest_materialization_event(AssetKey("backtest_metrics"))
    if board is None or metrics is None or board.timestamp < metrics.timestamp:
        problems.append("the leaderboard was not rebuilt after the last backtest")
    else:
        rows = board.asset_materialization.metadata["rows"].value
        # Its own file; the materialization's "path" is the IO manager's pickle, which overwrites ours.
        table = pd.read_csv(record.settings.resolved_reports_dir / LEADERBOARD_FILE)
        if rows != len(expected) or len(table) != len(expected):
            problems.append(f"leaderboard has {rows} rows ({len(table)} in its file), expected {len(expected)}")
    return problems


def inbox(record: SoakRecord) -> list[str]:
    """Every file archived once, the malformed one quarantined with its errors, the inbox empty."""
    problems = []
    expected = {name: where for day in record.days for name, where in day.files.items()}
    left = sorted(p.name for p in record.inbox.glob("*.csv"))
    if left:
        problems.append(f"files left in the inbox: {left}")
    for where in (ARCHIVE, QUARANTINE):
        names = sorted(p.name for p in (record.inbox / where).glob("*.csv"))
        wanted = sorted(name for name, w in expected.items() if w == where)
        if names != wanted:
            problems.append(f"{where} holds {names}, expected {wanted}")
    for name in (n for n, w in expected.items() if w == QUARANTINE):
        errors = record.inbox / QUARANTINE / f"{name}.errors.txt"
        text = errors.read_text() if errors.exists() else ""
        if f"{name}:2 column 'high'" not in text:
            problems.append(f"{errors.name} does not name line 2, column high: {text!r}")
    return problems


def all_problems(record: SoakRecord, instance: DagsterInstance) -> list[str]:
    done = record.backfill_status in ("COMPLETED", "COMPLETED_SUCCESS")
    backfill = [] if done else [f"backfill ended {record.backfill_status}"]
    return stored_bars(record) + runs(record, instance) + leaderboard(record, instance) + inbox(record) + backfill

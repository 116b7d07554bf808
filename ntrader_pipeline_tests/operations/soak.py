"""The soak: the deployed stack (webserver, daemon, Postgres) operated through simulated trading days.

Nothing here calls the pipeline's code directly: files go in the inbox, one job is launched and one
backfill is started through the webserver's GraphQL API, and everything else is what the sensors
and the daemon do by themselves. The driver waits for each day to settle (files filed, no run
queued or in progress, and a later tick of every sensor asked for nothing more) and records what
happened; ``end_state`` judges it. The test (short) and ``bench/soak.py`` (long) share this code.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from sqlalchemy.engine import make_url

from ntrader_pipeline.core.calendar import session_close_ns
from ntrader_pipeline.core.inbox import ARCHIVE, QUARANTINE
from ntrader_pipeline.defs.ibkr.assets import IBKR_JOB
from ntrader_pipeline.defs.market_data.sensors import UNFINISHED
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.ibkr.fake_gateway import FakeBar, FakeGateway, daily_bars

from .market_days import PRICE_FIELDS, SYMBOLS, SYNTHETIC, MarketHistory, market_history
from .stack import DagsterStack, StackError, instance_environment, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
IB_SYMBOL = "NVDA"
BACKTEST_ASSETS = ["backtest", "trade_ledger", "backtest_metrics", "backtest_report"]
SENSORS = [
    "inbox_csv_sensor",
    "inbox_archive_sensor",
    "inbox_quarantine_sensor",
    "backtests_refresh_sensor",
    "ibkr_backtests_sensor",
]
# Each settles a day only after a quiet tick: the IB sensor requests backtests once the IB run ended.
POLL_SENSORS = ["inbox_csv_sensor", "backtests_refresh_sensor", "ibkr_backtests_sensor"]
# A backfill in these states may still launch runs: the automation sensor asks for several
# partitions at once as a backfill, whose runs the daemon launches on a later tick.
BACKFILL_UNFINISHED = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]


@dataclass(frozen=True)
class Plan:
    """Which day brings what: day 0 seeds the history, days 1..N bring one session each."""

    days: int
    strategies: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.days < 3:
            raise ValueError("the soak needs 3 days: a plain one, a malformed file, and its catch-up with IB")

    @property
    def malformed_day(self) -> int:
        """``SYNTHETIC``'s file is malformed on this day; the vendor re-sends it with the next day's."""
        return max(2, self.days // 3)

    @property
    def ib_day(self) -> int:
        """``IB_SYMBOL``'s bar comes from the IB job on this day, not from the inbox."""
        return self.malformed_day + 1


@dataclass
class DayRecord:
    day: int
    session: str
    seconds: float
    files: dict[str, str]  # file name → "archive" or "quarantine"
    imported: list[str]  # symbols whose file was imported (checks passed) this day
    run_ids: list[str] = field(default_factory=list)


@dataclass
class SoakRecord:
    plan: Plan
    history: MarketHistory
    settings: Settings
    inbox: Path
    days: list[DayRecord] = field(default_factory=list)
    ib_run_id: str = ""
    backfill_id: str = ""
    backfill_status: str = ""
    backfill_seconds: float = 0.0
    backfill_run_ids: list[str] = field(default_factory=list)


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def soak_environment(work: Path, database_url: str, strategies_dir: Path, gateway_port: int, interval: int) -> dict:
    """What docker-compose gives the containers, pointed at this machine: one Postgres database for
    Dagster and the warehouse, every other store under ``work``, and the fake gateway."""
    url = make_url(database_url)
    return {
        **instance_environment(work, database_url),
        "NTRADER_HOME": str(work / "home"),
        "NTRADER_WAREHOUSE_URL": url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        "NTRADER_STRATEGY_CONFIGS_DIR": str(strategies_dir),
        "NTRADER_INBOX_DIR": str(work / "home" / "inbox"),
        "NTRADER_INBOX_SENSOR_INTERVAL": str(interval),
        "NTRADER_AUTOMATION_SENSOR_INTERVAL": str(interval),
        # A hang-catcher, not a speed limit: on a loaded CI host Dagster's 60 s gRPC deadline was
        # passed by runs that were merely slow to launch.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
        "NTRADER_IB_HOST": "127.0.0.1",
        "NTRADER_IB_PORT": str(gateway_port),
        "NTRADER_IB_CONNECT_TIMEOUT": "20",
        "NTRADER_IB_REQUEST_TIMEOUT": "60",
    }


@contextmanager
def soak(
    work: Path,
    database_url: str,
    days: int,
    strategies: list[str] | None = None,
    interval: int = 2,
    day_timeout: float = 1200,
    progress=print,
) -> Iterator[tuple[SoakRecord, DagsterInstance]]:
    """Start the stack, drive ``days`` simulated days and a backfill; yield the record and the instance.

    The stack is stopped on the way out whatever happens, and its logs are printed on a failure
    (including a failed assertion in the caller's block).
    """
    strategy_files = sorted((REPO_ROOT / "strategy_configs").glob("*.yaml"))
    chosen = [f for f in strategy_files if strategies is None or f.stem in strategies]
    plan = Plan(days, tuple(f.stem for f in chosen))
    strategies_dir = work / "strategy_configs"
    strategies_dir.mkdir(parents=True)
    for file in chosen:
        shutil.copy(file, strategies_dir / file.name)
    history = market_history(days)
    with FakeGateway({IB_SYMBOL: _ib_feed(history)}) as gateway:
        env = soak_environment(work, database_url, strategies_dir, gateway.port, interval)
        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
        workspace["load_from"][0]["python_module"]["working_directory"] = str(work)
        (work / "workspace.yaml").write_text(yaml.safe_dump(workspace))
        settings = Settings(
            home=work / "home",
            warehouse_url=env["NTRADER_WAREHOUSE_URL"],
            strategy_configs_dir=strategies_dir,
            inbox_dir=Path(env["NTRADER_INBOX_DIR"]),
        )
        record = SoakRecord(plan, history, settings, settings.resolved_inbox_dir)
        with patched_environ({k: v for k, v in env.items() if k.startswith("DAGSTER_")}):
            instance = DagsterInstance.from_config(str(dagster_home))
            try:
                with DagsterStack(work / "workspace.yaml", env, work / "logs", cwd=work) as stack:
                    for name in SENSORS:
                        stack.start_sensor(name)
                    _drive(stack, instance, record, day_timeout, progress)
                    yield record, instance
            finally:
                instance.dispose()


def _ib_feed(history: MarketHistory) -> list[FakeBar]:
    """What the fake gateway serves for ``IB_SYMBOL``: the same days, priced as IB quotes them."""
    bars = [history.as_ib_sends(IB_SYMBOL, session) for session in history.sessions]
    columns = {name: [float(getattr(bar, name)) for bar in bars] for name in (*PRICE_FIELDS, "volume")}
    return daily_bars(pd.DataFrame({"ts_event": session_close_ns(pd.Series(history.sessions)), **columns}))


def _drive(stack: DagsterStack, instance: DagsterInstance, record: SoakRecord, timeout: float, progress) -> None:
    plan, history = record.plan, record.history
    first = len(history.sessions) - plan.days
    inbox, outbox = record.inbox, record.inbox.parent / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    for day in range(plan.days + 1):
        started = time.monotonic()
        before = _run_ids(instance)
        session = history.sessions[first + day - 1] if day else history.sessions[first - 1]
        label = session.date().isoformat()
        files, imported = {}, []
        for symbol in SYMBOLS:
            if day == 0:
                path = history.write(outbox / f"{symbol}_history.csv", symbol, history.sessions[:first])
            elif day == plan.ib_day and symbol == IB_SYMBOL:
                continue
            elif day == plan.malformed_day and symbol == SYNTHETIC:
                path = history.write_malformed(outbox / f"{symbol}_{label}.csv", symbol, session)
                files[path.name] = QUARANTINE
                os.replace(path, inbox / path.name)
                continue
            elif day == plan.malformed_day + 1 and symbol == SYNTHETIC:  # re-sent with the missed session
                path = history.write(
                    outbox / f"{symbol}_{label}.csv", symbol, history.sessions[first + day - 2 : first + day]
                )
            else:
                path = history.write(outbox / f"{symbol}_{label}.csv", symbol, [session])
            files[path.name] = ARCHIVE
            imported.append(symbol)
            inbox.mkdir(parents=True, exist_ok=True)
            os.replace(path, inbox / path.name)  # atomic: the sensor never sees half a file
        if day == plan.ib_day:
            record.ib_run_id = stack.launch_run(
                IBKR_JOB,
                {"ops": {"ibkr_bars": {"config": {"symbols": [IB_SYMBOL], "start": label, "end": label}}}},
                tags={"soak/day": str(day)},
            )
        _settle(stack, instance, inbox, files, timeout)
        runs = sorted(_run_ids(instance) - before)
        record.days.append(DayRecord(day, label, time.monotonic() - started, files, imported, runs))
        progress(f"day {day} ({label}): {len(runs)} runs in {record.days[-1].seconds:.0f} s")
    _backfill(stack, instance, record, timeout)
    progress(
        f"backfill {record.backfill_status}: {len(record.backfill_run_ids)} runs in {record.backfill_seconds:.0f} s"
    )


def _backfill(stack: DagsterStack, instance: DagsterInstance, record: SoakRecord, timeout: float) -> None:
    """Every strategy × symbol, launched as the UI's Materialize button does, then settled."""
    started = time.monotonic()
    partitions = [f"{strategy}|{symbol}" for strategy in record.plan.strategies for symbol in SYMBOLS]
    record.backfill_id = stack.launch_partition_backfill(BACKTEST_ASSETS, partitions, "soak: every strategy × symbol")

    def finished() -> str | None:
        stack.check_alive()
        status = stack.backfill(record.backfill_id)["status"]
        return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

    record.backfill_status = wait_for("the backfill to finish", finished, timeout, 2)
    _settle(stack, instance, record.inbox, {}, timeout)
    record.backfill_run_ids = [
        r.dagster_run.run_id
        for r in instance.get_run_records(RunsFilter(tags={"dagster/backfill": record.backfill_id}))
    ]
    record.backfill_seconds = time.monotonic() - started


def _settle(stack: DagsterStack, instance: DagsterInstance, inbox: Path, files: dict[str, str], timeout: float) -> None:
    """Wait until the day's files are filed, no run or backfill is in progress, and every sensor ticked
    since without asking for anything (neither a run nor a backfill)."""

    def filed() -> bool:
        stack.check_alive()
        return all((inbox / where / name).exists() and not (inbox / name).exists() for name, where in files.items())

    deadline = time.monotonic() + timeout
    wait_for(f"{sorted(files)} to be filed", filed, timeout)
    while True:
        wait_for("runs to finish", lambda: not _unfinished(instance, stack), max(deadline - time.monotonic(), 1))
        mark, known = time.time(), _activity(instance)
        for name in POLL_SENSORS:
            wait_for(
                f"a tick of {name}",
                lambda name=name, mark=mark: _ticked_since(stack, name, mark),
                max(deadline - time.monotonic(), 1),
            )
        if not _unfinished(instance, stack) and _activity(instance) == known:
            return
        if time.monotonic() > deadline:
            raise StackError(f"the stack did not settle within {timeout:.0f} s")


def _ticked_since(stack: DagsterStack, sensor: str, mark: float) -> bool:
    stack.check_alive()
    return any(t["timestamp"] > mark and t["status"] != "STARTED" for t in stack.sensor_ticks(sensor, 3))


def _unfinished(instance: DagsterInstance, stack: DagsterStack) -> bool:
    stack.check_alive()
    return bool(
        instance.get_run_records(RunsFilter(statuses=UNFINISHED), limit=1)
        or instance.get_backfills(BulkActionsFilter(statuses=BACKFILL_UNFINISHED), limit=1)
    )


def _activity(instance: DagsterInstance) -> set[str]:
    """Every run and backfill the instance knows: a sensor tick that asked for work adds one."""
    return _run_ids(instance) | {b.backfill_id for b in instance.get_backfills()}


def _run_ids(instance: DagsterInstance) -> set[str]:
    return {r.dagster_run.run_id for r in instance.get_run_records()}


def summary(record: SoakRecord, instance: DagsterInstance) -> dict:
    """Runs, failed runs and seconds per simulated day (the seed excluded), for humans and the bench."""
    runs = instance.get_run_records()
    failed = [r for r in runs if r.dagster_run.status != DagsterRunStatus.SUCCESS]
    simulated = [d.seconds for d in record.days if d.day > 0]
    return {
        "days": record.plan.days,
        "strategies": len(record.plan.strategies),
        "runs": len(runs),
        "failed_runs": len(failed),
        "seed_seconds": round(record.days[0].seconds, 1),
        "seconds_per_day": round(sum(simulated) / len(simulated), 1),
        "runs_per_day": round(sum(len(d.run_ids) for d in record.days if d.day > 0) / len(simulated), 1),
        "backfill_seconds": round(record.backfill_seconds, 1),
    }

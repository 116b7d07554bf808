"""Partitions: a dynamic ``symbol`` dimension that ingestion adds to, and strategy × symbol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    RunsFilter,
    StaticPartitionsDefinition,
)

from ntrader_pipeline.core.symbols import SymbolError, parse_symbol
from ntrader_pipeline.core.timeframes import Timeframe

if TYPE_CHECKING:
    from ntrader_pipeline.adapters.catalog import BarCatalog

SYMBOLS = "symbol"  # the dynamic partitions of symbols (a name: Dagster types the definition's as optional)
symbol_partitions = DynamicPartitionsDefinition(name=SYMBOLS)
# The strategy key of backtests run from a YAML file outside strategy_configs (`backtest run-config`).
FILE_STRATEGY_KEY = "_file"


def backtest_partitions(strategy_names: list[str]) -> MultiPartitionsDefinition:
    """strategy (one key per YAML file, plus ``_file``) × symbol. Keys render as ``"<strategy>|<symbol>"``."""
    if FILE_STRATEGY_KEY in strategy_names:
        raise ValueError(f"the strategy name {FILE_STRATEGY_KEY!r} is reserved; rename {FILE_STRATEGY_KEY}.yaml")
    return MultiPartitionsDefinition(
        {
            "strategy": StaticPartitionsDefinition(sorted([*strategy_names, FILE_STRATEGY_KEY])),
            "symbol": symbol_partitions,
        }
    )


# One key per parameter set of a sweep (``sma_crossover[fast_period=10,slow_period=30]``), added
# when a sweep is requested: a dynamic dimension, so the static strategy dimension (one key per
# file) and the automatic backtests on new bars stay as they are.
parameter_set_partitions = DynamicPartitionsDefinition(name="parameter_set")
sweep_set_partitions = MultiPartitionsDefinition(
    {"parameter_set": parameter_set_partitions, "symbol": symbol_partitions}
)


def backtest_key(strategy: str, symbol: str) -> str:
    return f"{strategy}|{symbol}"


PARTITION_TAG = "dagster/partition"
INBOX_FILE_TAG = "ntrader/inbox_file"  # the inbox file an import run reads (inbox_csv_sensor)
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def drop_symbol_without_bars(instance: DagsterInstance, catalog: BarCatalog, symbol: str) -> bool:
    """Remove ``symbol``'s partition after a rejected import when no bars of it are stored at all.

    An import run needs its partition before it starts, so the partition is added when the import
    is requested (by the inbox sensor or the CLI) and taken back here if the file was rejected:
    otherwise a mistyped or broken file would leave a symbol whose backtests can never run. A
    symbol with bars at any interval (from an earlier file or from IB), or with another import
    still queued or running, keeps its partition. Returns whether it was removed.
    """
    if symbol not in instance.get_dynamic_partitions(SYMBOLS):
        return False
    if any(catalog.bar_files(symbol, timeframe) for timeframe in Timeframe):
        return False
    busy = instance.get_run_records(RunsFilter(statuses=UNFINISHED, tags={PARTITION_TAG: symbol}), limit=1)
    if busy:
        return False
    instance.delete_dynamic_partition(SYMBOLS, symbol)
    return True


def drop_orphan_symbols(instance: DagsterInstance, catalog: Callable[[], BarCatalog]) -> list[str]:
    """Remove the partitions that imports killed with their process left behind; returns them.

    The first import of a new symbol adds its partition before it starts; when its process is
    killed (``run_processes``: the run is failed and tagged ``process_gone``), a symbol without
    bars is left, and every default backfill then fails on it. Such a symbol loses its partition
    unless it has bars at any interval, another run of it is queued or running, the failed run
    will be retried, or its inbox file still waits in the inbox (a re-execution or a touch
    imports it). A run once judged is tagged ``settled`` and never looked at again. ``catalog``
    is called only for a candidate (opening it imports NautilusTrader).
    """
    from dagster._core.storage.tags import PARENT_RUN_ID_TAG, WILL_RETRY_TAG

    from ntrader_pipeline.adapters.run_processes import GONE_TAG

    known = set(instance.get_dynamic_partitions(SYMBOLS))
    failed = RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={GONE_TAG: "true"})
    dropped, opened = [], None
    for record in instance.get_run_records(failed, limit=100):
        run = record.dagster_run
        symbol = run.tags.get(PARTITION_TAG, "")
        if symbol in known and "|" not in symbol:
            if INBOX_FILE_TAG in run.tags and Path(run.tags[INBOX_FILE_TAG]).exists():
                continue  # looked at again at the next start, while the file waits
            retry = instance.get_run_records(RunsFilter(tags={PARENT_RUN_ID_TAG: run.run_id}), limit=1)
            if run.tags.get(WILL_RETRY_TAG) == "true" and not retry:
                continue  # the daemon is about to relaunch it, on this partition
            if instance.get_run_records(RunsFilter(statuses=UNFINISHED, tags={PARTITION_TAG: symbol}), limit=1):
                continue
            opened = opened or catalog()
            if drop_symbol_without_bars(instance, opened, symbol):
                known.discard(symbol)
                dropped.append(symbol)
        instance.add_run_tags(run.run_id, {GONE_TAG: "settled"})  # never looked at again
    return dropped


def symbol_of(key: str) -> str:
    """The symbol a ``symbol`` partition key names. Keys can be added by hand in the UI, so an
    asset checks its key against the symbol grammar before it reads or writes anything."""
    symbol = parse_symbol(key)
    if symbol != key:
        raise SymbolError(f"symbol partition {key!r} is not upper case; add and use {symbol!r} instead")
    return symbol


def split_backtest_key(key: str) -> tuple[str, str]:
    """``(strategy, symbol)`` of a backtest partition key (``backtest_key`` reversed)."""
    strategy, symbol = str(key).split("|", 1)
    return strategy, symbol

"""Partitions: a dynamic ``symbol`` dimension that ingestion adds to, and strategy × symbol."""

from __future__ import annotations

import warnings

from dagster import BetaWarning, DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

symbol_partitions = DynamicPartitionsDefinition(name="symbol")
# The strategy key of backtests run from a YAML file outside strategy_configs (`backtest run-config`).
FILE_STRATEGY_KEY = "_file"


def backtest_partitions(strategy_names: list[str]) -> MultiPartitionsDefinition:
    """strategy (one key per YAML file, plus ``_file``) × symbol. Keys render as ``"<strategy>|<symbol>"``."""
    if FILE_STRATEGY_KEY in strategy_names:
        raise ValueError(f"the strategy name {FILE_STRATEGY_KEY!r} is reserved; rename {FILE_STRATEGY_KEY}.yaml")
    return MultiPartitionsDefinition(
        {"strategy": StaticPartitionsDefinition(sorted([*strategy_names, FILE_STRATEGY_KEY])),
         "symbol": symbol_partitions}
    )


# One key per parameter set of a sweep (``sma_crossover[fast_period=10,slow_period=30]``), added
# when a sweep is requested: a dynamic dimension, so the static strategy dimension (one key per
# file) and the automatic backtests on new bars stay as they are.
parameter_set_partitions = DynamicPartitionsDefinition(name="parameter_set")
sweep_set_partitions = MultiPartitionsDefinition({"parameter_set": parameter_set_partitions, "symbol": symbol_partitions})


def backtest_key(strategy: str, symbol: str) -> str:
    return f"{strategy}|{symbol}"

# MultiToSingleDimensionPartitionMapping (backtest ← bars of its symbol) is marked beta; it is
# the documented way to map a multi-partition onto one of its dimensions, so don't nag users.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*MultiToSingleDimensionPartitionMapping.*")

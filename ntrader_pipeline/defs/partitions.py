"""Partitions: a dynamic ``symbol`` dimension that ingestion adds to, and strategy × symbol."""

from __future__ import annotations

import warnings

from dagster import BetaWarning, DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

symbol_partitions = DynamicPartitionsDefinition(name="symbol")


def backtest_partitions(strategy_names: list[str]) -> MultiPartitionsDefinition:
    """strategy (one key per YAML file) × symbol. Keys render as ``"<strategy>|<symbol>"``."""
    return MultiPartitionsDefinition(
        {"strategy": StaticPartitionsDefinition(sorted(strategy_names)), "symbol": symbol_partitions}
    )


def backtest_key(strategy: str, symbol: str) -> str:
    return f"{strategy}|{symbol}"

# MultiToSingleDimensionPartitionMapping (backtest ← bars of its symbol) is marked beta; it is
# the documented way to map a multi-partition onto one of its dimensions, so don't nag users.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*MultiToSingleDimensionPartitionMapping.*")

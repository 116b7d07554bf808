"""The strategies ntrader ships, by the name a YAML file uses in ``strategy:``."""

from __future__ import annotations

from dataclasses import dataclass

from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig, Target
from ntrader_pipeline.core.strategies.sma_crossover import SMACrossover, SMACrossoverConfig


@dataclass(frozen=True)
class RegisteredStrategy:
    name: str
    strategy_cls: type[SignalStrategy]
    config_cls: type[SignalStrategyConfig]
    description: str


REGISTRY: dict[str, RegisteredStrategy] = {
    entry.name: entry
    for entry in [
        RegisteredStrategy(
            "sma_crossover",
            SMACrossover,
            SMACrossoverConfig,
            "Long when the fast SMA crosses above the slow SMA; exit (or short) on the cross down.",
        ),
    ]
}

__all__ = ["REGISTRY", "RegisteredStrategy", "SignalStrategy", "SignalStrategyConfig", "Target"]

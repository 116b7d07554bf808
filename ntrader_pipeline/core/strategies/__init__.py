"""The strategies ntrader ships, by the name a YAML file uses in ``strategy:``.

The registry names its classes by import path and loads them on first use: reading strategy files
(the code location does at load) must not import NautilusTrader, which costs seconds and ~300 MB.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig

# Risk fields are set from a YAML's ``backtest.risk`` block, never from its ``config``.
RISK_FIELDS = ("max_position_shares", "max_notional_per_order", "max_drawdown_pct")
_BASE_NAMES = ("SignalStrategy", "SignalStrategyConfig", "Target")

COMMON_PARAMETERS = {
    "sizing": "percent_equity (buy equity_percent % of equity) or fixed (fixed_quantity shares)",
    "equity_percent": "percent of current equity per entry, when sizing is percent_equity",
    "fixed_quantity": "shares per entry, when sizing is fixed",
    "allow_short": "false: long-only (short signals go flat); true: short signals sell short",
}


@dataclass(frozen=True)
class RegisteredStrategy:
    name: str
    module: str  # under ntrader_pipeline.core.strategies
    strategy_name: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)  # strategy-specific parameter help

    def _load(self, attribute: str) -> type:
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), attribute)

    @property
    def strategy_cls(self) -> type[SignalStrategy]:
        return self._load(self.strategy_name)

    @property
    def config_cls(self) -> type[SignalStrategyConfig]:
        return self._load(f"{self.strategy_name}Config")

    def parameter_table(self) -> list[dict]:
        """name, type, default and help of every parameter a YAML ``config:`` may set."""
        defaults = dict(
            zip(
                self.config_cls.__struct_fields__[-len(self.config_cls.__struct_defaults__) :],
                self.config_cls.__struct_defaults__,
                strict=True,
            )
        )
        helps = {**self.parameters, **COMMON_PARAMETERS}
        return [
            {"name": name, "type": type(defaults[name]).__name__, "default": defaults[name], "help": helps[name]}
            for name in [*self.parameters, *COMMON_PARAMETERS]
        ]

    def default_config(self) -> dict:
        return {row["name"]: row["default"] for row in self.parameter_table()}


REGISTRY: dict[str, RegisteredStrategy] = {
    entry.name: entry
    for entry in [
        RegisteredStrategy(
            "sma_crossover",
            "sma_crossover",
            "SMACrossover",
            "Long when the fast SMA crosses above the slow SMA; exit (or short) on the cross down.",
            {"fast_period": "bars in the fast simple moving average", "slow_period": "bars in the slow one"},
        ),
        RegisteredStrategy(
            "mean_reversion",
            "mean_reversion",
            "MeanReversion",
            "Bollinger bands: long below the lower band (short above the upper), exit at the middle band.",
            {
                "lookback": "bars in the band's mean and standard deviation",
                "k": "band half-width in standard deviations",
            },
        ),
        RegisteredStrategy(
            "momentum",
            "momentum",
            "Momentum",
            "RSI momentum: long when RSI rises above overbought; exit (or short) when it falls below oversold.",
            {
                "rsi_period": "bars in Wilder's RSI",
                "oversold": "RSI level (0-100) below which the strategy exits or goes short",
                "overbought": "RSI level (0-100) above which the strategy goes long",
                "rsi_seed": (
                    "nautilus (averages start at the first change) or classic (means of the first rsi_period changes)"
                ),
            },
        ),
    ]
}


def __getattr__(name: str) -> Any:
    """``SignalStrategy``, ``SignalStrategyConfig`` and ``Target``, imported on first use (PEP 562)."""
    if name in _BASE_NAMES:
        return getattr(importlib.import_module(f"{__name__}.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REGISTRY", "RISK_FIELDS", "RegisteredStrategy", "SignalStrategy", "SignalStrategyConfig", "Target"]

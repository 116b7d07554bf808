"""The strategies ntrader ships, by the name a YAML file uses in ``strategy:``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ntrader_pipeline.core.strategies.base import RISK_FIELDS, SignalStrategy, SignalStrategyConfig, Target
from ntrader_pipeline.core.strategies.mean_reversion import MeanReversion, MeanReversionConfig
from ntrader_pipeline.core.strategies.momentum import Momentum, MomentumConfig
from ntrader_pipeline.core.strategies.sma_crossover import SMACrossover, SMACrossoverConfig

COMMON_PARAMETERS = {
    "sizing": "percent_equity (buy equity_percent % of equity) or fixed (fixed_quantity shares)",
    "equity_percent": "percent of current equity per entry, when sizing is percent_equity",
    "fixed_quantity": "shares per entry, when sizing is fixed",
    "allow_short": "false: long-only (short signals go flat); true: short signals sell short",
}


@dataclass(frozen=True)
class RegisteredStrategy:
    name: str
    strategy_cls: type[SignalStrategy]
    config_cls: type[SignalStrategyConfig]
    description: str
    parameters: dict[str, str] = field(default_factory=dict)  # strategy-specific parameter help

    def parameter_table(self) -> list[dict]:
        """name, type, default and help of every parameter a YAML ``config:`` may set."""
        defaults = dict(zip(self.config_cls.__struct_fields__[-len(self.config_cls.__struct_defaults__):],
                            self.config_cls.__struct_defaults__, strict=True))
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
            SMACrossover,
            SMACrossoverConfig,
            "Long when the fast SMA crosses above the slow SMA; exit (or short) on the cross down.",
            {"fast_period": "bars in the fast simple moving average", "slow_period": "bars in the slow one"},
        ),
        RegisteredStrategy(
            "mean_reversion",
            MeanReversion,
            MeanReversionConfig,
            "Bollinger bands: long below the lower band (short above the upper), exit at the middle band.",
            {"lookback": "bars in the band's mean and standard deviation",
             "k": "band half-width in standard deviations"},
        ),
        RegisteredStrategy(
            "momentum",
            Momentum,
            MomentumConfig,
            "RSI momentum: long when RSI rises above overbought; exit (or short) when it falls below oversold.",
            {"rsi_period": "bars in Wilder's RSI",
             "oversold": "RSI level (0-100) below which the strategy exits or goes short",
             "overbought": "RSI level (0-100) above which the strategy goes long",
             "rsi_seed": "nautilus (averages start at the first change) or classic (means of the first rsi_period changes)"},
        ),
    ]
}

__all__ = ["REGISTRY", "RISK_FIELDS", "RegisteredStrategy", "SignalStrategy", "SignalStrategyConfig", "Target"]

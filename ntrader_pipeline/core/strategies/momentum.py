"""RSI momentum: ride strength, leave on weakness."""

from __future__ import annotations

from nautilus_trader.indicators import MovingAverageType, RelativeStrengthIndex
from nautilus_trader.model.data import Bar

from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig, Target


class MomentumConfig(SignalStrategyConfig, frozen=True):
    rsi_period: int = 14
    oversold: float = 30.0  # 0–100, as users know RSI
    overbought: float = 70.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rsi_period < 2:
            raise ValueError("rsi_period must be at least 2 bars")
        if not 0 < self.oversold < self.overbought < 100:
            raise ValueError("thresholds must satisfy 0 < oversold < overbought < 100 (RSI on the 0–100 scale)")
        if self.overbought <= 1:
            raise ValueError(
                f"overbought {self.overbought} looks like the 0–1 scale; thresholds are RSI on the 0–100 "
                f"scale: did you mean {self.oversold * 100:g} and {self.overbought * 100:g}?"
            )


class Momentum(SignalStrategy):
    """Long once RSI rises above ``overbought`` (strong upward momentum); out, or short if
    allowed, once RSI falls below ``oversold``; in between the position is held.

    RSI is Wilder's (gains and losses smoothed with alpha = 1 / rsi_period). NautilusTrader's
    RSI runs 0–1, so the 0–100 thresholds are divided by 100 here.
    """

    def __init__(self, config: MomentumConfig):
        super().__init__(config)
        self.rsi = RelativeStrengthIndex(config.rsi_period, MovingAverageType.WILDER)

    def indicators(self) -> list:
        return [self.rsi]

    def target(self, bar: Bar) -> Target | None:
        if self.rsi.value > self.config.overbought / 100.0:
            return Target.LONG
        if self.rsi.value < self.config.oversold / 100.0:
            return Target.SHORT
        return None

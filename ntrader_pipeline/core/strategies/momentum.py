"""RSI momentum: ride strength, leave on weakness."""

from __future__ import annotations

from nautilus_trader.indicators import MovingAverageType, RelativeStrengthIndex
from nautilus_trader.model.data import Bar

from ntrader_pipeline.core.indicators import ClassicWilderRSI
from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig, Target

RSI_SEEDS = ("nautilus", "classic")


class MomentumConfig(SignalStrategyConfig, frozen=True):
    rsi_period: int = 14
    oversold: float = 30.0  # 0–100, as users know RSI
    overbought: float = 70.0
    rsi_seed: str = "nautilus"  # or "classic": Wilder's first averages are means of the first rsi_period changes

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rsi_seed not in RSI_SEEDS:
            raise ValueError(f"rsi_seed must be one of {', '.join(RSI_SEEDS)}, not {self.rsi_seed!r}")
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
    RSI runs 0–1, so the 0–100 thresholds are divided by 100 here. ``rsi_seed: nautilus`` (the
    default) is NautilusTrader's RSI, whose averages start from the first change; ``classic``
    seeds them with the means of the first ``rsi_period`` changes (Wilder, backtrader, TA-Lib).
    """

    def __init__(self, config: MomentumConfig):
        super().__init__(config)
        if config.rsi_seed == "classic":
            self.rsi = ClassicWilderRSI(config.rsi_period)
        else:
            self.rsi = RelativeStrengthIndex(config.rsi_period, MovingAverageType.WILDER)

    def indicators(self) -> list:
        return [] if isinstance(self.rsi, ClassicWilderRSI) else [self.rsi]

    def observe(self, bar: Bar) -> None:
        if isinstance(self.rsi, ClassicWilderRSI):  # not a NautilusTrader indicator: fed here
            self.rsi.update(bar.close.as_double())

    def warmup_bars(self) -> int:
        if isinstance(self.rsi, ClassicWilderRSI):
            return self.config.rsi_period + 1  # rsi_period changes need one more close
        return super().warmup_bars()

    def target(self, bar: Bar) -> Target | None:
        if not self.rsi.initialized:
            return None
        if self.rsi.value > self.config.overbought / 100.0:
            return Target.LONG
        if self.rsi.value < self.config.oversold / 100.0:
            return Target.SHORT
        return None

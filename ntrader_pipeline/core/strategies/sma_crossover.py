"""Simple-moving-average crossover: long when the fast average crosses above the slow one."""

from __future__ import annotations

from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.data import Bar

from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig, Target


class SMACrossoverConfig(SignalStrategyConfig, frozen=True):
    fast_period: int = 10
    slow_period: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.fast_period < self.slow_period:
            raise ValueError("fast_period must be positive and below slow_period")


class SMACrossover(SignalStrategy):
    """Goes long on a golden cross, exits (or goes short) on a death cross.

    Only crosses trade: on the first bar where both averages exist the strategy notes which is
    above and waits for that to change.
    """

    def __init__(self, config: SMACrossoverConfig):
        super().__init__(config)
        self.fast = SimpleMovingAverage(config.fast_period)
        self.slow = SimpleMovingAverage(config.slow_period)
        self._fast_above: bool | None = None

    def indicators(self) -> list:
        return [self.fast, self.slow]

    def target(self, bar: Bar) -> Target | None:
        if self.fast.value == self.slow.value:
            return None
        above = self.fast.value > self.slow.value
        previous, self._fast_above = self._fast_above, above
        if previous is None or previous == above:
            return None
        return Target.LONG if above else Target.SHORT

"""Bollinger-band mean reversion: buy a stretch below the mean, sell it back at the mean."""

from __future__ import annotations

from nautilus_trader.indicators import BollingerBands
from nautilus_trader.model.data import Bar

from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig, Target


class MeanReversionConfig(SignalStrategyConfig, frozen=True):
    lookback: int = 20
    k: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lookback < 2:
            raise ValueError("lookback must be at least 2 bars")
        if self.k <= 0:
            raise ValueError("k (band width in standard deviations) must be positive")


class MeanReversion(SignalStrategy):
    """Long when the close falls below the lower band, short (if allowed) above the upper band;
    the position is closed when the close gets back to the middle band.

    The bands are NautilusTrader's ``BollingerBands(lookback, k)``: the simple mean of the
    typical price (high + low + close) / 3 over ``lookback`` bars, ± k population standard
    deviations of it. Signals compare the bar's close with the bands.
    """

    def __init__(self, config: MeanReversionConfig):
        super().__init__(config)
        self.bands = BollingerBands(config.lookback, config.k)

    def indicators(self) -> list:
        return [self.bands]

    def target(self, bar: Bar) -> Target | None:
        close = bar.close.as_double()
        if close < self.bands.lower:
            return Target.LONG
        if close > self.bands.upper:
            return Target.SHORT
        side = self.current_side()
        if side is Target.LONG and close >= self.bands.middle:
            return Target.FLAT
        if side is Target.SHORT and close <= self.bands.middle:
            return Target.FLAT
        return None

"""Indicators NautilusTrader does not offer in the form a user may expect."""

from __future__ import annotations


class ClassicWilderRSI:
    """Wilder's RSI seeded as in his book (and backtrader, TA-Lib): the first average gain and loss
    are the plain means of the first ``period`` price changes, then each is smoothed with
    alpha = 1 / period. NautilusTrader's ``RelativeStrengthIndex(period, WILDER)`` instead starts
    its averages from the first change, so early values (and early trades) differ.

    ``value`` runs 0–1 like NautilusTrader's; ``initialized`` once ``period`` changes were seen.
    """

    def __init__(self, period: int) -> None:
        if period < 2:
            raise ValueError("period must be at least 2")
        self.period = period
        self.value = 0.0
        self.initialized = False
        self._last: float | None = None
        self._gains: list[float] = []
        self._losses: list[float] = []
        self._avg_gain = 0.0
        self._avg_loss = 0.0

    def update(self, close: float) -> None:
        close = float(close)
        if self._last is None:
            self._last = close
            return
        change, self._last = close - self._last, close
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if not self.initialized:
            self._gains.append(gain)
            self._losses.append(loss)
            if len(self._gains) < self.period:
                return
            self._avg_gain = sum(self._gains) / self.period
            self._avg_loss = sum(self._losses) / self.period
            self.initialized = True
        else:
            self._avg_gain = (self._avg_gain * (self.period - 1) + gain) / self.period
            self._avg_loss = (self._avg_loss * (self.period - 1) + loss) / self.period
        total = self._avg_gain + self._avg_loss
        self.value = self._avg_gain / total if total > 0 else 0.5  # = 1 − 1 / (1 + RS)

"""Bar intervals and bar type names: what the code location needs at load, without pandas or the engine."""

from __future__ import annotations

from enum import Enum


class Timeframe(str, Enum):
    """Bar intervals a user can name, with their NautilusTrader spelling and length."""

    MIN1 = "1MIN"
    MIN5 = "5MIN"
    HOUR1 = "1HOUR"
    DAILY = "DAILY"

    @property
    def nautilus_spec(self) -> str:
        return {"1MIN": "1-MINUTE", "5MIN": "5-MINUTE", "1HOUR": "1-HOUR", "DAILY": "1-DAY"}[self.value]

    @property
    def nanos(self) -> int:
        minutes = {"1MIN": 1, "5MIN": 5, "1HOUR": 60, "DAILY": 1440}[self.value]
        return minutes * 60 * 1_000_000_000

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        key = text.strip().upper()
        aliases = {"1D": "DAILY", "1DAY": "DAILY", "DAY": "DAILY", "1M": "1MIN", "5M": "5MIN", "1H": "1HOUR"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown timeframe {text!r}; use one of {names}") from None

    @classmethod
    def of_bar_type(cls, bar_type: str) -> Timeframe:
        """The interval of a bar type string such as ``ORCL.XNAS-1-DAY-LAST-EXTERNAL``."""
        for timeframe in cls:
            if f"-{timeframe.nautilus_spec}-" in bar_type:
                return timeframe
        raise ValueError(f"cannot tell the bar interval of {bar_type!r}")


def bar_type_name(symbol: str, venue: str, timeframe: Timeframe) -> str:
    """The bar type as NautilusTrader spells it (and names the catalog folder), without importing it."""
    return f"{symbol}.{venue}-{timeframe.nautilus_spec}-LAST-EXTERNAL"

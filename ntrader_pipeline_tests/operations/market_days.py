"""Simulated trading days: the bars each day brings, as the files a vendor would drop in the inbox.

Two real symbols are sliced from the bundled Yahoo exports (their lines are copied as written),
and a third is a seeded random walk over XNYS sessions, so it passes the calendar-gap check. The
soak seeds each symbol with its history, then each day drops that day's one bar per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from ntrader_pipeline.core.calendar import exchange_calendar
from ntrader_pipeline.settings import SAMPLE_DATA_DIR

YAHOO_FILES = {
    "ORCL": SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv",
    "NVDA": SAMPLE_DATA_DIR / "NVDA_1999-2014_daily_yahoo.csv",
}
SYNTHETIC = "ACME"
SYMBOLS = (*YAHOO_FILES, SYNTHETIC)
HISTORY_START = "2013-01-02"  # the seed: about two years of bars before the simulated days
LAST_SESSION = "2014-12-31"  # the last bar of the bundled files
PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Bar:
    """One daily bar as its file states it (prices and volume are the file's exact decimals)."""

    session: pd.Timestamp
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    line: str  # the row as written in the file


@dataclass(frozen=True)
class MarketHistory:
    """Every bar the soak will deliver, per symbol, over ``sessions``."""

    header: dict[str, str]
    bars: dict[str, dict[pd.Timestamp, Bar]]
    sessions: list[pd.Timestamp]

    def write(self, path: Path, symbol: str, sessions: list[pd.Timestamp]) -> Path:
        """The file a vendor sends for ``sessions`` of ``symbol``."""
        rows = [self.bars[symbol][s].line for s in sessions]
        path.write_text("\n".join([self.header[symbol], *rows]) + "\n")
        return path

    def as_ib_sends(self, symbol: str, session: pd.Timestamp) -> Bar:
        """The bar as IB quotes it: prices in whole cents (the tick size), volume as is."""
        bar = self.bars[symbol][session]
        cents = {name: getattr(bar, name).quantize(Decimal("0.01")) for name in PRICE_FIELDS}
        return Bar(session, **cents, volume=bar.volume, line=f"(IB) {bar.line}")

    def write_malformed(self, path: Path, symbol: str, session: pd.Timestamp) -> Path:
        """The day's file with its high below its close: the rule names line 2, column high."""
        bar = self.bars[symbol][session]
        line = _plain_line(bar.session, bar.open, bar.close - Decimal("1.00"), bar.low, bar.close, bar.volume)
        path.write_text(f"{self.header[symbol]}\n{line}\n")
        return path


def market_history(days: int) -> MarketHistory:
    """Bars from ``HISTORY_START`` to the last session; the last ``days`` sessions are the soak's days."""
    calendar = exchange_calendar()
    sessions = list(calendar.sessions_in_range(HISTORY_START, LAST_SESSION))
    if days >= len(sessions) - 60:
        raise ValueError(f"at most {len(sessions) - 61} days: the seed needs a history to backtest")
    header, bars = {}, {}
    for symbol, path in YAHOO_FILES.items():
        header[symbol], bars[symbol] = _yahoo_bars(path, set(sessions))
    header[SYNTHETIC], bars[SYNTHETIC] = "timestamp,open,high,low,close,volume", _random_walk(sessions)
    for symbol in SYMBOLS:
        if list(bars[symbol]) != sessions:
            raise ValueError(f"{symbol} lacks bars for some XNYS sessions")
    return MarketHistory(header, bars, sessions)


def _yahoo_bars(path: Path, sessions: set[pd.Timestamp]) -> tuple[str, dict[pd.Timestamp, Bar]]:
    header, *lines = path.read_text().splitlines()
    bars = {}
    for line in lines:
        date, opened, high, low, close, _adj, volume = line.split(",")
        session = pd.Timestamp(date)
        if session in sessions:
            bars[session] = Bar(session, *map(Decimal, (opened, high, low, close, volume)), line)
    return header, bars


def _random_walk(sessions: list[pd.Timestamp], seed: int = 9) -> dict[pd.Timestamp, Bar]:
    """A reproducible OHLCV series, two decimals, consistent highs and lows."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, len(sessions))))
    bars = {}
    previous = close[0]
    for session, price in zip(sessions, close):
        opened, closed = _cents(previous), _cents(price)
        high = max(opened, closed) + _cents(abs(rng.normal(0, 0.4)))
        low = max(min(opened, closed) - _cents(abs(rng.normal(0, 0.4))), Decimal("0.01"))
        volume = Decimal(int(rng.integers(100_000, 5_000_000)))
        bars[session] = Bar(
            session, opened, high, low, closed, volume, _plain_line(session, opened, high, low, closed, volume)
        )
        previous = price
    return bars


def _cents(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _plain_line(session: pd.Timestamp, *values: Decimal) -> str:
    return ",".join([session.date().isoformat(), *(str(v) for v in values)])

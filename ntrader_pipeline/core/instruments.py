"""US-equity instruments built to fit the data (NautilusTrader's test provider hard-codes AAPL)."""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.model.currencies import USD
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Price, Quantity


def make_equity(symbol: str, venue: str, price_precision: int) -> Equity:
    """A USD equity traded in single shares, quoted to ``price_precision`` decimals."""
    increment = Decimal(1).scaleb(-price_precision)
    return Equity(
        instrument_id=InstrumentId(Symbol(symbol), Venue(venue)),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=price_precision,
        price_increment=Price(increment, price_precision),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )

"""Commissions: a per-share model with a per-order minimum and a cap, as US brokers charge.

The commission of an order is ``clamp(per_share × shares, minimum, max_percent % × trade value)``:
the cap wins over the minimum, so a tiny order never pays more than ``max_percent`` of its value.
NautilusTrader asks for a commission per *fill*; an order filled in several pieces is charged
the difference between the order's commission after and before each fill, so the pieces add up
to exactly the order's commission (the minimum is charged once per order, not per fill).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PerShareCommission:
    """Commission schedule; all zero means no fees."""

    per_share: Decimal = Decimal("0.005")
    minimum: Decimal = Decimal("1")
    max_percent: Decimal = Decimal("1")  # of trade value, in percent

    def order_commission(self, shares: Decimal, trade_value: Decimal) -> Decimal:
        """The commission of an order of ``shares`` worth ``trade_value`` in all, to the cent."""
        if shares == 0:
            return Decimal(0)
        fee = max(self.per_share * shares, self.minimum)
        fee = min(fee, self.max_percent / 100 * abs(trade_value))
        return fee.quantize(CENT, rounding=ROUND_HALF_UP)


ZERO_COMMISSION = PerShareCommission(Decimal(0), Decimal(0), Decimal(0))

"""The commission schedule of ``core.fees`` as a NautilusTrader fee model.

Apart from ``fees`` so that reading a strategy file (which holds a schedule) never imports the engine.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.backtest.models import FeeModel
from nautilus_trader.model.objects import Money

from ntrader_pipeline.core.fees import PerShareCommission


class PerShareFeeModel(FeeModel):
    """NautilusTrader fee model charging ``PerShareCommission`` per order, split over its fills."""

    def __init__(self, schedule: PerShareCommission):
        super().__init__()
        self.schedule = schedule

    def get_commission(self, order, fill_qty, fill_px, instrument) -> Money:
        # ``order`` does not yet include this fill: filled_qty and avg_px are what came before.
        before_qty = order.filled_qty.as_decimal()
        before_value = before_qty * Decimal(str(order.avg_px)) if before_qty else Decimal(0)
        after_qty = before_qty + fill_qty.as_decimal()
        after_value = before_value + fill_qty.as_decimal() * fill_px.as_decimal()
        fee = self.schedule.order_commission(after_qty, after_value) - self.schedule.order_commission(
            before_qty, before_value
        )
        return Money(fee, instrument.quote_currency)

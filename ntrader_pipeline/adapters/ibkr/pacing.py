"""IB's pacing rules for historical data, enforced before each request leaves the process.

IB answers a violation with error 162 and, after repeated ones, disconnects; NautilusTrader's
client does no pacing at all. The rules (all sliding windows over request send times):

- at most ``max_requests`` requests within ``window`` seconds (IB: 60 per 10 minutes);
- no identical request within ``identical_interval`` seconds (IB: 15 s);
- at most ``per_contract`` requests for one contract within ``per_contract_window`` (IB: 5 per 2 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class PacingLimits:
    max_requests: int = 60
    window: float = 600.0
    identical_interval: float = 15.0
    per_contract: int = 5
    per_contract_window: float = 2.0
    margin: float = 0.05  # seconds added to every wait: the gateway stamps arrival, not sending

    @classmethod
    def from_settings(cls, settings) -> PacingLimits:
        return cls(
            max_requests=settings.max_requests,
            window=settings.pacing_window,
            identical_interval=settings.identical_interval,
            per_contract=settings.per_contract_requests,
            per_contract_window=settings.per_contract_window,
        )


@dataclass(frozen=True)
class SentRequest:
    at: float
    contract: str
    key: Hashable
    pending: bool = False  # reserved, its answer not seen yet: it may reach the gateway any moment


# A reservation never confirmed (its process died) stops counting as "now" after this many seconds.
IN_FLIGHT_LIMIT = 300.0


def pacing_delay(sent: list[SentRequest], contract: str, key: Hashable, now: float, limits: PacingLimits) -> float:
    """Seconds to wait before ``key`` may be sent at ``now`` given what was ``sent`` (0: send now).

    A pending request counts as sent at ``now``: it was reserved, but under load it may arrive at
    the gateway well after its reservation, and the gateway counts arrivals.
    """
    sent = sorted(
        (SentRequest(min(now, r.at + IN_FLIGHT_LIMIT), r.contract, r.key) if r.pending else r for r in sent),
        key=lambda r: r.at,
    )
    ready = now
    in_window = [r.at for r in sent if now - r.at < limits.window]
    if len(in_window) >= limits.max_requests:
        ready = max(ready, in_window[len(in_window) - limits.max_requests] + limits.window)
    same = [r.at for r in sent if r.key == key and now - r.at < limits.identical_interval]
    if same:
        ready = max(ready, same[-1] + limits.identical_interval)
    burst = [r.at for r in sent if r.contract == contract and now - r.at < limits.per_contract_window]
    if len(burst) >= limits.per_contract:
        ready = max(ready, burst[len(burst) - limits.per_contract] + limits.per_contract_window)
    return 0.0 if ready == now else ready - now + limits.margin


def horizon(limits: PacingLimits) -> float:
    """How long a sent request matters to any rule."""
    return max(limits.window, limits.identical_interval, limits.per_contract_window)


class MemoryLedger:
    """The requests this process sent (enough when one process talks to the gateway)."""

    def __init__(self):
        self._sent: list[SentRequest] = []

    def reserve(self, contract: str, key: Hashable, now: float, limits: PacingLimits, pending: bool = False) -> float:
        """Record the request and return 0 when it may go at ``now``; else the seconds to wait."""
        keep = horizon(limits)
        self._sent = [r for r in self._sent if now - r.at < keep + (IN_FLIGHT_LIMIT if r.pending else 0)]
        wait = pacing_delay(self._sent, contract, key, now, limits)
        if wait == 0:
            self._sent.append(SentRequest(now, contract, key, pending))
        return wait

    def confirm(self, contract: str, key: Hashable, at: float) -> None:
        """The request's answer came at ``at``: from now on it counts as sent then."""
        for i in range(len(self._sent) - 1, -1, -1):
            r = self._sent[i]
            if r.pending and r.key == key and r.contract == contract:
                self._sent[i] = SentRequest(max(at, r.at), contract, key)
                return


class RequestPacer:
    """Waits until a request may be sent, then records it in its ledger.

    The ledger decides who else counts: ``MemoryLedger`` this process only; the warehouse ledger
    (``adapters.ibkr.ledger``) every process sharing the warehouse, with a wall clock.
    """

    def __init__(
        self,
        limits: PacingLimits,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ledger=None,
    ):
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.waited = 0.0  # total seconds spent waiting, for progress reports

    async def acquire(self, contract: str, key: Hashable, pending: bool = False) -> None:
        """Sleep until every rule allows the request, then count it as sent (``pending``: in flight)."""
        while (wait := self.ledger.reserve(contract, key, self._clock(), self.limits, pending)) > 0:
            self.waited += wait
            await self._sleep(wait)

    @asynccontextmanager
    async def slot(self, contract: str, key: Hashable) -> AsyncIterator[None]:
        """Acquire for a request sent inside the block; it counts as "now" until the block ends,
        then as sent when it ended (after the answer, so never earlier than the gateway saw it)."""
        await self.acquire(contract, key, pending=True)
        try:
            yield
        finally:
            self.ledger.confirm(contract, key, self._clock())

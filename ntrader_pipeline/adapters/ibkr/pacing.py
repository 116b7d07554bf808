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
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
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


def pacing_delay(sent: list[SentRequest], contract: str, key: Hashable, now: float, limits: PacingLimits) -> float:
    """Seconds to wait before ``key`` may be sent at ``now`` given what was ``sent`` (0: send now)."""
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
        self._sent: deque[SentRequest] = deque()

    def reserve(self, contract: str, key: Hashable, now: float, limits: PacingLimits) -> float:
        """Record the request and return 0 when it may go at ``now``; else the seconds to wait."""
        while self._sent and now - self._sent[0].at >= horizon(limits):
            self._sent.popleft()
        wait = pacing_delay(list(self._sent), contract, key, now, limits)
        if wait == 0:
            self._sent.append(SentRequest(now, contract, key))
        return wait


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

    async def acquire(self, contract: str, key: Hashable) -> None:
        """Sleep until every rule allows the request, then count it as sent."""
        while (wait := self.ledger.reserve(contract, key, self._clock(), self.limits)) > 0:
            self.waited += wait
            await self._sleep(wait)

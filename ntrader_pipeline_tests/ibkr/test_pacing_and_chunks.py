"""Pure rules: the pacer's waits (on a simulated clock) and which sessions become which requests."""

from __future__ import annotations

import asyncio
import threading
from datetime import date

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ntrader_pipeline.adapters.ibkr.chunking import MAX_REQUEST_DAYS, missing_runs, plan_chunks
from ntrader_pipeline.adapters.ibkr.ledger import WarehouseLedger, wall_clock
from ntrader_pipeline.adapters.ibkr.pacing import PacingLimits, RequestPacer
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import session_close_ns

IB = PacingLimits()  # IB's real limits: 60 / 600 s, identical 15 s, 5 per contract / 2 s


class SimulatedClock:
    """Time that passes only when the pacer sleeps, so minutes of IB pacing take no time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def send_all(requests: list[tuple[str, tuple]], gaps: list[float], limits: PacingLimits) -> list[float]:
    clock = SimulatedClock()
    pacer = RequestPacer(limits, clock=clock, sleep=clock.sleep)
    sent = []

    async def run():
        for (contract, key), gap in zip(requests, gaps):
            clock.now += gap
            await pacer.acquire(contract, key)
            sent.append(clock.now)

    asyncio.run(run())
    return sent


requests_strategy = st.lists(
    st.tuples(st.sampled_from(["AAPL", "MSFT", "ORCL"]), st.integers(0, 3)), min_size=1, max_size=150
)


@settings(max_examples=60, deadline=None)
@given(requests=requests_strategy, gaps=st.lists(st.floats(0, 20), min_size=150, max_size=150))
def test_any_request_sequence_keeps_ibs_three_rules(requests, gaps):
    keyed = [(contract, (contract, n)) for contract, n in requests]
    sent = send_all(keyed, gaps, IB)
    times = np.array(sent)
    for i, (contract, key) in enumerate(keyed):
        now = times[i]
        assert (times[:i] > now - IB.window).sum() < IB.max_requests
        same = [times[j] for j in range(i) if keyed[j][1] == key]
        assert all(now - t >= IB.identical_interval for t in same)
        burst = [times[j] for j in range(i) if keyed[j][0] == contract and now - times[j] < IB.per_contract_window]
        assert len(burst) < IB.per_contract


def test_the_61st_request_waits_for_the_first_to_leave_the_window():
    keyed = [("SYM%d" % (i % 20), ("SYM%d" % (i % 20), i)) for i in range(61)]
    sent = send_all(keyed, [0.0] * 61, IB)
    assert sent[59] < 600 <= sent[60] < 600.1  # 60 go by the burst rules, the 61st at 10 minutes


def test_a_sixth_request_for_one_contract_waits_two_seconds():
    keyed = [("AAPL", ("AAPL", i)) for i in range(6)]
    sent = send_all(keyed, [0.0] * 6, IB)
    assert sent[:5] == [0.0] * 5 and 2.0 <= sent[5] < 2.1


def test_an_identical_request_waits_fifteen_seconds():
    sent = send_all([("AAPL", ("AAPL", 1)), ("AAPL", ("AAPL", 1))], [0.0, 1.0], IB)
    assert sent[0] == 0.0 and 15.0 <= sent[1] < 15.1


def test_missing_runs_skip_stored_sessions_and_unfinished_ones():
    sessions = pd.Series(pd.to_datetime(["2024-01-03", "2024-01-04"]))
    stored = session_close_ns(sessions)  # Jan 3 and 4 stored
    now = pd.Timestamp("2024-01-10 18:00", tz="UTC").value  # Jan 10 has not closed yet
    runs = missing_runs(stored, date(2024, 1, 1), date(2024, 1, 12), now)
    assert runs == [[date(2024, 1, 2)], [date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9)]]


def test_chunks_never_exceed_what_ib_serves_per_bar_size():
    run = missing_runs(np.array([], dtype=np.int64), date(2024, 1, 1), date(2024, 3, 31), 10**19)[0]
    for timeframe, days in MAX_REQUEST_DAYS.items():
        chunks = plan_chunks(run, timeframe)
        assert [d for c in chunks for d in c.sessions] == run  # every session exactly once, in order
        assert all(int(c.duration.split()[0]) <= days for c in chunks)
    minute_chunks = plan_chunks(run, Timeframe.MIN1)
    # Jan 2 (Tue) .. Jan 8 (Mon) is 7 calendar days and 5 sessions; the request ends at Monday's close.
    assert minute_chunks[0].sessions[-1] == date(2024, 1, 8) and minute_chunks[0].duration == "7 D"
    assert minute_chunks[0].end == pd.Timestamp("2024-01-08 21:00", tz="UTC")
    assert len(plan_chunks(run, Timeframe.DAILY)) == 1


def test_pacers_on_one_warehouse_share_its_budget(warehouse_url):
    """Two pacers with their own warehouse connections (as two processes have) take turns."""
    limits = PacingLimits(max_requests=3, window=0.6, identical_interval=0.0, per_contract=10, per_contract_window=0.1)
    sent: list[float] = []

    def send_four(name: str) -> None:
        pacer = RequestPacer(limits, clock=wall_clock, ledger=WarehouseLedger(Warehouse(warehouse_url)))

        async def run():
            for i in range(4):
                async with pacer.slot(name, (name, i)):
                    sent.append(wall_clock())  # the "send": in flight until the block ends

        asyncio.run(run())

    Warehouse.open(warehouse_url)  # migrated once, as a real warehouse is
    threads = [threading.Thread(target=send_four, args=(name,)) for name in ("AAPL", "MSFT")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    times = sorted(sent)
    assert len(times) == 8
    assert all(sum(1 for u in times if t - limits.window < u <= t) <= limits.max_requests for t in times)
    assert times[-1] - times[0] >= limits.window  # 8 requests at 3 per window need more than two windows

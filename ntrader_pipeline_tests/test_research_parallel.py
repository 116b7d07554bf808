"""Research on every core: the worker pool on its own (order, exceptions, a worker killed mid-job)."""

from __future__ import annotations

import os
import signal

import pytest

from ntrader_pipeline.core.parallel import JobFailed, WorkerPool

# --- the pool ---------------------------------------------------------------------------------


def square_plus(shared: int, job: int) -> tuple[int, int]:
    return job * job + shared, os.getpid()


def fail_on_three(shared: None, job: int) -> int:
    if job == 3:
        raise ValueError(f"job {job} refuses")
    return job


def die_on_three(shared: None, job: int) -> int:
    if job == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def test_a_pool_maps_jobs_in_order_on_its_workers_with_the_shared_data_sent_once():
    with WorkerPool(2) as pool:
        outcomes = list(pool.map(square_plus, range(12), 100))
        again = list(pool.map(square_plus, range(3), 1))  # the same workers, new shared data
    assert [o.result()[0] for o in outcomes] == [j * j + 100 for j in range(12)]
    workers = {o.result()[1] for o in outcomes}
    assert len(workers) == 2 and os.getpid() not in workers
    assert [o.result()[0] for o in again] == [1, 2, 5]
    with WorkerPool(1) as alone:  # one process: the caller's own
        assert {o.result()[1] for o in alone.map(square_plus, range(3), 0)} == {os.getpid()}


def test_an_exception_in_a_job_comes_back_as_it_was_raised_and_the_others_finish():
    with WorkerPool(2) as pool:
        outcomes = list(pool.map(fail_on_three, range(6)))
    assert [o.value for o in outcomes if o.error is None] == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="job 3 refuses") as info:
        outcomes[3].result()
    assert any("in a worker process" in note for note in info.value.__notes__)


def test_a_worker_killed_mid_job_fails_that_job_alone():
    with WorkerPool(2) as pool:
        outcomes = list(pool.map(die_on_three, range(8)))
        after = [o.result() for o in pool.map(die_on_three, [10, 11])]  # replaced: the pool still works
    assert [o.value for o in outcomes if o.error is None] == [0, 1, 2, 4, 5, 6, 7]
    with pytest.raises(JobFailed, match=r"job 4 died \(exit code -9\)"):
        outcomes[3].result()
    assert after == [10, 11]

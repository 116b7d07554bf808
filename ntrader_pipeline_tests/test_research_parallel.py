"""Research on every core: the worker pool on its own (order, exceptions, a worker killed mid-job)."""

from __future__ import annotations

import os

import pytest

from ntrader_pipeline.core.parallel import JobFailed, WorkerPool
from ntrader_pipeline_tests.pool_jobs import die_in_a_worker_on_seven, fail_on_one_and_five, square_plus

# --- the pool ---------------------------------------------------------------------------------


def test_a_pool_maps_jobs_in_order_on_its_workers_with_the_shared_data_sent_once():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(square_plus, range(12), 100))
        again = list(pool.map(square_plus, range(3), 1))  # the same workers, new shared data
    assert [o.result()[0] for o in outcomes] == [j * j + 100 for j in range(12)]
    workers = {o.result()[1] for o in outcomes}
    assert 1 <= len(workers) <= 2 and os.getpid() not in workers  # the second may arrive after the work
    assert [o.result()[0] for o in again] == [1, 2, 5] and {o.result()[1] for o in again} <= workers


def test_the_caller_works_beside_its_workers_and_the_results_keep_their_order():
    with WorkerPool(3) as pool:  # this process and two workers, however many of them arrive in time
        outcomes = list(pool.map(square_plus, range(40), 7))
    assert [o.result()[0] for o in outcomes] == [j * j + 7 for j in range(40)]
    with WorkerPool(1) as alone:  # one process: the caller's own
        assert {o.result()[1] for o in alone.map(square_plus, range(3), 0)} == {os.getpid()}


def test_an_exception_in_a_job_comes_back_as_it_was_raised_and_the_others_finish():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(fail_on_one_and_five, range(6)))
    assert [o.value for o in outcomes if o.error is None] == [0, 2, 3, 4]
    for index in (1, 5):
        with pytest.raises(ValueError, match=f"job {index} refuses"):
            outcomes[index].result()
        assert any("in a worker process" in note for note in outcomes[index].error.__notes__)


def test_a_worker_killed_mid_job_fails_that_job_alone():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(die_in_a_worker_on_seven, range(10), os.getpid()))
        after = [o.result() for o in pool.map(square_plus, [10, 11], 0)]  # replaced: the pool still works
    assert [o.value for o in outcomes if o.error is None] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    with pytest.raises(JobFailed, match=r"job 8 died \(exit code -9\)"):
        outcomes[7].result()
    assert [value for value, _ in after] == [100, 121]

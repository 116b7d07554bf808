"""Jobs for the worker-pool tests, in a module of their own: a worker imports a job's module by name,
and a test module's imports (the CLI, the warehouse, the test fixtures) would cost it seconds."""

from __future__ import annotations

import os
import signal


def square_plus(shared: int, job: int) -> tuple[int, int]:
    return job * job + shared, os.getpid()


def fail_on_one_and_five(shared: None, job: int) -> int:
    if job in (1, 5):
        raise ValueError(f"job {job} refuses")
    return job


def die_in_a_worker_on_seven(caller: int, job: int) -> int:
    if job == 7 and os.getpid() != caller:  # never the caller (the test's own process)
        os.kill(os.getpid(), signal.SIGKILL)
    return job

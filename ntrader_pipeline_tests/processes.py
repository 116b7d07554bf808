"""Waiting for another process to reach a state, by what the kernel shows of it (never by time)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

TIMEOUT = 600.0  # a hang-catcher: on a loaded machine the states come within seconds


def wait_until_stopped(process: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    """Until ``process`` is stopped (it SIGSTOPped itself at a fault point); fails if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process {process.pid} ended ({process.returncode}) instead of stopping")
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {process.pid} did not stop within {timeout:.0f} s")


def wait_for_lock_waiter(lock: Path, process: subprocess.Popen, timeout: float = TIMEOUT) -> bool:
    """Until ``process`` waits for the flock on ``lock`` (``/proc/locks`` lists it as blocked).

    Returns False when the process ended first, without ever waiting there.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists():
            inode = os.stat(lock).st_ino
            for line in Path("/proc/locks").read_text().splitlines():
                fields = line.split()
                if len(fields) > 5 and fields[1] == "->" and fields[5] == str(process.pid):
                    if int(fields[6].rsplit(":", 1)[1]) == inode:
                        return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"process {process.pid} never waited for {lock} within {timeout:.0f} s")

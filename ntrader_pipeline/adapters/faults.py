"""Test-only fault hooks: die, freeze or stop at a named point of a write, as kill -9 or a power cut would.

``NTRADER_FAULT_KILL_AT=<phase>`` makes the process SIGKILL itself on reaching that phase. The
crash tests set it to prove every phase of a publish recoverable. ``NTRADER_FAULT_STOP_AT=<phase>``
makes it SIGSTOP itself there instead, holding whatever it holds, so a test can show what other
processes see at that instant and then let it go on (SIGCONT). ``NTRADER_FAULT_PAUSE_AT=<phase>``
makes it wait there (after writing ``<phase>.<pid>`` into ``NTRADER_FAULT_DIR``) until it is killed
from outside: the restart tests kill a whole stack while a run is surely mid-import. Nothing else
sets them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def kill_point(phase: str) -> None:
    if os.environ.get("NTRADER_FAULT_KILL_AT") == phase:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("NTRADER_FAULT_STOP_AT") == phase:
        os.kill(os.getpid(), signal.SIGSTOP)
    if os.environ.get("NTRADER_FAULT_PAUSE_AT") == phase:
        folder = Path(os.environ["NTRADER_FAULT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{phase}.{os.getpid()}").touch()
        while True:
            time.sleep(1)

"""A test-only fault hook: die (or freeze) at a named point of a write, as kill -9 or a power cut would.

``NTRADER_FAULT_KILL_AT=<phase>`` makes the process SIGKILL itself on reaching that phase. The
crash tests set it to prove every phase of a publish recoverable; nothing else does.
``NTRADER_FAULT_STOP_AT=<phase>`` makes it SIGSTOP itself there instead, holding whatever it holds,
so a test can show what other processes see at that instant and then let it go on (SIGCONT).
"""

from __future__ import annotations

import os
import signal


def kill_point(phase: str) -> None:
    if os.environ.get("NTRADER_FAULT_KILL_AT") == phase:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("NTRADER_FAULT_STOP_AT") == phase:
        os.kill(os.getpid(), signal.SIGSTOP)

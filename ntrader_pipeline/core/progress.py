"""Progress of long loops, shown by whoever runs them.

Core code wraps a loop in ``progress(total, description)`` and calls ``advance(label)`` per step.
By default nothing is shown; the CLI installs a Rich bar (or plain lines when its output is not a
terminal) with ``showing``. A Dagster run in the CLI's process is then shown the same way, and a
run in the UI's process logs through its own logger instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressSink(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def advance(self, label: str) -> None: ...
    def stop(self) -> None: ...


_sinks: list[ProgressSink] = []


@contextmanager
def showing(sink: ProgressSink) -> Iterator[None]:
    """Send every ``progress`` inside this block to ``sink``."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """``advance(label)`` once per step of a loop of ``total`` steps."""
    sinks = list(_sinks)
    for sink in sinks:
        sink.start(total, description)

    def advance(label: str = "") -> None:
        for sink in sinks:
            sink.advance(label)

    try:
        yield advance
    finally:
        for sink in sinks:
            sink.stop()

"""Helpers the command groups share: the pipeline, the warehouse and a Rich console.

Command modules import only click and rich at the top, everything else inside the command that
needs it: ``ntrader --help`` and commands that run nothing must not pay for importing Dagster,
NautilusTrader, pandas or SQLAlchemy (seconds).
"""

from __future__ import annotations

import os
import sys
from datetime import date
from typing import TYPE_CHECKING

import click
from rich.console import Console, ConsoleDimensions

from ntrader_pipeline.core.quoting import excerpt
from ntrader_pipeline.core.symbols import SymbolError, parse_symbol, parse_symbols

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ntrader_pipeline.adapters.stores import Stores
    from ntrader_pipeline.adapters.warehouse import Warehouse

PIPED_WIDTH = 160


class _Console(Console):
    """Rich's console, 160 columns wide when output is piped (Rich assumes 80 off a terminal), so
    tables stay readable and every summary figure fits beside a sweep set's name. COLUMNS, when
    set, says how wide the reader's screen is either way. Decided as it prints, not at import:
    the environment may change between commands of one process."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPED_WIDTH, measured.height)
        return measured

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size  # what Console's own setter does


console = _Console()
console._width = None  # Rich fixes COLUMNS at construction; read it as each command prints instead


def open_pipeline():
    from ntrader_pipeline.pipeline import Pipeline  # imports Dagster: only for commands that run jobs

    return Pipeline.open()


def open_stores() -> Stores:
    """The stores the current settings name (each opened when first used)."""
    from ntrader_pipeline.settings import get_settings

    return get_settings().stores()


def open_warehouse() -> Warehouse:
    return open_stores().warehouse()


def symbol_param(_ctx, param, value):
    """Click callback: a symbol (or a tuple of them) checked against the one symbol grammar."""
    if value is None:
        return None
    try:
        return tuple(parse_symbols(value)) if isinstance(value, tuple) else parse_symbol(value)
    except SymbolError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def timezone_param(_ctx, param, value: str | None) -> str | None:
    """Click callback: a time zone name pandas and the calendar know (``America/New_York``, ``UTC``)."""
    if value is None:
        return None
    from ntrader_pipeline.core.csv_bars import check_timezone

    try:
        return check_timezone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def calendar_param(_ctx, param, value: str | None) -> str | None:
    """Click callback: an exchange calendar exchange-calendars knows (``XNYS``, ``XLON``), as its code."""
    if value is None:
        return None
    from ntrader_pipeline.core.calendar import CalendarError, check_calendar

    try:
        return check_calendar(value)
    except CalendarError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def parse_date(_ctx, param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{excerpt(value)}' is not a date (YYYY-MM-DD)", param=param) from None


class ProgressDisplay:
    """Progress of ``core.progress`` loops: a Rich bar on a terminal, plain lines otherwise, on
    standard error so that ``--format json`` output stays clean."""

    def __init__(self) -> None:
        self.err = Console(stderr=True)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._plain: tuple[str, int, int] | None = None

    def start(self, total: int, description: str) -> None:
        if self.err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[label]}"),
                console=self.err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, label="")
        else:
            self._plain = (description, total, 0)
            print(f"{description}: 0/{total}", file=sys.stderr, flush=True)

    def advance(self, label: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, label=label)
        elif self._plain is not None:
            description, total, done = self._plain
            done += 1
            self._plain = (description, total, done)
            print(f"{description}: {done}/{total} {label}".rstrip(), file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task, self._plain = None, None, None


def showing_progress():
    """``with showing_progress():`` shows every core progress loop run inside it."""
    from ntrader_pipeline.core.progress import showing

    return showing(ProgressDisplay())

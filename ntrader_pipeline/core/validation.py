"""The rules every bar obeys, whatever its source (CSV, IBKR), checked column-wise.

A problem names the file line, the column, the value and the rule, so a user can find and fix it.
It quotes at most a short excerpt of one cell (``core.quoting``), never a whole line: messages
reach terminals, logs and the Dagster event log, and a file may hold anything (an environment
block read through ``/proc``, a private file behind a symlink, a 100 KB line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.quoting import excerpt, printable, shown_path

SHOWN_PROBLEMS = 20  # problems spelled out in an error message; the rest are counted


@dataclass(frozen=True)
class BarProblem:
    """One thing wrong with one cell (or row) of a source file.

    ``column`` and ``value`` are kept as excerpts (printable, at most ``EXCERPT_CHARS``), however
    long the header name or the cell was: a row or header problem has no value.
    """

    line: int  # 1-based line in the file, header = line 1; 0 for the file as a whole
    column: str | None
    value: str | None
    rule: str

    def __post_init__(self) -> None:
        for name in ("column", "value"):
            text = getattr(self, name)
            if text is not None:
                object.__setattr__(self, name, excerpt(text))

    def describe(self, file: str) -> str:
        file = shown_path(file)
        where = (f"{file}:{self.line}" if self.line else file) + (f" column '{self.column}'" if self.column else "")
        value = f" value '{self.value}':" if self.value is not None else ""
        return f"{where}:{value} {self.rule}"


def describe_problems(file: str, problems: list[BarProblem], limit: int = SHOWN_PROBLEMS) -> list[str]:
    """One line per problem, the first ``limit`` of them, then how many were left out."""
    lines = [p.describe(file) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more problems")
    return lines


class BarFileError(ValueError):
    """A source file that cannot become bars; carries every problem found."""

    def __init__(self, file: str | Path, problems: list[BarProblem], summary: str | None = None):
        self.file = str(file)
        self.problems = problems
        count = len(problems)
        default = f"{shown_path(self.file)}: {count} problem{'s' if count != 1 else ''}; nothing was imported"
        self.summary = printable(summary) if summary else default  # one line, whatever the file is called
        super().__init__("\n".join([self.summary, *describe_problems(self.file, problems)]))


def validate_bars(
    frame: pd.DataFrame,
    lines: np.ndarray,
    raw: Mapping[str, Any] | None = None,
    time_column: str = "timestamp",
) -> list[BarProblem]:
    """Every OHLCV rule a bar must obey, checked column-wise (no per-row Python).

    ``frame`` holds ``ts_event`` and the OHLCV floats in source order; ``lines[i]`` is row i's line
    in the source. ``raw`` (optional) maps a column to the source text of its cells (anything indexed
    by row), so messages quote the file's own text; ``time_column`` is the source's name for the timestamp column.
    """
    o, h, low, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    checks = [
        ("open", o <= 0, "price must be positive"),
        ("high", h <= 0, "price must be positive"),
        ("low", low <= 0, "price must be positive"),
        ("close", c <= 0, "price must be positive"),
        ("high", h < np.maximum.reduce([o, c, low]), "high is below open, close or low"),
        ("low", low > np.minimum(o, c), "low is above open or close"),
        ("volume", v < 0, "volume must not be negative"),
    ]
    problems = [
        BarProblem(int(lines[i]), column, _cell(frame, raw, column, int(i)), rule)
        for column, mask, rule in checks
        for i in np.flatnonzero(mask)
    ]
    problems += _order_problems(frame["ts_event"].to_numpy(dtype=np.int64), lines, frame, raw, time_column)
    return sorted(problems, key=lambda p: p.line)


def _order_problems(ts, lines, frame, raw, time_column) -> list[BarProblem]:
    """A bar must come after every bar above it: equal is a duplicate, earlier is out of order.

    Comparing with the running maximum (not just the previous row) means the rows left after
    dropping the flagged ones are strictly increasing.
    """
    if len(ts) < 2:
        return []
    running_max = np.maximum.accumulate(ts)
    index = np.arange(len(ts))
    holder = np.maximum.accumulate(np.where(ts == running_max, index, 0))  # row holding the max
    before_max, before_holder = running_max[:-1], holder[:-1]
    bad = np.flatnonzero(ts[1:] <= before_max) + 1
    problems = []
    for i in bad:
        other = int(lines[before_holder[i - 1]])
        rule = (
            f"duplicate timestamp (same as line {other})"
            if ts[i] == before_max[i - 1]
            else f"timestamp out of order (earlier than line {other})"
        )
        problems.append(BarProblem(int(lines[i]), time_column, _cell(frame, raw, "ts_event", int(i)), rule))
    return problems


def _cell(frame: pd.DataFrame, raw: Mapping[str, Any] | None, column: str, i: int) -> str:
    if raw is not None and column in raw:
        return str(raw[column][i])
    return repr_value(frame, column, i)


def repr_value(frame: pd.DataFrame, column: str, i: int) -> str:
    key = "ts_event" if column in ("timestamp", "ts_event") else column
    value = frame[key].iat[i]
    if key == "ts_event":
        return pd.Timestamp(int(value), tz="UTC").isoformat()
    return np.format_float_positional(float(value), trim="-")

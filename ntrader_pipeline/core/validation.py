"""The rules every bar obeys, whatever its source (CSV, IBKR), checked column-wise.

A problem names the file line, the column, the value and the rule, so a user can find and fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BarProblem:
    """One thing wrong with one cell (or row) of a source file."""

    line: int  # 1-based line in the file, header = line 1
    column: str | None
    value: str | None
    rule: str

    def describe(self, file: str) -> str:
        where = f"{file}:{self.line}" + (f" column {self.column!r}" if self.column else "")
        value = f" value {self.value!r}:" if self.value is not None else ""
        return f"{where}:{value} {self.rule}"


class BarFileError(ValueError):
    """A source file that cannot become bars; carries every problem found."""

    def __init__(self, file: str | Path, problems: list[BarProblem]):
        self.file = str(file)
        self.problems = problems
        shown = "; ".join(p.describe(self.file) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(shown + more)


def validate_bars(frame: pd.DataFrame, lines: np.ndarray) -> list[BarProblem]:
    """Every OHLCV rule a bar must obey, checked column-wise (no per-row Python)."""
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
    ts = frame["ts_event"].to_numpy()
    order = np.zeros(len(ts), dtype=bool)
    order[1:] = ts[1:] <= ts[:-1]
    checks.append(("timestamp", order, "timestamp is not after the previous bar's"))
    problems = [
        BarProblem(int(lines[i]), column, repr_value(frame, column, i), rule)
        for column, mask, rule in checks
        for i in np.flatnonzero(mask)
    ]
    return sorted(problems, key=lambda p: p.line)


def repr_value(frame: pd.DataFrame, column: str, i: int) -> str:
    key = "ts_event" if column == "timestamp" else column
    value = frame[key].iat[i]
    if key == "ts_event":
        return pd.Timestamp(int(value), tz="UTC").isoformat()
    return f"{value:g}"



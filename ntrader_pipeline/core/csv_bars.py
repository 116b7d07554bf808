"""Read an OHLCV CSV file into a validated ``BarSeries``, column-wise, with exact error locations.

Understood dialects: Yahoo exports (``Date,Open,High,Low,Close,Adj Close,Volume``), plain
``timestamp,open,high,low,close,volume``, separate date and time columns, header aliases in any
case and spacing, ``,`` ``;`` or tab delimiters, a UTF-8 BOM (or UTF-16 with BOM), ISO timestamps
with or without offsets, ``YYYYMMDD`` dates, epoch seconds or milliseconds.

Naive timestamps are read in the given timezone and stored in UTC. Intraday timestamps are
taken as bar *open* times and stored as close times (open + interval); a daily bar is stamped at
the close of its session on the series' exchange calendar (``calendar``, XNYS by default), the
date as the file writes it (never converted to the exchange's time zone first).
Line numbers are physical lines of the file (header = 1; blank lines count).

The whole file is parsed by pyarrow as text and converted with vectorised casts; only when a cast
fails does a slower (still vectorised) pass locate the bad cells.

Hostile input ends as a ``BarFileError`` naming the file (and the line when there is one), never
as another exception: what is not a regular file, or is larger than ``max_bytes``, is refused
before it is read; values NautilusTrader cannot hold (prices above ``PRICE_MAX``, volumes above
``QUANTITY_MAX``, more digits than an exact 64-bit price has, times outside 1970-2262) are
problems of their cell, like any other.
"""

from __future__ import annotations

import csv
import functools
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from nautilus_trader.model.objects import PRICE_MAX, QUANTITY_MAX

from ntrader_pipeline.core.bars import PRICE_COLUMNS, BarSeries, ReadNotes, Timeframe
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, CalendarError, check_calendar, session_close_ns
from ntrader_pipeline.core.paths import DEFAULT_MAX_CSV_BYTES, FileSnapshot, InputFileError, read_snapshot
from ntrader_pipeline.core.quoting import clipped, excerpt, shown_path
from ntrader_pipeline.core.validation import BarFileError, BarProblem, validate_bars

OnInvalid = Literal["reject", "skip"]
MAX_PRICE_DECIMALS = 9  # float64 holds these exactly for equity prices; the table keeps 10
DELIMITERS = (",", ";", "\t", "|")
MAX_LINE_BYTES = 1 << 20  # no bar needs more; pyarrow cannot parse a field that straddles its 16 MiB blocks
EXACT_TICKS = 2**53  # price * 10**decimals must stay below this to round-trip through float64 exactly
# Plain decimal notation (exponent allowed); anything else, Unicode digits included, is not a number.
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# Bar times NautilusTrader (unsigned ns since 1970) and pandas (signed 64-bit ns, until 2262-04-11)
# both hold, with a day to spare for the time zone and the bar's close.
FIRST_TIME, LAST_TIME = pd.Timestamp("1970-01-02"), pd.Timestamp("2262-04-09")
TIME_RANGE_RULE = "timestamp out of range: bars must fall between 1970-01-02 and 2262-04-09"

# Normalised header name (lower case, no spaces, underscores, dots or dashes) -> role.
ALIASES = {
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "datetimeutc": "timestamp",
    "ts": "timestamp",
    "localtime": "timestamp",
    "gmttime": "timestamp",
    "bartime": "timestamp",
    "timeutc": "timestamp",
    "date": "date",
    "day": "date",
    "tradedate": "date",
    "time": "time",
    "open": "open",
    "o": "open",
    "openprice": "open",
    "opening": "open",
    "high": "high",
    "h": "high",
    "highprice": "high",
    "max": "high",
    "low": "low",
    "l": "low",
    "lowprice": "low",
    "min": "low",
    "close": "close",
    "c": "close",
    "closeprice": "close",
    "last": "close",
    "closing": "close",
    "adjclose": "adj close",
    "adjustedclose": "adj close",
    "adjclosing": "adj close",
    "volume": "volume",
    "vol": "volume",
    "v": "volume",
    "qty": "volume",
    "totalvolume": "volume",
}


class _Cells:
    """The source text of a column's cells at ``rows``, made a Python string only when asked for:
    a million ``str`` objects per column would cost far more than the Arrow text they come from."""

    def __init__(self, text: pa.Array, rows: np.ndarray):
        self.text, self.rows = text, rows

    def __getitem__(self, i: int) -> str:
        return str(self.text[int(self.rows[i])])


class _LineCells:
    """One column's cells at file ``rows`` (0-based lines), split from the line text when asked for:
    the text of the number columns is dropped once parsed, and only problems quote it again."""

    def __init__(self, lines: _LineIndex, rows: np.ndarray, index: int, delimiter: str):
        self.lines, self.rows, self.index, self.delimiter = lines, rows, index, delimiter

    def __getitem__(self, i: int) -> str:
        fields = next(csv.reader([self.lines.text(int(self.rows[i]))], delimiter=self.delimiter))
        return fields[self.index].strip() if self.index < len(fields) else ""


@dataclass(frozen=True)
class _Columns:
    """Which source column (by position and header text) plays which role."""

    index: dict[str, int]
    names: dict[str, str]

    def name(self, role: str) -> str:
        return self.names[role]


class OptionError(ValueError):
    """An option of the read (not the file) that cannot be used."""


def check_timezone(name: str) -> str:
    """``name`` if it names a time zone (``America/New_York``, ``UTC``); else an ``OptionError`` saying so."""
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; "" or "../x" a ValueError
        raise OptionError(
            f"timezone '{excerpt(name)}' is not a time zone name (e.g. America/New_York, Europe/London, UTC)"
        ) from None
    return name


def _messages_quote_no_input(read):
    """Hostile input ends as a ``BarFileError`` whose message quotes no more than an excerpt of a cell,
    even when a parser fails in a way no rule foresaw: the parser's own text may quote the input."""

    @functools.wraps(read)
    def guarded(path, *args, **kwargs):
        try:
            with warnings.catch_warnings():
                # pandas warns (with the cell's text) when it falls back to parsing cell by cell;
                # such cells are reported as problems of their own.
                warnings.simplefilter("ignore", UserWarning)
                return read(path, *args, **kwargs)
        except (BarFileError, InputFileError, OptionError):
            raise
        except (ValueError, TypeError, ArithmeticError, csv.Error, pa.ArrowException) as exc:
            reason = f"cannot be read as bars ({type(exc).__name__}: {clipped(exc, 120)})"
            summary = f"{shown_path(path)}: {reason}; nothing was imported"
            raise BarFileError(path, [BarProblem(0, None, None, reason)], summary) from None

    return guarded


def _checked_options(on_invalid: str, timezone: str, calendar: str) -> str:
    """Refuse options no file could satisfy (an ``OptionError``); the calendar's canonical code."""
    if on_invalid not in ("reject", "skip"):
        raise OptionError(f"on_invalid must be 'reject' or 'skip', not {on_invalid!r}")
    check_timezone(timezone)
    try:
        return check_calendar(calendar)
    except CalendarError as exc:
        raise OptionError(str(exc)) from None


@_messages_quote_no_input
def read_bar_csv(
    path: str | Path,
    symbol: str,
    timeframe: Timeframe | None = None,
    timezone: str = "America/New_York",
    *,
    on_invalid: OnInvalid = "reject",
    adjusted: bool = False,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
    calendar: str = DEFAULT_CALENDAR,
) -> BarSeries:
    """Bars of ``path``; raise ``BarFileError`` listing every problem, or with ``on_invalid="skip"``
    drop the rows that have one and list them in ``series.notes.skipped``.

    ``adjusted`` scales open, high, low and close by ``Adj Close / Close`` (Yahoo exports), rounded
    to the file's price precision; volume is left as it is. A file larger than ``max_bytes`` is
    refused unread. ``calendar``: the exchange calendar whose sessions the bars follow.
    """
    calendar = _checked_options(on_invalid, timezone, calendar)
    path = Path(path)
    text, snapshot = _decoded_bytes(path, max_bytes)
    lines = _LineIndex(text)
    recheck = _unfinished_last_line(path, snapshot, lines, text)
    if recheck:
        recheck()
    if lines.header is None:
        raise BarFileError(path, [BarProblem(1, None, None, "file is empty")], f"{path}: file is empty")
    _refuse_long_lines(path, lines)
    header_line = lines.header + 1
    header_text = lines.text(lines.header)
    delimiter = max(DELIMITERS, key=header_text.count)
    names = [_unquote(n) for n in header_text.split(delimiter)]
    columns = _map_columns(path, names, header_line, adjusted)

    fields = lines.field_counts(delimiter)
    data_rows = lines.data_rows()
    if len(data_rows) == 0:
        raise BarFileError(path, [BarProblem(header_line + 1, None, None, "file has a header but no rows")])
    shape_ok = fields[data_rows] == len(names)
    problems = [  # the row is not quoted: a line of another kind of file may hold anything
        BarProblem(
            int(row) + 1,
            None,
            None,
            f"has {fields[row]} field{'s' if fields[row] != 1 else ''} but the header has {len(names)}",
        )
        for row in data_rows[~shape_ok]
    ]
    if unclosed := _unclosed_quotes(lines, data_rows, delimiter):  # pyarrow would join or drop such rows
        raise BarFileError(path, sorted(problems + unclosed, key=lambda p: p.line))
    rows = data_rows[shape_ok]
    file_lines = rows + 1
    read = _read_cells(lines, delimiter, names, columns, file_lines, adjusted)
    if read is None:  # pyarrow read quotes differently from the delimiter count
        raise BarFileError(path, _quote_problems(lines, data_rows, problems))
    raw, numbers, decimals, cell_problems = read
    problems += cell_problems
    wall, utc_ns, written, time_problems = _parse_times(raw, columns, file_lines, timezone)
    problems += time_problems

    parsed = np.ones(len(rows), dtype=bool)
    bad_lines = np.array([p.line for p in cell_problems + time_problems], dtype=np.int64)
    parsed &= ~np.isin(file_lines, bad_lines)
    if not parsed.any():
        _fail_or_empty(path, problems)

    time_name = _time_name(columns)
    interval_given = timeframe is not None
    if timeframe is None:
        try:
            timeframe = _infer_timeframe(path, wall[parsed], written[parsed], file_lines[parsed], time_name)
        except BarFileError:
            # Bad cells come first: without the rows they spoil the interval may show again.
            if problems:
                raise BarFileError(path, sorted(problems, key=lambda p: p.line)) from None
            raise
    time_text = _time_text(raw)
    grid_bad, grid_problems = _off_grid(wall, parsed, timeframe, file_lines, time_name, time_text)
    problems += grid_problems
    parsed &= ~grid_bad

    ts_event = _stamp(written, utc_ns, timeframe, calendar)
    frame = pd.DataFrame({"ts_event": ts_event, **{c: numbers[c] for c in PRICE_COLUMNS + ["volume"]}})
    keep_idx = np.flatnonzero(parsed)
    shown: dict[str, _Cells | _LineCells] = {
        c: _LineCells(lines, rows[keep_idx], columns.index[c], delimiter) for c in PRICE_COLUMNS + ["volume"]
    }
    shown["ts_event"] = _Cells(time_text, keep_idx)
    source_names = {c: columns.name(c) for c in PRICE_COLUMNS + ["volume"]}
    problems += [
        replace(p, column=source_names.get(p.column or "", p.column))
        for p in validate_bars(
            frame.iloc[keep_idx].reset_index(drop=True),
            file_lines[keep_idx],
            shown,
            time_name,
        )
    ]
    price_cells = {c: _LineCells(lines, rows, columns.index[c], delimiter) for c in PRICE_COLUMNS}
    problems += _inexact_prices(numbers, decimals, file_lines, parsed, problems, price_cells, source_names)
    problems.sort(key=lambda p: p.line)
    if problems and on_invalid == "reject":
        raise BarFileError(path, problems)
    keep = ~np.isin(file_lines, np.array([p.line for p in problems], dtype=np.int64))
    if not keep.any():
        _fail_or_empty(path, problems)

    precision = int(max(decimals[c][keep].max() for c in PRICE_COLUMNS))
    frame = frame[keep].reset_index(drop=True)
    notes = ReadNotes(
        file=str(path),
        source_rows=int(len(data_rows)),
        skipped=tuple(problems),
        adjusted=adjusted,
        interval_inferred=not interval_given,
        delimiter=delimiter,
    )
    if adjusted:
        frame = _adjust(path, frame, numbers["adj close"][keep], precision, file_lines[keep], columns)
    if recheck:
        recheck()  # grown while it was parsed
    return BarSeries(
        symbol=symbol.upper(),
        timeframe=timeframe,
        frame=frame,
        price_precision=precision,
        source="csv-adjusted" if adjusted else "csv",
        notes=notes,
        recheck=recheck,
        calendar=calendar,
    )


# --- bytes and lines ---------------------------------------------------------------------------


def _decoded_bytes(path: Path, max_bytes: int) -> tuple[bytes, FileSnapshot]:
    """The file as UTF-8 bytes without a BOM, as it was when opened, and the snapshot they come
    from; an undecodable byte is a problem at its line."""
    try:
        snapshot = read_snapshot(path, max_bytes, "CSV file (NTRADER_MAX_CSV_BYTES)")
        data = snapshot.data
    except InputFileError as exc:  # line 0: the problem is the file as a whole
        summary = f"{path}: {exc.reason}; nothing was imported"
        raise BarFileError(path, [BarProblem(0, None, None, exc.reason)], summary) from None
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise BarFileError(
            path, [BarProblem(1, None, f"bytes {data[:4].hex(' ')}", "UTF-32 text; save the file as UTF-8")]
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise _encoding_error(path, data, exc, "not valid UTF-16 text") from None
    while data.startswith(b"\xef\xbb\xbf"):  # editors that add a BOM to a file that has one
        data = data[3:]
    if b"\n" not in data and b"\r" in data:  # classic Mac line ends
        data = data.replace(b"\r", b"\n")
    if np.frombuffer(data, dtype=np.uint8).max(initial=0) >= 0x80:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _encoding_error(path, data, exc, "not UTF-8 text; save the file as UTF-8") from None
    return data, snapshot


UNFINISHED_RULE = (
    "the last line has no line end and the file changed size while it was read: "
    "it is still being written; import it once it is complete"
)


def _unfinished_last_line(path: Path, snapshot: FileSnapshot, lines: _LineIndex, text: bytes):
    """A check that raises when the snapshot's last line may have been cut by a writer: it has no
    line end and the file's size changed since it was opened. None when the last line is whole
    (it ends with a line end, or is blank): a complete file without a final newline is fine.

    The reader calls it after reading and after parsing; the store again, just before it publishes.
    """
    if not len(lines.starts) or text.endswith((b"\n", b"\r")) or lines.blank[-1]:
        return None
    problem = BarProblem(len(lines.starts), None, None, UNFINISHED_RULE)

    def recheck() -> None:
        if snapshot.changed_size():
            raise BarFileError(path, [problem])

    return recheck


def _encoding_error(path: Path, data: bytes, exc: UnicodeDecodeError, rule: str) -> BarFileError:
    line = data.count(b"\n", 0, exc.start) + 1
    value = data[exc.start : exc.end].hex(" ")
    return BarFileError(path, [BarProblem(line, None, f"bytes {value}", rule)])


class _LineIndex:
    """Where each physical line of the file starts and ends, computed with numpy."""

    def __init__(self, data: bytes):
        self.data = data
        self.bytes = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(self.bytes == 10)
        self.starts = np.concatenate([[0], newlines + 1])
        self.ends = np.concatenate([newlines, [len(data)]])
        if self.starts[-1] == len(data):  # the file ends with a newline: no last empty line
            self.starts, self.ends = self.starts[:-1], self.ends[:-1]
        content = self.ends - self.starts
        has_cr = np.zeros(len(self.ends), dtype=bool)
        nonempty = content > 0
        has_cr[nonempty] = self.bytes[self.ends[nonempty] - 1] == 13
        self.blank = (content - has_cr) == 0
        nonblank = np.flatnonzero(~self.blank)
        self.header = int(nonblank[0]) if len(nonblank) else None

    def text(self, row: int) -> str:
        return self.data[self.starts[row] : self.ends[row]].decode("utf-8", "replace").rstrip("\r")

    def data_rows(self) -> np.ndarray:
        rows = np.flatnonzero(~self.blank)
        return rows if self.header is None else rows[rows > self.header]

    def field_counts(self, delimiter: str) -> np.ndarray:
        """Fields per line, counting delimiters (quotes are not interpreted here)."""
        return self.byte_counts(delimiter) + 1

    def byte_counts(self, char: str) -> np.ndarray:
        """How often ``char`` (one ASCII byte) occurs on each line."""
        hits = np.flatnonzero(self.bytes == ord(char))
        return np.searchsorted(hits, self.ends) - np.searchsorted(hits, self.starts)

    def body(self) -> pa.Buffer:
        """The bytes after the header line, without copying."""
        start = self.ends[self.header] + 1
        return pa.py_buffer(memoryview(self.data)[start:])


def _refuse_long_lines(path: Path, lines: _LineIndex) -> None:
    lengths = lines.ends - lines.starts
    rule = f"line is longer than {MAX_LINE_BYTES:,} bytes (no bar needs that many)"
    if (lengths > MAX_LINE_BYTES).any():
        raise BarFileError(
            path, [BarProblem(int(r) + 1, None, None, rule) for r in np.flatnonzero(lengths > MAX_LINE_BYTES)]
        )


def _unclosed_quotes(lines: _LineIndex, data_rows: np.ndarray, delimiter: str) -> list[BarProblem]:
    """Lines with an odd number of quotes that the ``csv`` module cannot close (only those are parsed)."""
    problems = []
    for row in data_rows[lines.byte_counts('"')[data_rows] % 2 == 1]:
        text = lines.text(int(row))
        try:
            next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error:
            problems.append(
                BarProblem(int(row) + 1, None, None, 'unterminated quote: a field opens a " it never closes')
            )
    return problems


def _quote_problems(lines: _LineIndex, data_rows: np.ndarray, shape_problems: list[BarProblem]) -> list[BarProblem]:
    """Why pyarrow's rows differ from the plain split: a delimiter inside quotes.

    Only the (few) lines holding a quote are looked at, each with the standard ``csv`` module.
    """
    header = lines.header or 0  # a file without a header line never gets this far
    delimiter = max(DELIMITERS, key=lines.text(header).count)
    quoted = data_rows[lines.byte_counts('"')[data_rows] > 0]
    naive = lines.field_counts(delimiter)
    problems = []
    for row in quoted:
        text = lines.text(int(row))
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error:
            continue
        if len(fields) != naive[row]:
            problems.append(
                BarProblem(
                    int(row) + 1,
                    None,
                    None,
                    "quoted field containing the delimiter (not supported: remove the quotes or the delimiter)",
                )
            )
    fallback = [BarProblem(header + 1, None, None, "rows cannot be split into fields consistently")]
    return problems or shape_problems or fallback


def _unquote(name: str) -> str:
    return name.strip().strip('"').strip("'").strip()


def _normalise(name: str) -> str:
    return re.sub(r"[\s_.\-/()]+", "", name.lower())


def _map_columns(path: Path, names: list[str], line: int, adjusted: bool) -> _Columns:
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        role = ALIASES.get(_normalise(name))
        if role and role not in index:
            index[role] = position
    if "timestamp" not in index and "date" in index and "time" in index:
        pass  # separate date and time columns
    elif "timestamp" not in index and "date" in index:
        index["timestamp"] = index.pop("date")
    elif "timestamp" not in index and "time" in index:
        index["timestamp"] = index.pop("time")
    if "timestamp" in index:
        index.pop("date", None)
        index.pop("time", None)
    problems = []  # the header is not quoted: the first line of another kind of file may hold anything
    if "timestamp" not in index and not ("date" in index and "time" in index):
        problems.append(
            BarProblem(line, None, None, "no timestamp column (looked for timestamp, datetime, date, time and aliases)")
        )
    missing = [c for c in PRICE_COLUMNS + ["volume"] if c not in index]
    if missing:
        problems.append(BarProblem(line, None, None, f"no column for {', '.join(missing)}"))
    if adjusted and "adj close" not in index:
        problems.append(BarProblem(line, None, None, "--adjusted needs an 'Adj Close' column"))
    if problems:
        raise BarFileError(path, problems)
    if not adjusted:
        index.pop("adj close", None)
    return _Columns(index, {role: names[i] for role, i in index.items()})


READ_BLOCK = 1 << 24  # bytes pyarrow parses at a time: the unit of the bounded-memory read


def _read_cells(lines, delimiter, names, columns: _Columns, file_lines: np.ndarray, adjusted: bool):
    """Parse the file ``READ_BLOCK`` bytes at a time: the number cells become floats, decimal places
    and problems batch by batch (their text is dropped at once); the time text is kept whole,
    because its format (offsets, epoch unit, layout) is decided over the whole column.

    Returns the time text by role, numbers, decimal places and problems; or None when pyarrow split
    the rows differently from the delimiter count (a quoted delimiter).
    """
    number_roles = PRICE_COLUMNS + ["volume"] + (["adj close"] if adjusted else [])
    time_roles = [role for role in ("timestamp", "date", "time") if role in columns.index]
    numbers: dict[str, list] = {role: [] for role in number_roles}
    decimals: dict[str, list] = {role: [] for role in number_roles}
    times: dict[str, list] = {role: [] for role in time_roles}
    problems: list[BarProblem] = []
    done = 0
    for batch in _open_table(lines, delimiter, names, columns):
        n = batch.num_rows
        if done + n > len(file_lines):
            return None
        raw = {role: pc.utf8_trim_whitespace(batch.column(f"c{columns.index[role]}")) for role in number_roles}
        got_numbers, got_decimals, got_problems = _parse_numbers(raw, columns, file_lines[done : done + n], adjusted)
        for role in number_roles:
            numbers[role].append(got_numbers[role])
            decimals[role].append(np.minimum(got_decimals[role], 127).astype(np.int8))  # > 9 is a problem anyway
        problems += got_problems
        for role in time_roles:
            times[role].append(pc.utf8_trim_whitespace(batch.column(f"c{columns.index[role]}")))
        done += n
    if done != len(file_lines):
        return None
    time_text = {role: pa.chunked_array(times[role], pa.string()).combine_chunks() for role in time_roles}
    return (
        time_text,
        {role: np.concatenate(numbers[role] or [np.empty(0)]) for role in number_roles},
        {role: np.concatenate(decimals[role] or [np.empty(0, np.int8)]) for role in number_roles},
        problems,
    )


def _open_table(lines, delimiter, names, columns):
    names = [f"c{i}" for i in range(len(names))]
    wanted = [f"c{i}" for i in columns.index.values()]
    return pacsv.open_csv(
        lines.body(),
        read_options=pacsv.ReadOptions(column_names=names, block_size=READ_BLOCK),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda row: "skip"),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            include_columns=wanted,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


# --- numbers -----------------------------------------------------------------------------------


def _parse_numbers(raw, columns: _Columns, lines: np.ndarray, adjusted: bool):
    numbers: dict[str, np.ndarray] = {}
    decimals: dict[str, np.ndarray] = {}
    problems: list[BarProblem] = []
    roles = PRICE_COLUMNS + ["volume"] + (["adj close"] if adjusted else [])
    for role in roles:
        text = raw[role]
        name = columns.name(role)
        try:
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            unparsed = np.zeros(len(values), dtype=bool)
            unsure = ~np.isfinite(values)  # "nan", "inf" or a number too large: only these need NUMBER
        except pa.ArrowInvalid:
            values = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce").to_numpy(
                dtype=np.float64
            )
            unparsed = np.isnan(values)
            unsure = ~unparsed  # pandas also takes hex, "_" and non-ASCII digits
        if unsure.any():
            rows = np.flatnonzero(unsure)
            plain = pc.match_substring_regex(pc.take(text, pa.array(rows)), NUMBER).to_numpy(zero_copy_only=False)
            unparsed[rows[~plain]] = True
        bad = unparsed | np.isnan(values)  # a number too large for float64 is +-inf: a range problem below
        for i in np.flatnonzero(bad):
            cell = str(text[i])
            problems.append(BarProblem(int(lines[i]), name, cell, "missing value" if cell == "" else "not a number"))
        label, limit = ("volume", QUANTITY_MAX) if role == "volume" else ("price", PRICE_MAX)
        over = ~bad & (values > limit)
        for i in np.flatnonzero(over):
            problems.append(
                BarProblem(int(lines[i]), name, str(text[i]), f"{label} above NautilusTrader's maximum of {limit:.0f}")
            )
        bad |= over
        numbers[role] = np.where(bad, np.nan, values) + 0.0  # + 0.0 turns -0.0 into 0.0
        places = _decimal_places(text)
        decimals[role] = places
        if role in PRICE_COLUMNS or role == "adj close":
            if role == "adj close":
                for i in np.flatnonzero((values <= 0) & ~bad):
                    problems.append(BarProblem(int(lines[i]), name, str(text[i]), "price must be positive"))
            for i in np.flatnonzero((places > MAX_PRICE_DECIMALS) & ~bad):
                problems.append(
                    BarProblem(int(lines[i]), name, str(text[i]), f"more than {MAX_PRICE_DECIMALS} decimals")
                )
        else:
            for i in np.flatnonzero((values != np.floor(values)) & ~bad):
                problems.append(BarProblem(int(lines[i]), name, str(text[i]), "volume must be a whole number"))
    return numbers, decimals, problems


def _decimal_places(text: pa.Array) -> np.ndarray:
    """Decimal places each cell's value needs (0 for a whole number), exponents included:
    ``1.25`` → 2, ``1.5e-3`` → 4, ``15e1`` → 0."""
    dot = pc.find_substring(text, ".").to_numpy(zero_copy_only=False)
    length = pc.utf8_length(text).to_numpy(zero_copy_only=False)
    places = np.where(dot >= 0, length - dot - 1, 0).astype(np.int64)
    exp = [pc.find_substring(text, e).to_numpy(zero_copy_only=False) >= 0 for e in ("e", "E")]  # not ignore_case: slow
    rows = np.flatnonzero(exp[0] | exp[1])
    if len(rows):  # the rare cells with an exponent
        parts = pc.extract_regex(
            pc.take(text, pa.array(rows)), r"^[+-]?\d*(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[+-]?\d+))?$"
        )
        frac = pc.fill_null(pc.utf8_length(pc.struct_field(parts, "frac")), 0).to_numpy(zero_copy_only=False)
        exp_text = pc.fill_null(pc.struct_field(parts, "exp"), "")
        exp_text = pc.if_else(pc.equal(exp_text, ""), "0", exp_text)
        exponent = np.clip(pc.cast(exp_text, pa.float64()).to_numpy(zero_copy_only=False), -(10**6), 10**6)
        places[rows] = np.maximum(frac - exponent, 0)
    return places


def _inexact_prices(numbers, decimals, lines, parsed, problems, cells, names) -> list[BarProblem]:
    """Prices too large for the file's precision: stored as ``price * 10**decimals`` in 64 bits
    and read through float64, they would come back changed beyond 2**53 ticks."""
    ok = parsed & ~np.isin(lines, np.array([p.line for p in problems], dtype=np.int64))
    if not ok.any():
        return []
    precision = int(max(decimals[c][ok].max() for c in PRICE_COLUMNS))
    rule = (
        f"too large to store exactly at the file's {precision} decimals (price x 10^{precision} must stay below 2^53)"
    )
    return [
        BarProblem(int(lines[i]), names[c], cells[c][i], rule)
        for c in PRICE_COLUMNS
        for i in np.flatnonzero(ok & (np.abs(numbers[c]) * 10.0**precision >= EXACT_TICKS))
    ]


# --- timestamps --------------------------------------------------------------------------------

_OFFSET = r"(Z|z|[+-]\d\d:?\d\d)$"


def _time_name(columns: _Columns) -> str:
    if "timestamp" in columns.index:
        return columns.name("timestamp")
    return f"{columns.name('date')}+{columns.name('time')}"


def _time_text(raw) -> pa.Array:
    if "timestamp" in raw:
        return raw["timestamp"]
    return pc.binary_join_element_wise(raw["date"], raw["time"], " ")


def _parse_times(raw, columns: _Columns, lines: np.ndarray, timezone: str):
    """Each row's timestamp three ways (int64 ns): the wall clock in ``timezone``, UTC, and the wall
    clock as written (a naive stamp as it is, an offset stamp in its own offset, epoch in UTC).

    Intraday bars use the first two; a daily bar's session is the date as written (see ``_stamp``).
    """
    if "timestamp" in raw:
        text, name = raw["timestamp"], columns.name("timestamp")
    else:
        text = pc.binary_join_element_wise(raw["date"], raw["time"], " ")
        name = _time_name(columns)
    n = len(text)
    problems: list[BarProblem] = []

    def flag(mask: np.ndarray, rule: str) -> None:
        for i in np.flatnonzero(mask):
            cell = str(text[i])
            problems.append(BarProblem(int(lines[i]), name, cell, "missing value" if cell == "" else rule))

    digits = pc.match_substring_regex(text, r"^-?\d+$").to_numpy(zero_copy_only=False)
    offsets = np.zeros(n, dtype=np.int64)  # each stamp's UTC offset as written (epoch: UTC)
    if digits.all() and n:
        aware, bad, huge = _parse_digits(text)
        flag(bad, "not a timestamp")
        flag(huge, TIME_RANGE_RULE)
        bad |= huge
    else:
        has_offset = pc.match_substring_regex(text, _OFFSET).to_numpy(zero_copy_only=False)
        offset_rows = bool(has_offset.sum() * 2 > n)
        mixed = has_offset != offset_rows
        flag(
            mixed,
            "timestamp has a UTC offset while most rows have none"
            if not offset_rows
            else "timestamp has no UTC offset while most rows have one",
        )
        aware, bad = _parse_text(text, offset_rows)
        if offset_rows:
            offsets = _written_offsets(text)
        bad &= ~mixed
        flag(bad, "not a timestamp")
        bad |= mixed
    out = _out_of_range(aware) & ~bad
    flag(out, TIME_RANGE_RULE)
    bad |= out
    aware = aware.where(~out)  # NaT: only in-range times are converted to nanoseconds below

    if isinstance(aware, pd.DatetimeIndex) and aware.tz is None:
        local = aware.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        lost = np.asarray(local.isna()) & ~bad & ~np.asarray(aware.isna())
        if lost.any():
            day_light = aware.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
            gap = np.asarray(~day_light.isna()) & lost
            flag(gap, f"time does not exist in {timezone} (clocks jump forward)")
            flag(lost & ~gap, f"time is ambiguous in {timezone} (clocks fall back)")
            bad |= lost
        wall = written = aware
        utc = local
    else:
        utc = aware
        wall = aware.tz_convert(timezone).tz_localize(None)
        written = aware.tz_convert("UTC").tz_localize(None) + pd.to_timedelta(offsets, unit="ns")
    wall_ns = _ns(wall, bad)
    utc_ns = _ns(utc.tz_convert("UTC").tz_localize(None), bad)
    return wall_ns, utc_ns, _ns(written, bad), problems


def _written_offsets(text: pa.Array) -> np.ndarray:
    """The UTC offset each stamp is written with, in ns (``Z``, or none: 0)."""
    parts = pc.extract_regex(text, r"(?P<sign>[+-])(?P<hours>\d\d):?(?P<minutes>\d\d)$")

    def number(name: str) -> np.ndarray:
        return pc.cast(pc.fill_null(pc.struct_field(parts, name), "0"), pa.int64()).to_numpy(zero_copy_only=False)

    sign = np.where(pc.fill_null(pc.struct_field(parts, "sign"), "+").to_numpy(zero_copy_only=False) == "-", -1, 1)
    return sign * (number("hours") * 3600 + number("minutes") * 60) * 10**9


def _ns(index: pd.DatetimeIndex, bad: np.ndarray) -> np.ndarray:
    values = index.as_unit("ns").asi8.copy()
    values[bad | (values == np.iinfo(np.int64).min)] = 0
    return values


def _out_of_range(index: pd.DatetimeIndex) -> np.ndarray:
    first, last = (
        (FIRST_TIME, LAST_TIME) if index.tz is None else (FIRST_TIME.tz_localize("UTC"), LAST_TIME.tz_localize("UTC"))
    )
    return np.asarray((index < first) | (index > last))


def _parse_digits(text: pa.Array):
    """All-digit stamps: ``YYYYMMDD`` dates when 8 digits, else epoch seconds/ms/us/ns (UTC).

    Returns the times, the rows that are not timestamps and the rows beyond 64-bit nanoseconds.
    """
    lengths = pc.utf8_length(text).to_numpy(zero_copy_only=False)
    if (lengths == 8).all():
        stamps = pd.to_datetime(
            pd.Series(np.asarray(text.to_numpy(zero_copy_only=False))), format="%Y%m%d", errors="coerce"
        )
        index = pd.DatetimeIndex(stamps)
        return index, np.asarray(index.isna()), np.zeros(len(index), dtype=bool)
    huge = lengths > 18  # beyond int64: no epoch unit makes these a bar time
    values = pc.cast(pc.if_else(pa.array(huge), "0", text), pa.int64()).to_numpy(zero_copy_only=False)
    top = np.abs(values).max(initial=0)
    unit = "s" if top < 10**11 else "ms" if top < 10**14 else "us" if top < 10**17 else "ns"
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    huge |= np.abs(values) > np.iinfo(np.int64).max // scale
    index = pd.DatetimeIndex(pd.to_datetime(np.where(huge, 0, values) * scale, unit="ns", utc=True))
    return index.where(~huge), np.zeros(len(values), dtype=bool), huge


def _parse_text(text: pa.Array, with_offsets: bool):
    target = pa.timestamp("ns", "UTC") if with_offsets else pa.timestamp("ns")
    try:
        stamps = pc.cast(text, target).to_numpy(zero_copy_only=False)
        index = pd.DatetimeIndex(stamps)
        if with_offsets:
            index = index.tz_localize("UTC") if index.tz is None else index
        return index, np.zeros(len(index), dtype=bool)
    except pa.ArrowInvalid:
        pass
    series = pd.Series(text.to_numpy(zero_copy_only=False))
    try:
        parsed = pd.to_datetime(series, errors="coerce", utc=with_offsets)
        if parsed.isna().all():
            parsed = pd.to_datetime(series, errors="coerce", utc=with_offsets, format="mixed")
        index = pd.DatetimeIndex(parsed)
    except (ValueError, OverflowError):  # e.g. a zone found where the file has none: cell by cell
        index = _parse_each(series, with_offsets)
    return index, np.asarray(index.isna())


def _parse_each(cells: pd.Series, with_offsets: bool) -> pd.DatetimeIndex:
    """The slow path for text pandas refuses as a whole: each cell alone, NaT when it is not a
    timestamp or has (or lacks) a zone unlike the file."""
    stamps = []
    for cell in cells:
        try:
            stamp = pd.Timestamp(cell)
        except (ValueError, TypeError, OverflowError):
            stamp = pd.NaT
        if stamp is not pd.NaT and (stamp.tz is not None) != with_offsets:
            stamp = pd.NaT
        stamps.append(stamp.tz_convert("UTC") if stamp is not pd.NaT and with_offsets else stamp)
    index = pd.DatetimeIndex(stamps, dtype="datetime64[us, UTC]" if with_offsets else "datetime64[us]")
    return index


# --- intervals ---------------------------------------------------------------------------------

DAY_NS = 86_400 * 10**9


def _infer_timeframe(path, wall: np.ndarray, written: np.ndarray, lines: np.ndarray, name: str) -> Timeframe:
    """The most common step between consecutive bars; stamps written at midnight are daily bars."""
    if len(written) and (written % DAY_NS == 0).all():
        return Timeframe.DAILY
    order = np.argsort(wall, kind="stable")  # out-of-order rows are reported later, not here
    all_steps = np.diff(wall[order])
    steps = all_steps[all_steps > 0]
    if len(steps) == 0:
        raise BarFileError(
            path,
            [
                BarProblem(
                    int(lines[0]), name, None, "cannot infer the interval from a single intraday bar; pass --timeframe"
                )
            ],
        )
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])
    supported = {tf.nanos: tf for tf in (Timeframe.MIN1, Timeframe.MIN5, Timeframe.HOUR1)}
    if step >= DAY_NS:
        return Timeframe.DAILY
    if step in supported:
        return supported[step]
    known = np.isin(values, list(supported))
    if known.any():  # mostly irregular with some regular steps: the odd rows are reported off-grid
        return supported[int(values[known][np.argmax(counts[known])])]
    where = int(lines[order[1 + int(np.flatnonzero(all_steps == step)[0])]])
    raise BarFileError(
        path,
        [
            BarProblem(
                where,
                name,
                None,
                f"cannot infer the interval: the most common step is {step / 60e9:g} minutes; "
                "supported are 1MIN, 5MIN, 1HOUR and DAILY (pass --timeframe)",
            )
        ],
    )


def _off_grid(wall, parsed, timeframe: Timeframe, lines, name, cells):
    """Intraday bars must share one grid (e.g. every 5 minutes from :00); others are a mixed interval."""
    bad = np.zeros(len(wall), dtype=bool)
    if timeframe is Timeframe.DAILY or not parsed.any():
        return bad, []
    phase = wall % timeframe.nanos
    values, counts = np.unique(phase[parsed], return_counts=True)
    common = values[np.argmax(counts)]
    bad = parsed & (phase != common)
    rule = f"mixed intervals: not on the {timeframe.value} grid of the other bars"
    return bad, [BarProblem(int(lines[i]), name, str(cells[i]), rule) for i in np.flatnonzero(bad)]


def _stamp(written: np.ndarray, utc_ns: np.ndarray, timeframe: Timeframe, calendar: str) -> np.ndarray:
    """Bar close times in UTC ns: open + interval for intraday bars; for a daily bar the close of its
    session, the date as the file writes it (``2014-10-21T00:00:00Z`` is the 21st's bar, though it
    is the 20th in New York; epoch stamps count from UTC midnight, so their UTC date)."""
    if timeframe is Timeframe.DAILY:
        days = pd.Series(pd.DatetimeIndex(written.astype("datetime64[ns]")).normalize())
        return session_close_ns(days, calendar)
    return utc_ns + timeframe.nanos


# --- outcomes ----------------------------------------------------------------------------------


def _fail_or_empty(path: Path, problems: list[BarProblem]) -> None:
    problems = sorted(problems, key=lambda p: p.line)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    raise BarFileError(path, problems, f"{path}: no valid bars ({count}); nothing was imported")


def _adjust(path, frame: pd.DataFrame, adj_close: np.ndarray, precision: int, lines, columns) -> pd.DataFrame:
    """Yahoo's adjustment: OHLC times Adj Close / Close, rounded to the file's precision."""
    factor = adj_close / frame["close"].to_numpy()
    adjusted = frame.copy()
    for column in PRICE_COLUMNS:
        adjusted[column] = np.round(frame[column].to_numpy() * factor, precision)
    zero = np.flatnonzero((adjusted[PRICE_COLUMNS].to_numpy() <= 0).any(axis=1))
    if len(zero):
        raise BarFileError(
            path,
            [
                BarProblem(
                    int(lines[i]),
                    columns.name("adj close"),
                    str(adj_close[i]),
                    f"adjusted price rounds to zero at {precision} decimals",
                )
                for i in zero
            ],
        )
    return adjusted

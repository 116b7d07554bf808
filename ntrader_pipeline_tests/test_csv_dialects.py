"""Every supported dialect of the same three one-minute bars reads to the very same series."""

from __future__ import annotations

import pandas as pd
import pytest

from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.validation import BarFileError

PLAIN = """timestamp,open,high,low,close,volume
2024-03-11 09:30:00,10.50,10.75,10.25,10.60,1000
2024-03-11 09:31:00,10.60,10.80,10.55,10.70,1200
2024-03-11 09:32:00,10.70,10.90,10.65,10.85,900
"""
# 09:30 New York on 2024-03-11 (EDT, the day after the switch) is 13:30 UTC; bars close a minute later.
EPOCH_S = [int(pd.Timestamp(f"2024-03-11 13:3{i}", tz="UTC").timestamp()) for i in range(3)]
ROWS = [r.split(",")[1:] for r in PLAIN.splitlines()[1:]]


def _rows(stamps, delimiter=","):
    return "\n".join(delimiter.join([s, *r]) for s, r in zip(stamps, ROWS, strict=True)) + "\n"


DIALECTS = {
    "plain": PLAIN.encode(),
    "bom_crlf": b"\xef\xbb\xbf" + PLAIN.replace("\n", "\r\n").encode(),
    "utf16_excel_tab": PLAIN.replace(",", "\t").encode("utf-16"),
    "semicolon_aliases_case": PLAIN.replace(",", ";")
    .replace("timestamp;open;high;low;close;volume", " Datetime ; OPEN;High ;low;Last; Vol ")
    .encode(),
    "date_and_time_columns": (
        "Date,Time,Open,High,Low,Close,Volume\n" + PLAIN.split("\n", 1)[1].replace("2024-03-11 ", "2024-03-11,")
    ).encode(),
    "iso_with_offsets": (
        "timestamp,open,high,low,close,volume\n" + _rows([f"2024-03-11T09:3{i}:00-04:00" for i in range(3)])
    ).encode(),
    "iso_utc_z": (
        "timestamp,open,high,low,close,volume\n" + _rows([f"2024-03-11T13:3{i}:00Z" for i in range(3)])
    ).encode(),
    "epoch_seconds": ("time,open,high,low,close,volume\n" + _rows([str(s) for s in EPOCH_S])).encode(),
    "epoch_millis": ("ts,o,h,l,c,v\n" + _rows([str(s * 1000) for s in EPOCH_S])).encode(),
    "blank_lines_and_spaces": (
        "timestamp, open, high, low, close, volume\n\n" + _rows([f" 2024-03-11 09:3{i}:00 " for i in range(3)]) + "\n\n"
    ).encode(),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "plain.csv"
    path.write_bytes(DIALECTS["plain"])
    return read_bar_csv(path, "T")


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_dialect_reads_to_the_same_bars(tmp_path, reference, name):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(DIALECTS[name])
    series = read_bar_csv(path, "T")
    assert series.timeframe is Timeframe.MIN1
    assert series.price_precision == 2
    pd.testing.assert_frame_equal(series.frame, reference.frame)


def test_reference_is_stamped_at_bar_close_in_utc(reference):
    assert reference.frame["ts_event"].tolist() == [(s + 60) * 10**9 for s in EPOCH_S]


def test_interval_is_inferred_from_the_most_common_step(tmp_path):
    path = tmp_path / "five.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n" + _rows(["2024-03-11 09:30", "2024-03-11 09:35", "2024-03-11 09:45"])
    )
    series = read_bar_csv(path, "T")
    assert series.timeframe is Timeframe.MIN5
    assert series.frame["ts_event"].iloc[0] == pd.Timestamp("2024-03-11 13:35", tz="UTC").value


def test_yyyymmdd_dates_are_daily_bars_at_the_session_close(tmp_path):
    path = tmp_path / "daily.csv"
    # 2024-11-29 is the day after Thanksgiving: NYSE closes early at 13:00 New York (18:00 UTC).
    path.write_text("Date,Open,High,Low,Close,Volume\n" + _rows(["20241127", "20241129", "20241202"]))
    series = read_bar_csv(path, "T")
    assert series.timeframe is Timeframe.DAILY
    assert series.frame["ts_event"].tolist() == [
        pd.Timestamp(t, tz="UTC").value for t in ("2024-11-27 21:00", "2024-11-29 18:00", "2024-12-02 21:00")
    ]


def test_adjusted_needs_an_adj_close_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_bytes(DIALECTS["plain"])
    with pytest.raises(BarFileError) as caught:
        read_bar_csv(path, "T", adjusted=True)
    assert [p.rule for p in caught.value.problems] == ["--adjusted needs an 'Adj Close' column"]

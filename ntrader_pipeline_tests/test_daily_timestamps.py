"""A daily bar's date is its session: the calendar date as the file writes it, in every timestamp form.

Vendors stamp daily bars at UTC midnight (``2014-10-21T00:00:00Z``), at the close with an offset,
as plain dates or as epoch seconds. Converting such a stamp to New York before taking its date put
UTC-midnight bars one session early (the 21st's bar at the 20th's close). Each form below is ORCL's
sessions 2014-10-20 .. 2014-11-05, across the end of daylight saving time on 2 November, and must
give the bars the plain Yahoo dates give, each at its own session's close.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import ORCL_DAILY

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def orcl_rows() -> list[list[str]]:
    """ORCL's 13 sessions 2014-10-20 .. 2014-11-05 as Yahoo writes them."""
    rows = [line.split(",") for line in ORCL_DAILY.read_text().splitlines()[1:]]
    return [r for r in rows if "2014-10-20" <= r[0] <= "2014-11-05"]


def epoch(day: str, unit: int = 1) -> str:
    return str(int(pd.Timestamp(day, tz="UTC").timestamp()) * unit)


FORMS = {
    "utc_midnight_z": lambda day: f"{day}T00:00:00Z",
    "utc_midnight_offset": lambda day: f"{day}T00:00:00+00:00",
    "utc_midnight_space": lambda day: f"{day} 00:00:00+0000",
    "close_in_new_york_offset": lambda day: f"{day}T16:00:00{'-04:00' if day < '2014-11-02' else '-05:00'}",
    "close_in_utc": lambda day: f"{day}T{'20' if day < '2014-11-02' else '21'}:00:00Z",
    "local_midnight_tokyo": lambda day: f"{day}T00:00:00+09:00",
    "naive_midnight": lambda day: f"{day} 00:00:00",
    "yyyymmdd": lambda day: day.replace("-", ""),
    "epoch_seconds_utc_midnight": epoch,
    "epoch_millis_utc_midnight": lambda day: epoch(day, 1000),
}


def write(folder: Path, name: str, stamp) -> Path:
    path = folder / f"ORCL_{name}.csv"
    path.write_text("\n".join([HEADER, *(",".join([stamp(r[0]), *r[1:]]) for r in orcl_rows())]) + "\n")
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same sessions with Yahoo's plain dates: what every form must read to."""
    return read_bar_csv(write(tmp_path_factory.mktemp("plain"), "plain", lambda day: day), "ORCL")


def test_plain_dates_are_stamped_at_each_sessions_close(plain) -> None:
    closes = pd.to_datetime(plain.frame["ts_event"], utc=True)
    assert closes.iloc[0] == pd.Timestamp("2014-10-20 20:00", tz="UTC")  # 16:00 New York, daylight time
    assert closes.iloc[-1] == pd.Timestamp("2014-11-05 21:00", tz="UTC")  # 16:00 New York, standard time
    assert len(plain) == 13


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_timestamp_form_of_a_daily_file_gives_the_sessions_it_writes(tmp_path, plain, name) -> None:
    series = read_bar_csv(write(tmp_path, name, FORMS[name]), "ORCL")
    assert series.timeframe is Timeframe.DAILY
    pd.testing.assert_frame_equal(series.frame, plain.frame)


@pytest.mark.parametrize("name", ["naive_midnight", "utc_midnight_z", "epoch_seconds_utc_midnight"])
def test_the_timezone_option_does_not_move_a_daily_bar(tmp_path, plain, name) -> None:
    series = read_bar_csv(write(tmp_path, name, FORMS[name]), "ORCL", timezone="Asia/Tokyo")
    pd.testing.assert_frame_equal(series.frame, plain.frame)


def test_importing_a_utc_midnight_file_stores_each_bar_at_its_own_session(tmp_path, ntrader_home, monkeypatch) -> None:
    """`ntrader data import-csv` of a file stamped `2014-10-21T00:00:00Z`: the bar of the 21st is
    stored at the 21st's close, as the plain dates would store it, not at the 20th's."""
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()
    path = write(tmp_path, "utc_midnight", FORMS["utc_midnight_z"])

    imported = runner.invoke(cli, ["data", "import-csv", "--file", str(path), "--symbol", "ORCL"])

    assert imported.exit_code == 0, imported.output
    listed = runner.invoke(cli, ["data", "list", "--symbol", "ORCL", "--format", "json"])
    [row] = json.loads(listed.stdout)
    assert (row["first"], row["last"]) == ("2014-10-20T20:00:00+00:00", "2014-11-05T21:00:00+00:00")
    stored = BarCatalog(ntrader_home.resolved_catalog_path, "XNAS").read("ORCL", Timeframe.DAILY)
    assert stored.content_hash() == read_bar_csv(write(tmp_path, "plain", lambda day: day), "ORCL").content_hash()

"""The bundled real files through `ntrader data import-csv` and `data list` (real Dagster runs).

AAPL's bar at line 33 (open above high) is rejected by default and skipped with --on-invalid skip.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline_tests.support import AAPL_MINUTE, NVDA_DAILY, ORCL_DAILY

AAPL_PROBLEM = f"{AAPL_MINUTE}:33 column 'high': value '191.25': high is below open, close or low"


@pytest.fixture
def run(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def _json_list(run, *args) -> list[dict]:
    result = run("data", "list", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_aapl_bad_bar_rejects_the_file_and_writes_nothing(run, ntrader_home):
    result = run("data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        AAPL_PROBLEM,
        f"error: {AAPL_MINUTE}: 1 problem; nothing was imported",
    ]
    assert "Traceback" not in result.output
    assert _json_list(run) == []
    assert BarCatalog(ntrader_home.resolved_catalog_path, "XNAS").bar_files("AAPL", Timeframe.MIN1) == []


def test_aapl_skip_imports_the_other_50_bars_and_lists_the_skipped_one(run):
    result = run("data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "aapl", "--on-invalid", "skip")
    assert result.exit_code == 0, result.output
    assert "Imported 50 bars of AAPL.XNAS-1-MINUTE-LAST-EXTERNAL" in result.stdout
    assert "Skipped 1 of 51 rows:" in result.stdout
    assert f"  {AAPL_PROBLEM}" in result.stdout.splitlines()
    assert _json_list(run, "--symbol", "AAPL") == [
        {
            "symbol": "AAPL",
            "bar_type": "AAPL.XNAS-1-MINUTE-LAST-EXTERNAL",
            "source": "csv",
            "bars": 50,
            "first": "2024-01-02T14:31:00+00:00",  # 09:30 New York open + 1 minute, in UTC
            "last": "2024-01-02T15:21:00+00:00",
        }
    ]


def test_yahoo_files_import_plain_and_adjusted(run, ntrader_home):
    assert run("data", "import-csv", "--file", str(NVDA_DAILY), "--symbol", "NVDA").exit_code == 0
    result = run("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL", "--adjusted")
    assert result.exit_code == 0, result.output
    assert "adjusted by Adj Close / Close" in result.stdout
    listed = {row["symbol"]: row for row in _json_list(run)}
    assert listed["NVDA"] == {
        "symbol": "NVDA",
        "bar_type": "NVDA.XNAS-1-DAY-LAST-EXTERNAL",
        "source": "csv",
        "bars": 4012,
        "first": "1999-01-22T21:00:00+00:00",
        "last": "2014-12-31T21:00:00+00:00",
    }
    assert listed["ORCL"]["source"] == "csv-adjusted" and listed["ORCL"]["bars"] == 5036

    # First ORCL row: 2.179012,2.191358,2.117284,2.117284 with Adj Close 1.883304, checked by hand.
    factor = Decimal("1.883304") / Decimal("2.117284")
    expected = [(Decimal(v) * factor).quantize(Decimal("0.000001")) for v in ("2.179012", "2.191358", "2.117284")]
    bar = BarCatalog(ntrader_home.resolved_catalog_path, "XNAS").read_bars("ORCL", Timeframe.DAILY)[0]
    assert [Decimal(str(bar.open)), Decimal(str(bar.high)), Decimal(str(bar.low))] == expected
    assert Decimal(str(bar.close)) == Decimal("1.883304")

    table = run("data", "list")
    assert table.exit_code == 0
    assert "NVDA.XNAS-1-DAY-LAST-EXTERNAL" in table.stdout and "4,012" in table.stdout


def test_list_when_nothing_is_stored(run):
    assert run("data", "list").stdout.strip() == "No market data stored."
    assert _json_list(run, "--symbol", "MSFT") == []

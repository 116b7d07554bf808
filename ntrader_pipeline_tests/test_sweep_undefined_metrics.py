"""A sweep where some sets never trade or never lose: their undefined metrics are ``null`` in JSON,
``n/a`` in text, blank in CSV and in the UI's table; the sweep still ranks, stores and reports
every set with its DSR and PBO, through the CLI and through Dagster alike.

In 1995 on ORCL the 150-session crossovers never trade (no Sharpe, no win rate) and the 10/30 one
never loses (no profit factor)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.definitions import SWEEP_JOB, build_definitions
from ntrader_pipeline.pipeline import strategy_file_config
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, point_settings_at

SWEEP_FILE = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
sweep:
  grid: {fast_period: [5, 10], slow_period: [30, 150]}
"""
SPAN = ("--start", "1995-01-01", "--end", "1995-12-28")
NEVER_TRADES = "quiet[fast_period=5,slow_period=150]"
NEVER_LOSES = "quiet[fast_period=10,slow_period=30]"


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("quiet_sweep")
    (home / "quiet.yaml").write_text(SWEEP_FILE)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, home / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(home / "state" / "dagster"))
        done = ntrader("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
        assert done.exit_code == 0, done.output
        yield home
    Warehouse.open.cache_clear()


def test_the_cli_ranks_and_prints_every_set_with_undefined_metrics_as_na_and_null(home):
    table = ntrader("backtest", "sweep", str(home / "quiet.yaml"), "--symbol", "ORCL", *SPAN)
    assert table.exit_code == 0, table.output
    assert "n/a" in table.stdout and "deflated Sharpe ratio of the best set" in table.stdout
    done = ntrader("backtest", "sweep", str(home / "quiet.yaml"), "--symbol", "ORCL", *SPAN, "--format", "json")
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    rows = {row["key"]: row for row in document["results"]}
    assert len(rows) == 4
    assert document["trials"] == 4 and NEVER_TRADES in document["trials_left_out"]
    said = f"exceeds what the best of {document['trials_used']} trials would give by chance"
    assert said in " ".join(table.stdout.split())  # the table says what the DSR is
    quiet, winner = rows[NEVER_TRADES], rows[NEVER_LOSES]
    assert quiet["trade_count"] == 0 and quiet["sharpe_ratio"] is None and quiet["win_rate"] is None
    assert winner["trade_count"] > 0 and winner["profit_factor"] is None and winner["win_rate"] == 1.0
    assert quiet["rank"] > max(r["rank"] for r in rows.values() if r["sharpe_ratio"] is not None)  # undefined last
    warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
    assert warehouse.get_metrics(quiet["run_id"])["sharpe_ratio"] is None


def test_dagster_materializes_the_sweep_with_blank_cells_for_undefined_metrics(home):
    instance = DagsterInstance.get()
    config = {"spec_file": strategy_file_config(home / "quiet.yaml"), "start": SPAN[1], "end": SPAN[3]}
    result = (
        build_definitions(get_settings())
        .resolve_job_def(SWEEP_JOB)
        .execute_in_process(
            instance=instance, partition_key="_file|ORCL", run_config={"ops": {"sweep_results": {"config": config}}}
        )
    )
    assert result.success
    [metadata] = [
        m.metadata
        for m in result.asset_materializations_for_node("sweep_results")
        if m.asset_key.path == ["sweep_results"]
    ]
    records = {r.data["key"]: r.data for r in metadata["sweep"].records}
    columns = [c.name for c in metadata["sweep"].schema.columns]
    assert all(list(r) == columns for r in records.values())  # every record has every column
    assert records[NEVER_TRADES]["sharpe_ratio"] is None and records[NEVER_TRADES]["trade_count"] == 0
    assert records[NEVER_LOSES]["profit_factor"] is None and records[NEVER_LOSES]["win_rate"] == "100.00%"

    folder = next((get_settings().resolved_reports_dir / "research").iterdir())
    with (folder / "sweep.csv").open() as file:
        rows = {(r["fast_period"], r["slow_period"]): r for r in csv.DictReader(file)}
    assert rows["5", "150"]["sharpe_ratio"] == "" and rows["5", "150"]["trade_count"] == "0"
    assert rows["10", "30"]["profit_factor"] == ""
    document = json.loads((folder / "sweep.json").read_text())
    quiet = next(s for s in document["results"] if s["key"] == NEVER_TRADES)
    assert quiet["sharpe_ratio"] is None and quiet["trade_count"] == 0
    assert "n/a" in (folder / "sweep.html").read_text()

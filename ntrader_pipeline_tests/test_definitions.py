"""The Dagster code location loads, validates, and has the promised graph and partitions."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import AssetKey, Definitions

from ntrader_pipeline.definitions import BACKTEST_JOB, build_definitions
from ntrader_pipeline.pipeline import prepare_dagster_home
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import REPO_ROOT


def test_definitions_validate(ntrader_home):
    defs = build_definitions(ntrader_home)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("backtest")).parent_keys == {AssetKey("bar_catalog")}
    assert graph.get(AssetKey("backtest_report")).parent_keys >= {
        AssetKey("backtest_metrics"),
        AssetKey("trade_ledger"),
    }
    partitions = defs.resolve_job_def(BACKTEST_JOB).partitions_def
    assert partitions.get_partitions_def_for_dimension("strategy").get_partition_keys() == [
        "_file",
        "mean_reversion",
        "momentum",
        "sma_crossover",
    ]


def test_dagster_cli_validates_the_workspace(ntrader_home):
    home = prepare_dagster_home(ntrader_home)  # as `ntrader ui` does before `dagster dev`
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_sensor_intervals_come_from_the_settings(ntrader_home, monkeypatch):
    """30 s by default; an operator (or the soak test) may tick faster."""
    default = {s.name: s.minimum_interval_seconds for s in build_definitions(ntrader_home).sensors}
    assert set(default.values()) == {30}
    monkeypatch.setenv("NTRADER_INBOX_SENSOR_INTERVAL", "2")
    monkeypatch.setenv("NTRADER_AUTOMATION_SENSOR_INTERVAL", "3")
    fast = {s.name: s.minimum_interval_seconds for s in build_definitions(get_settings()).sensors}
    assert fast == {
        "inbox_csv_sensor": 2,
        "inbox_archive_sensor": 2,
        "inbox_quarantine_sensor": 2,
        "backtests_refresh_sensor": 3,
    }

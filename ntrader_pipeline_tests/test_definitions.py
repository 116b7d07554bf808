"""The Dagster code location loads, validates, and has the promised graph and partitions."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import AssetKey, Definitions

from ntrader_pipeline.definitions import BACKTEST_JOB, build_definitions
from ntrader_pipeline.pipeline import prepare_dagster_home
from ntrader_pipeline_tests.conftest import REPO_ROOT


def test_definitions_validate(ntrader_home):
    defs = build_definitions(ntrader_home)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey("backtest")).parent_keys == {AssetKey("bar_catalog")}
    assert graph.get(AssetKey("backtest_report")).parent_keys >= {AssetKey("backtest_metrics"), AssetKey("trade_ledger")}
    partitions = defs.resolve_job_def(BACKTEST_JOB).partitions_def
    assert partitions.get_partitions_def_for_dimension("strategy").get_partition_keys() == ["_file", "mean_reversion", "momentum", "sma_crossover"]


def test_dagster_cli_validates_the_workspace(ntrader_home):
    home = prepare_dagster_home(ntrader_home)  # as `ntrader ui` does before `dagster dev`
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )
    assert done.returncode == 0, done.stdout + done.stderr

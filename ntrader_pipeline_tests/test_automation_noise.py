"""Automation does only the work asked for: no repeat runs after a CLI backtest, no red partition
for a request refused as bad input, no partition left behind by a rejected file."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, evaluate_automation_conditions
from dagster._core.errors import DagsterInvalidSubsetError

from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.definitions import BACKTEST_JOB, build_definitions
from ntrader_pipeline.defs.partitions import symbol_partitions
from ntrader_pipeline.pipeline import prepare_dagster_home
from ntrader_pipeline.settings import Settings, get_settings
from ntrader_pipeline_tests.support import AAPL_MINUTE, NVDA_DAILY, STRATEGY_CONFIGS
from ntrader_pipeline_tests.test_sensor_inbox import after_run, drop, run_request, tick

BACKTEST_GROUP = [AssetKey(name) for name in ("backtest", "trade_ledger", "backtest_metrics", "backtest_report")]


def requested(evaluation) -> dict[str, set[str]]:
    """Backtest-group partitions an automation tick requested, by asset."""
    found = {key.to_user_string(): evaluation.get_requested_partitions(key) for key in BACKTEST_GROUP}
    return {name: keys for name, keys in found.items() if keys}


@pytest.fixture
def nvda_home(ntrader_home: Settings, monkeypatch, tmp_path: Path) -> Settings:
    """A prepared home with one strategy file and 120 NVDA sessions imported by the CLI."""
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    shutil.copy(STRATEGY_CONFIGS / "sma_crossover.yaml", strategies)  # one backtest per symbol: quicker
    monkeypatch.setenv("NTRADER_STRATEGY_CONFIGS_DIR", str(strategies))
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    settings = get_settings()
    prepare_dagster_home(settings)
    nvda = tmp_path / "NVDA.csv"
    nvda.write_text("\n".join(NVDA_DAILY.read_text().splitlines()[:121]) + "\n")
    assert CliRunner().invoke(cli, ["data", "import-csv", "--file", str(nvda), "--symbol", "NVDA"]).exit_code == 0
    return settings


@pytest.fixture
def home(nvda_home: Settings):
    """``nvda_home`` once the refresh sensor has run its backtests: nothing is left to request."""
    defs = build_definitions(nvda_home)
    instance = DagsterInstance.get()
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    for key in first.get_requested_partitions(AssetKey("backtest")):  # as the daemon would
        assert defs.resolve_job_def(BACKTEST_JOB).execute_in_process(instance=instance, partition_key=key).success
    settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert not requested(settled)
    return defs, instance, settled.cursor


def test_backtest_cannot_be_written_without_what_derives_from_it(home):
    """The state a sensor tick once saw in the middle of a CLI backtest (``backtest`` written, the
    rest not yet) cannot arise: the four assets are one step that cannot be subset, and their
    materializations are logged together when it ends. The ticks during a real run are below."""
    defs, _, _ = home
    with pytest.raises(DagsterInvalidSubsetError):
        defs.resolve_job_def(BACKTEST_JOB).get_subset(asset_selection={AssetKey("backtest")})


def test_a_cli_backtest_is_not_requested_again_by_ticks_during_and_after_it(home):
    defs, instance, cursor = home
    state = {"cursor": cursor, "running": True, "requested": []}

    def sensor_ticks() -> None:  # the daemon's refresh sensor, ticking while the CLI run goes on
        while state["running"]:
            evaluation = evaluate_automation_conditions(defs=defs, instance=instance, cursor=state["cursor"])
            state["cursor"] = evaluation.cursor
            state["requested"].append(requested(evaluation))

    ticker = threading.Thread(target=sensor_ticks, daemon=True)
    ticker.start()
    result = CliRunner().invoke(cli, ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "NVDA"])
    state["running"] = False
    ticker.join(timeout=300)
    assert result.exit_code == 0, result.output
    for _ in range(2):
        evaluation = evaluate_automation_conditions(defs=defs, instance=instance, cursor=state["cursor"])
        state["cursor"] = evaluation.cursor
        state["requested"].append(requested(evaluation))

    assert [r for r in state["requested"] if r] == []


def test_a_backtest_refused_for_bad_input_starts_no_run(nvda_home):
    instance = DagsterInstance.get()
    runs_before = len(instance.get_runs())

    result = CliRunner().invoke(
        cli, ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "NVDA", "--start", "2030-01-01"]
    )

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no NVDA bars between 2030-01-01 and the end"
    assert len(instance.get_runs()) == runs_before
    assert all(run.status != DagsterRunStatus.FAILURE for run in instance.get_runs())
    minutes = CliRunner().invoke(
        cli, ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "NVDA", "--timeframe", "1MIN"]
    )
    assert minutes.exit_code == 1
    assert minutes.stderr.startswith("error: not applicable: NVDA has no 1MIN bars, only DAILY")
    assert len(instance.get_runs()) == runs_before


def test_a_file_rejected_from_the_inbox_leaves_no_partition_behind(tmp_path):
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, inbox_dir=tmp_path / "inbox")
    defs = build_definitions(settings)
    instance = DagsterInstance.ephemeral()
    drop(settings, AAPL_MINUTE, "AAPL.csv")  # its bar at line 33 has an open above its high
    result = tick(defs, instance)
    execution = run_request(defs, instance, result, result.run_requests[0])
    assert "AAPL" in instance.get_dynamic_partitions(symbol_partitions.name)  # the run needed it

    after_run(defs, instance, execution)

    assert (settings.resolved_inbox_dir / "quarantine" / "AAPL.csv").exists()
    assert "AAPL" not in instance.get_dynamic_partitions(symbol_partitions.name)


def test_a_rejected_file_of_a_symbol_with_bars_keeps_its_partition(tmp_path):
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, inbox_dir=tmp_path / "inbox")
    defs = build_definitions(settings)
    instance = DagsterInstance.ephemeral()
    cursor = None
    lines = NVDA_DAILY.read_text().splitlines()[:61]
    good = "\n".join(lines) + "\n"
    row = lines[10].split(",")
    row[2] = "0.01"  # high below open
    bad = "\n".join([*lines[:10], ",".join(row), *lines[11:]]) + "\n"
    for name, text, age in (("NVDA_1.csv", good, 120), ("NVDA_2.csv", bad, 60)):
        drop(settings, NVDA_DAILY, name, age_seconds=age, text=text)
        result = tick(defs, instance, cursor)
        cursor = result.cursor
        after_run(defs, instance, run_request(defs, instance, result, result.run_requests[0]))

    assert (settings.resolved_inbox_dir / "quarantine" / "NVDA_2.csv").exists()
    assert "NVDA" in instance.get_dynamic_partitions(symbol_partitions.name)


def test_a_file_rejected_by_the_cli_leaves_no_partition_behind(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    result = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL"])

    assert result.exit_code == 1
    assert "AAPL" not in DagsterInstance.get().get_dynamic_partitions(symbol_partitions.name)

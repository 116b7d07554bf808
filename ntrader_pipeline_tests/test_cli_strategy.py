"""``ntrader strategy`` and ``ntrader backtest run-config`` as a user types them: real Dagster runs
on a private home, results in the warehouse, the reports folder and the Dagster instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.strategies import REGISTRY
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.settings import Settings, get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def orcl_home(tmp_path_factory) -> Settings:
    """A private home shared by this module's runs, with the first 400 ORCL daily bars imported
    (each run is found by its own run id, so tests do not depend on each other)."""
    root = tmp_path_factory.mktemp("cli_strategy")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("NTRADER_") and key not in {"NTRADER_REQUIRE_POSTGRES", "NTRADER_TEST_POSTGRES_URL"}:
                patch.delenv(key)
        patch.setenv("NTRADER_HOME", str(root / "home"))
        patch.setenv("NTRADER_STRATEGY_CONFIGS_DIR", str(STRATEGY_CONFIGS))
        patch.setenv("DAGSTER_HOME", str(root / "unused"))  # restored afterwards: the CLI repoints it
        csv = root / "ORCL_head.csv"
        csv.write_text("\n".join(ORCL_DAILY.read_text().splitlines()[:401]) + "\n")
        result = ntrader("data", "import-csv", "--file", str(csv), "--symbol", "ORCL")
        assert result.exit_code == 0, result.output
        yield get_settings()


def run_config(*args: str) -> str:
    ran = ntrader("backtest", "run-config", *args)
    assert ran.exit_code == 0, ran.output
    return ran.stdout.strip().splitlines()[-1]


def partition_of(run_id: str) -> str:
    """The backtest partition whose materialization carries ``run_id``."""
    records = DagsterInstance.get().fetch_materializations(AssetKey("backtest"), limit=100).records
    (key,) = [r.partition_key for r in records if r.asset_materialization.metadata["run_id"].value == run_id]
    return key


def test_list_shows_every_strategy_with_parameters_and_defaults(ntrader_home):
    table = ntrader("strategy", "list")
    assert table.exit_code == 0
    for name in REGISTRY:
        assert name in table.stdout
    assert "rsi_period = 14" in table.stdout and "k = 2.0" in table.stdout
    rows = json.loads(ntrader("strategy", "list", "--format", "json").stdout)
    assert [row["name"] for row in rows] == list(REGISTRY)
    momentum = {p["name"]: p["default"] for p in rows[2]["parameters"]}
    assert momentum["oversold"] == 30.0 and momentum["overbought"] == 70.0 and momentum["allow_short"] is False


@pytest.mark.parametrize("name", list(REGISTRY))
def test_create_then_validate_then_backtest_every_registered_type(name, ntrader_home, tmp_path):
    """The template runs as written, and trades on real bars (in the engine, without Dagster)."""
    path = tmp_path / f"my_{name}.yaml"
    created = ntrader("strategy", "create", "--type", name, "--output", str(path))
    assert created.exit_code == 0, created.output
    spec = load_spec(path)
    assert spec.config == REGISTRY[name].default_config()
    validated = ntrader("strategy", "validate", str(path))
    assert validated.exit_code == 0 and f"ok: {path} ({name})" in validated.stdout
    result = run_backtest(read_bar_csv(ORCL_DAILY, "ORCL"), spec, ntrader_home.venue, "template")
    assert len(result.fills) > 0 and result.fills["commission"].sum() > 0


def test_run_config_stores_the_run_like_every_other(orcl_home, tmp_path):
    path = tmp_path / "my_momentum.yaml"
    assert ntrader("strategy", "create", "--type", "momentum", "--output", str(path)).exit_code == 0
    run_id = run_config(str(path), "--symbol", "orcl", "--start", "1995-03-01")
    run = Warehouse.open(orcl_home.resolved_warehouse_url).get_run(run_id)
    assert run.strategy == "my_momentum" and run.symbol == "ORCL"
    assert run.config["strategy"] == "momentum"
    assert run.start.date().isoformat() >= "1995-03-01"
    assert (Path(run.report_dir) / "metrics.json").exists()
    assert partition_of(run_id) == "_file|ORCL"


def test_run_config_of_a_shipped_file_uses_its_own_partition(orcl_home):
    run_id = run_config(str(STRATEGY_CONFIGS / "sma_crossover.yaml"), "--symbol", "ORCL")
    assert partition_of(run_id) == "sma_crossover|ORCL"


def test_triggered_risk_control_reaches_the_report(orcl_home, tmp_path):
    path = tmp_path / "capped.yaml"
    path.write_text("strategy: sma_crossover\nbacktest:\n  risk:\n    max_position_shares: 100\n")
    run = Warehouse.open(orcl_home.resolved_warehouse_url).get_run(run_config(str(path), "--symbol", "ORCL"))
    report = Path(run.report_dir)
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["risk_controls_triggered"] == len(metrics["risk_events"]) > 0
    assert metrics["risk_events"][0]["control"] == "max_position_shares"
    assert "Risk control max_position_shares" in (report / "report.txt").read_text()


def test_validate_reports_every_bad_file_and_exits_non_zero(ntrader_home, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("strategy: momentum\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: momentum\nconfig:\n  rsi_period: fourteen\n")
    result = ntrader("strategy", "validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"ok: {good}" in result.stdout
    assert result.stderr.splitlines() == [
        f"{bad}:3:15: config.rsi_period: Expected `int`, got `str`",
        "1 problem in 1 of 2 files",
    ]


def test_validate_lists_every_problem_of_a_file_in_one_pass(ntrader_home, tmp_path):
    """Top-level, backtest and config problems together: before, a field error hid the config's."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "strategy: momentum\n"
        "config: {rsi_period: fourteen, oversold: low, bogus: 1}\n"
        "backtest: {timeframe: WEEKLY, starting_balance: -5}\n"
    )
    result = ntrader("strategy", "validate", str(bad))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}:2:22: config.rsi_period: Expected `int`, got `str`",
        f"{bad}:2:42: config.oversold: Expected `float`, got `str`",
        f"{bad}:2:47: config.bogus: unknown parameter (see `ntrader strategy list`)",
        f"{bad}:3:23: backtest.timeframe: Input should be '1MIN', '5MIN', '1HOUR' or 'DAILY'",
        f"{bad}:3:49: backtest.starting_balance: Input should be greater than 0",
        "5 problems in 1 of 1 file",
    ]


def test_run_config_refuses_a_module_off_the_allowlist_before_running(ntrader_home, tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text('strategy_path: "os:system"\nconfig_path: "os:environ"\n')
    result = ntrader("backtest", "run-config", str(path), "--symbol", "ORCL")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {path}:1:16: strategy_path: module 'os' is not on the strategy module allowlist"
    )
    assert "Traceback" not in result.output
    assert not (ntrader_home.home_dir / "dagster").exists()  # refused before any run was started


def test_create_refuses_to_overwrite_and_unknown_types(ntrader_home, tmp_path):
    path = tmp_path / "exists.yaml"
    path.write_text("keep me")
    assert ntrader("strategy", "create", "--type", "momentum", "--output", str(path)).exit_code == 1
    assert path.read_text() == "keep me"
    unknown = ntrader("strategy", "create", "--type", "magic", "--output", str(tmp_path / "x.yaml"))
    assert unknown.exit_code == 2 and "use one of sma_crossover, mean_reversion, momentum" in unknown.stderr


def test_a_file_run_carries_the_file_in_its_run_config_not_its_path(orcl_home, tmp_path):
    """A run may execute on a worker that never had the file: the run config holds its text."""
    from ntrader_pipeline.definitions import BACKTEST_JOB
    from ntrader_pipeline.pipeline import Pipeline

    path = tmp_path / "travelling.yaml"
    assert ntrader("strategy", "create", "--type", "momentum", "--output", str(path)).exit_code == 0
    text = path.read_text()
    run_id = run_config(str(path), "--symbol", "ORCL")
    instance = DagsterInstance.get()
    dagster_run = instance.get_run_by_id(
        Warehouse.open(orcl_home.resolved_warehouse_url).get_run(run_id).dagster_run_id
    )
    assert dagster_run.run_config["ops"]["backtest"]["config"]["spec_file"] == {"name": "travelling", "yaml": text}
    assert str(tmp_path) not in json.dumps(dagster_run.run_config)
    path.unlink()  # the same run config, where the file does not exist
    again = Pipeline.open(orcl_home, instance)._execute(BACKTEST_JOB, "_file|ORCL", dagster_run.run_config)
    assert again.success
    [stored] = [
        m.metadata["run_id"].value
        for m in again.asset_materializations_for_node("backtest")
        if m.asset_key == AssetKey("backtest")
    ]
    assert Warehouse.open(orcl_home.resolved_warehouse_url).get_run(stored).strategy == "travelling"

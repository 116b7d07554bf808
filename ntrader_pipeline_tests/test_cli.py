"""The command line, run as a user runs it: a subprocess in a fresh copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline_tests.support import AAPL_MINUTE, NVDA_DAILY, ORCL_DAILY, REPO_ROOT

SHIPPED = ["pyproject.toml", "workspace.yaml", "dagster.yaml", "ntrader_pipeline", "strategy_configs"]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """The files a clone has, in a temporary folder, with no state from earlier runs."""
    root = tmp_path_factory.mktemp("clone")
    for name in SHIPPED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    return root


def ntrader(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # the demo in fresh processes
def test_demo_from_a_fresh_copy(repo_copy, monkeypatch):
    done = ntrader(repo_copy, "demo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for symbol in ("ORCL", "NVDA"):
        row = next(line for line in lines if f" {symbol} " in line and "sma_crossover" in line)
        assert "%" in row
    assert "Traceback" not in done.stderr

    state = repo_copy / ".ntrader"
    reports = sorted((state / "reports").iterdir())
    assert len(reports) == 2
    for report in reports:
        assert {p.name for p in report.iterdir()} >= {"report.txt", "trades.csv", "equity.csv", "metrics.json"}
        assert str(report.relative_to(repo_copy)) in done.stdout.replace("\n", "")

    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster"))  # its storage paths follow DAGSTER_HOME
    instance = DagsterInstance.from_config(str(state / "dagster"))
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
    assert len(runs) == 4  # two imports and two backtests, visible to `dagster dev` on this home
    assert set(instance.get_dynamic_partitions("symbol")) == {"ORCL", "NVDA"}
    instance.dispose()


@pytest.fixture
def cli_home(ntrader_home, monkeypatch):
    """In-process CLI runs on a private home; DAGSTER_HOME is restored afterwards."""
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    return ntrader_home


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_import_backtest_and_summary_commands(cli_home):
    imported = invoke("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "orcl")
    assert imported.exit_code == 0, imported.output
    assert "Imported 5036 bars of ORCL.XNAS-1-DAY-LAST-EXTERNAL" in imported.stdout

    ran = invoke(
        "backtest",
        "run",
        "--strategy",
        "sma_crossover",
        "--symbol",
        "ORCL",
        "--start",
        "2000-01-01",
        "--end",
        "2004-12-31",
    )
    assert ran.exit_code == 0, ran.output
    run_id = ran.stdout.strip().splitlines()[-1]
    metrics = (cli_home.resolved_reports_dir / run_id / "metrics.json").read_text()
    assert '"start": "2000-01-03T21:00:00+00:00"' in metrics
    assert '"end": "2004-12-31T21:00:00+00:00"' in metrics

    summary = invoke("report", "summary", run_id)
    assert summary.exit_code == 0
    assert f"Backtest {run_id}: sma_crossover on ORCL" in summary.stdout

    # A backfill runs every named partition (in a pool of processes); a bad one fails alone and loudly.
    filled = invoke(
        "backtest",
        "backfill",
        "--strategy",
        "sma_crossover",
        "--strategy",
        "momentum",
        "--symbol",
        "ORCL",
        "--symbol",
        "NOPE",
        "--start",
        "2010-01-01",
    )
    assert filled.exit_code == 1
    assert "2 of 4 partitions failed" in filled.stderr
    rows = [line for line in filled.stdout.splitlines() if " ORCL " in line]
    assert len(rows) == 2 and all("%" in row for row in rows)
    assert filled.stdout.count("no bars imported for NOPE") == 2


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["report", "summary", "nosuchrun"], "no backtest run with id 'nosuchrun'"),
        (["backtest", "run", "--strategy", "nope", "--symbol", "ORCL"], "unknown strategy 'nope'"),
        (["backtest", "run", "--strategy", "sma_crossover", "--symbol", "ZZZZ"], "no bars imported for ZZZZ"),
        (
            ["backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL", "--start", "2001-13-01"],
            "is not a date",
        ),
        (
            ["data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL"],
            "AAPL_2024-01-02_1min.csv: 1 problem; nothing was imported",
        ),
    ],
)
def test_user_mistakes_exit_non_zero_with_one_line_reason(cli_home, args, reason):
    done = invoke(*args)
    assert done.exit_code != 0
    assert reason in done.stderr.strip().splitlines()[-1]  # the reason is one line, the last
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # two backfills in fresh processes
def test_a_backfill_on_two_processes_stores_what_one_process_stores(tmp_path):
    """``--jobs 2`` splits the partitions between two fresh processes; each partition is run once,
    and its figures equal a one-process backfill's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env.update(NTRADER_HOME=str(tmp_path / "home"), NTRADER_STRATEGY_CONFIGS_DIR=str(REPO_ROOT / "strategy_configs"))

    def ntrader_here(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "ntrader_pipeline.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    for symbol, path in (("ORCL", ORCL_DAILY), ("NVDA", NVDA_DAILY)):
        ntrader_here("data", "import-csv", "--file", str(path), "--symbol", symbol)
    ntrader_here("backtest", "backfill", "--jobs", "2", "--start", "2010-01-01")
    ntrader_here("backtest", "backfill", "--jobs", "1", "--start", "2010-01-01")

    warehouse = Warehouse.open(f"sqlite:///{tmp_path / 'home' / 'warehouse.sqlite'}")
    runs: dict[tuple[str, str], list] = {}
    for run in warehouse.list_results():
        runs.setdefault((run.record.strategy, run.record.symbol), []).append(run)
    strategies = sorted(p.stem for p in (REPO_ROOT / "strategy_configs").glob("*.yaml"))
    assert sorted(runs) == sorted((s, x) for s in strategies for x in ("NVDA", "ORCL"))
    for (strategy, symbol), (one, two) in runs.items():  # newest first: the one-process run, then two
        assert one.record.data_hash == two.record.data_hash
        figures = [{k: v for k, v in run.metrics.items() if k != "run_id"} for run in (one, two)]
        assert figures[0] == figures[1] and figures[0]["bars"] > 0, (strategy, symbol)

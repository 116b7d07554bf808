"""Runs whose process is gone are failed by the next command, and a killed first import leaves no
symbol behind: the real ``ntrader`` commands, real processes killed with SIGKILL.

The process of a CLI run is the command's own. Killed, it leaves its run STARTED (nobody is left
to end it) and, on a symbol's first import, the partition it added before the run started. The
next command that runs jobs fails the run (its pid is gone) and drops the partition (no bars, no
other run); a run whose process still lives is left alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from ntrader_pipeline.adapters.run_processes import GONE_TAG, PID_TAG, process_started
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.defs.partitions import symbol_partitions
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY


def import_command(file: Path, symbol: str) -> list[str]:
    return [sys.executable, "-m", "ntrader_pipeline.cli", "data", "import-csv", "--file", str(file), "--symbol", symbol]


@pytest.fixture
def orcl_home(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    imported = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"])
    assert imported.exit_code == 0, imported.output
    return ntrader_home


def nvda_import_runs(instance: DagsterInstance):
    return instance.get_run_records(RunsFilter(tags={"dagster/partition": "NVDA"}))


def failure_message(instance: DagsterInstance, record) -> str:
    [event] = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    return event.message


def test_a_killed_first_import_is_failed_and_its_partition_dropped_by_the_next_command(orcl_home, caplog):
    killed = subprocess.run(
        import_command(NVDA_DAILY, "NVDA"),
        env={**os.environ, "NTRADER_FAULT_KILL_AT": "staged"},  # SIGKILL mid-import, its run started
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    instance = DagsterInstance.get()
    [left] = nvda_import_runs(instance)
    assert left.dagster_run.status == DagsterRunStatus.STARTED  # what the kill left behind
    assert "NVDA" in instance.get_dynamic_partitions(symbol_partitions.name)

    result = CliRunner().invoke(cli, ["backtest", "backfill", "--strategy", "sma_crossover", "--jobs", "1"])

    assert result.exit_code == 0, result.output + result.stderr
    [failed] = nvda_import_runs(instance)
    assert failed.dagster_run.status == DagsterRunStatus.FAILURE
    pid = left.dagster_run.tags[PID_TAG]
    assert f"failed: its process (pid {pid} on {socket.gethostname()}) is gone" in failure_message(instance, failed)
    assert instance.get_dynamic_partitions(symbol_partitions.name) == ["ORCL"]
    runs = Warehouse.open(orcl_home.resolved_warehouse_url).list_runs()
    assert [(r.strategy, r.symbol) for r in runs] == [("sma_crossover", "ORCL")]
    # Nothing stays blocked: the same import, run again, adds the symbol back and stores its bars.
    again = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(NVDA_DAILY), "--symbol", "NVDA"])
    assert again.exit_code == 0, again.output
    assert sorted(instance.get_dynamic_partitions(symbol_partitions.name)) == ["NVDA", "ORCL"]


def test_a_run_whose_process_lives_is_left_alone_until_it_is_killed(orcl_home, tmp_path):
    paused = subprocess.Popen(
        import_command(NVDA_DAILY, "NVDA"),
        env={**os.environ, "NTRADER_FAULT_PAUSE_AT": "staged", "NTRADER_FAULT_DIR": str(tmp_path / "faults")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        marker = tmp_path / "faults" / f"staged.{paused.pid}"
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert paused.poll() is None and time.monotonic() < deadline, "the import never reached its pause"
            time.sleep(0.2)
        instance = DagsterInstance.get()

        listed = CliRunner().invoke(cli, ["backtest", "backfill", "--strategy", "sma_crossover", "--symbol", "ORCL"])

        assert listed.exit_code == 0, listed.output
        [running] = nvda_import_runs(instance)
        assert running.dagster_run.status == DagsterRunStatus.STARTED  # its process lives
        assert "NVDA" in instance.get_dynamic_partitions(symbol_partitions.name)
    finally:
        paused.kill()
        paused.wait(timeout=60)

    again = CliRunner().invoke(cli, ["backtest", "backfill", "--strategy", "sma_crossover", "--jobs", "1"])

    assert again.exit_code == 0, again.output
    [failed] = nvda_import_runs(instance)
    assert failed.dagster_run.status == DagsterRunStatus.FAILURE and failed.dagster_run.tags[GONE_TAG] == "settled"
    assert instance.get_dynamic_partitions(symbol_partitions.name) == ["ORCL"]


def test_a_reused_pid_does_not_pass_for_the_runs_process():
    """A pid names the run's process only if that process already lived when the run was seen:
    a process started later under the same pid (a restarted container reuses low pids at once) is
    another one."""
    before = time.time()
    time.sleep(0.1)
    later = subprocess.Popen(["sleep", "30"])
    try:
        started = process_started(later.pid)
        assert started is not None and started >= before - 1.0  # the kernel's boot time is whole seconds
        assert process_started(os.getpid()) < before
    finally:
        later.kill()
        later.wait()
    assert process_started(later.pid) is None


def test_a_command_run_is_judged_by_its_process_start_not_by_its_pid_alone():
    """A killed command's pid may belong to another live process by the time anyone looks: the
    run records its process' start too, and only that process counts as its own."""
    from dagster import DagsterRun

    from ntrader_pipeline.adapters.run_processes import HOST_TAG, STARTED_TAG, fail_dead_runs

    instance = DagsterInstance.ephemeral()
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = process_started(other.pid)
        runs = {}
        for name, recorded in (("own", started), ("reused", started - 100)):
            tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(other.pid), STARTED_TAG: f"{recorded:.2f}"}
            runs[name] = instance.add_run(
                DagsterRun(job_name="import_csv_job", status=DagsterRunStatus.STARTED, tags=tags)
            )

        failed = fail_dead_runs(instance)

        assert [r.run_id for r in failed] == [runs["reused"].run_id]
        assert instance.get_run_by_id(runs["own"].run_id).status == DagsterRunStatus.STARTED
        assert "that pid is now another process" in failure_message(
            instance, instance.get_run_record_by_id(runs["reused"].run_id)
        )
    finally:
        other.kill()
        other.wait()

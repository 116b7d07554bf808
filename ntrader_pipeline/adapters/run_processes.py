"""Which process executes a Dagster run, and whether it still lives: a run whose process is gone
is failed instead of staying STARTED for good.

A run executes in one process: a fresh one the code server starts for the daemon (the default
run launcher), or the ``ntrader`` command's own (``execute_in_process``). When that process is
killed with everything around it (a container restart kills daemon, code server and runs at
once; kill -9 of a command), nobody is left to record the end: Dagster's code server fails a run
whose process died only while that code server lives, and the default launcher has no health
check, so run monitoring never looks. The run then holds a run slot, blocks its symbol's inbox
files and keeps its partition (a new symbol's) registered.

So each run records where its process runs: tag ``ntrader/host`` (set by the launcher below for
runs it hands to a code server on this host, or by the CLI for its own runs), and its pid: the
CLI's in tags ``ntrader/pid`` and ``ntrader/process_started``, a launched run's in the "Started
process for run (pid: N)" event the run process logs before anything else. ``process_gone``
judges a run from the host it ran on: no such pid, or the pid now belongs to another process, one
that started at another time than the command or after the run's process was seen alive (pids
are reused, in a restarted container at once). Times are this host's clock, never the
database's. A run on another host is never judged here. Two places ask:

- ``ProcessCheckedRunLauncher.check_run_worker_health``, which Dagster's run monitoring calls for
  every STARTED run each ``poll_interval_seconds``: the daemon fails the run, and ``run_retries``
  relaunches it where the job allows;
- ``fail_dead_runs``, at the start of every ``ntrader`` command that runs jobs (no daemon needed).

Each must run on the host its runs run on: the launcher in the daemon's container, and every
container that executes runs needs a host name of its own (docker gives each one).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, DefaultRunLauncher, RunsFilter
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import RunRecord
from dagster._core.storage.tags import MAX_RETRIES_TAG

HOST_TAG = "ntrader/host"
PID_TAG = "ntrader/pid"
STARTED_TAG = "ntrader/process_started"  # the CLI process' start (epoch s, by this host's clock)
GONE_TAG = "ntrader/process_gone"  # set on a run failed because its process was gone
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
# Judged: runs past launch. (A run still STARTING with no process yet is run monitoring's
# start_timeout_seconds' to fail.)
RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
# A pid is the run's process only if it started then, or by then (slack: the kernel's boot time is
# whole seconds).
START_SLACK_SECONDS = 2.0


def this_host() -> str:
    return socket.gethostname()


def cli_run_tags() -> dict[str, str]:
    """Tags of a run the ``ntrader`` command executes in its own process. Never retried by the
    daemon: the person who started it saw it die, and decides."""
    started = process_started(os.getpid()) or 0.0
    return {HOST_TAG: this_host(), PID_TAG: str(os.getpid()), STARTED_TAG: f"{started:.2f}", MAX_RETRIES_TAG: "0"}


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds); None when there is no such live process.

    Linux: from ``/proc`` (a zombie counts as gone). Elsewhere only whether the pid exists is
    known, and it is taken as the run's (0.0).
    """
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # state: a zombie holds the pid of a process that has ended
        return None
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if "btime" in line)
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks


def run_process(instance: DagsterInstance, record: RunRecord) -> tuple[str, int, float, bool] | None:
    """``(host, pid, time, exact)`` of a run's process, or None when the run does not say.

    ``exact``: ``time`` is the process' start (the CLI tagged it); else a moment the process was
    alive (its first event), so it started no later. Both read this host's clock, never the
    database's.
    """
    tags = record.dagster_run.tags
    host = tags.get(HOST_TAG)
    if not host:
        return None
    if tags.get(PID_TAG):  # the command's own process
        return host, int(tags[PID_TAG]), float(tags.get(STARTED_TAG) or 0.0), True
    events = instance.get_records_for_run(
        record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20, ascending=True
    ).records
    for event in events:
        dagster_event = event.event_log_entry.dagster_event
        data = dagster_event.engine_event_data if dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return host, int(str(pid.value)), event.event_log_entry.timestamp, False
    return None


def process_gone(instance: DagsterInstance, record: RunRecord) -> str | None:
    """Why the run's process is known to be gone; None when it lives or cannot be judged here."""
    found = run_process(instance, record)
    if found is None or found[0] != this_host():
        return None
    host, pid, when, exact = found
    started = process_started(pid)
    if started is None:
        return f"its process (pid {pid} on {host}) is gone"
    if started and when and (abs(started - when) if exact else started - when) > START_SLACK_SECONDS:
        return f"its process (pid {pid} on {host}) is gone; that pid is now another process"
    return None


def fail_dead_runs(instance: DagsterInstance) -> list[DagsterRun]:
    """Fail every STARTING or STARTED run of this host whose process is gone; returns them."""
    failed = []
    for record in instance.get_run_records(RunsFilter(statuses=RUNNING)):
        why = process_gone(instance, record)
        if why is None:
            continue
        run = instance.get_run_by_id(record.dagster_run.run_id)  # still unfinished? (the daemon may be quicker)
        if run is None or run.is_finished:
            continue
        instance.add_run_tags(run.run_id, {GONE_TAG: "true"})
        instance.report_run_failed(run, f"Run {run.run_id} failed: {why}.")
        failed.append(run)
    return failed


class ProcessCheckedRunLauncher(DefaultRunLauncher):
    """Dagster's default run launcher plus a health check: a run whose process is gone (see the
    module docstring) is reported failed to run monitoring, which fails it and lets
    ``run_retries`` relaunch it."""

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        # The code server starts the run's process on its own host: this one, when it is local.
        # (A re-execution copies its parent's tags: a CLI parent's pid is not this run's.)
        workspace, origin = context.workspace, run.remote_job_origin
        if workspace is not None and origin is not None:  # both are set for every run a launcher gets
            location = workspace.get_code_location(origin.repository_origin.code_location_origin.location_name)
            if _is_local(location.origin):
                self._instance.add_run_tags(run.run_id, {HOST_TAG: this_host(), PID_TAG: ""})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        record = self._instance.get_run_record_by_id(run.run_id)
        why = process_gone(self._instance, record) if record is not None else None
        if why is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "")
        self._instance.add_run_tags(run.run_id, {GONE_TAG: "true"})
        return CheckRunHealthResult(WorkerStatus.FAILED, why)


def _is_local(origin) -> bool:
    """Whether a code location's server runs on this host (Dagster starts it, or it is on loopback)."""
    host = getattr(origin, "host", None)
    if host is None:
        return type(origin).__name__ == "ManagedGrpcPythonEnvCodeLocationOrigin"
    return host in LOCAL_HOSTS

"""The deployed stack as real processes: ``dagster-webserver`` and ``dagster-daemon`` on one instance.

Each process starts in its own process group, so stopping it also stops what it started (code
servers, run workers). Their output goes to log files that are printed when the caller fails.
The webserver is driven through its GraphQL API, as the UI drives it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ntrader_pipeline_tests.support.network import free_port

REPOSITORY = "__repository__"
BIN = Path(sys.executable).parent


class StackError(AssertionError):
    """The stack did not do what an operator expects (raised with what it answered)."""


def instance_environment(work: Path, database_url: str) -> dict[str, str]:
    """This process's environment without any NTRADER_/DAGSTER_ setting, plus a Dagster home under
    ``work`` and the ``DAGSTER_POSTGRES_*`` variables the deployment's instance files read."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    return {
        **inherited,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "DAGSTER_POSTGRES_HOST": url.host or "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(url.port or 5432),
        "DAGSTER_POSTGRES_USER": url.username or "postgres",
        "DAGSTER_POSTGRES_PASSWORD": url.password or "",
        "DAGSTER_POSTGRES_DB": url.database or "",
    }


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll ``probe`` until it returns something truthy; a hang fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class DagsterStack:
    """``with DagsterStack(workspace, env, logs) as stack:`` a webserver and a daemon, always stopped."""

    def __init__(self, workspace: Path, env: Mapping[str, str], log_dir: Path, cwd: Path):
        self.workspace, self.env, self.log_dir, self.cwd = workspace, dict(env), log_dir, cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.location = ""

    def __enter__(self) -> DagsterStack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A CI timeout's SIGTERM would end Python without unwinding and orphan both processes.
        self._sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            self._start(
                "webserver",
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port), "-w", str(self.workspace)],
            )
            self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])
            self.location = wait_for("the code location to load in the webserver", self._loaded_location, 300, 2)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for process in self.processes.values():
            _stop_group(process)
        signal.signal(signal.SIGTERM, self._sigterm)
        if exc_type is not None:
            self.print_logs()

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process ends
        self.processes[name] = subprocess.Popen(
            argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child holds its own descriptor

    def print_logs(self, lines: int = 150) -> None:
        """The tail of each process' log on stderr (pytest shows it with the failure)."""
        for name in self.processes:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
            print(f"\n===== dagster-{name} (last {lines} of {len(text)} lines) =====", file=sys.stderr)
            print("\n".join(text[-lines:]), file=sys.stderr)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"dagster-{name} exited with {process.returncode}")

    # -- GraphQL -----------------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            payload = json.load(answer)
        if payload.get("errors"):
            raise StackError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def _loaded_location(self) -> str | None:
        self.check_alive()
        try:
            data = self.graphql(WORKSPACE)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        for entry in data["workspaceOrError"].get("locationEntries", []):
            kind = (entry.get("locationOrLoadError") or {}).get("__typename")
            if kind == "PythonError":
                raise StackError(f"code location failed to load: {entry['locationOrLoadError']['message']}")
            if kind == "RepositoryLocation":
                return entry["name"]
        return None

    def selector(self, **names: str) -> dict:
        return {"repositoryLocationName": self.location, "repositoryName": REPOSITORY, **names}

    def start_sensor(self, name: str) -> str:
        data = self.graphql(START_SENSOR, {"selector": self.selector(sensorName=name)})["startSensor"]
        if data["__typename"] != "Sensor":
            raise StackError(f"startSensor {name}: {data}")
        return data["sensorState"]["status"]

    def sensor_ticks(self, name: str, limit: int = 5) -> list[dict]:
        data = self.graphql(SENSOR_TICKS, {"selector": self.selector(sensorName=name), "limit": limit})
        sensor = data["sensorOrError"]
        if sensor["__typename"] != "Sensor":
            raise StackError(f"sensor {name}: {sensor}")
        return sensor["sensorState"]["ticks"]

    def launch_run(self, job: str, run_config: Mapping, tags: Mapping[str, str] | None = None) -> str:
        params = {
            "selector": self.selector(jobName=job),
            "runConfigData": dict(run_config),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        data = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise StackError(f"launchRun {job}: {data}")
        return data["run"]["runId"]

    def launch_partition_backfill(self, assets: list[str], partitions: list[str], title: str) -> str:
        """What the UI's Materialize button sends for several partitions of several assets."""
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partitions, "title": title}
        data = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise StackError(f"launchPartitionBackfill: {data}")
        return data["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        data = self.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise StackError(f"backfill {backfill_id}: {data}")
        return data


def _raise_exit(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its group may not be (a run worker): make sure.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


WORKSPACE = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

START_SENSOR = """
mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""

SENSOR_TICKS = """
query($selector: SensorSelector!, $limit: Int) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status ticks(limit: $limit) {
    status timestamp endTimestamp runIds error { message } } } }
  ... on PythonError { message } } }"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message stack } ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message } ... on PipelineNotFoundError { message } } }"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack } ... on PartitionSetNotFoundError { message }
  ... on InvalidStepError { invalidStepKey } ... on InvalidOutputError { stepKey } } }"""

BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status numPartitions partitionNames }
  ... on PythonError { message } ... on BackfillNotFoundError { message } } }"""

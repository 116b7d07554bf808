"""On a fresh clone, `cp .env.example .env` then a plain `dagster dev` serves the UI on the shared
instance, before any `ntrader` command has run (the real process, reached over GraphQL)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ntrader_pipeline.pipeline import INSTANCE_YAML
from ntrader_pipeline_tests.support import REPO_ROOT, free_port

HANG = 600  # seconds: a code location loads in ~10 s on a quiet machine; only a hang takes this long
LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename "
    "... on PythonError { message } } } } } }"
)


def test_the_shipped_instance_settings_are_the_ones_ntrader_writes():
    assert (REPO_ROOT / ".ntrader" / "dagster" / "dagster.yaml").read_text() == INSTANCE_YAML


def clone_like(target: Path) -> Path:
    """The repository's tracked files, as a clone has them (no state folder, no .env)."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    for name in listed.stdout.splitlines():
        if (REPO_ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, target / name)
    return target


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.mark.slow  # a real dagster dev
def test_dagster_dev_serves_after_copying_env_example_on_a_fresh_clone(tmp_path: Path):
    clone = clone_like(tmp_path / "clone")
    shutil.copy(clone / ".env.example", clone / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env["PWD"] = str(clone)  # as a shell in the clone would set it; .env expands ${PWD}
    port = free_port()
    log = tmp_path / "dagster-dev.log"
    with open(log, "w") as output:  # a file, not a pipe: nobody reads a pipe while it serves
        dev = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        entries = wait_for_locations(dev, port, log)
        loaded = [entry["locationOrLoadError"] for entry in entries]
        assert [location["__typename"] for location in loaded] == ["RepositoryLocation"], loaded
        info = graphql(port, "{ instance { info } }")["instance"]["info"]
        assert "BatchedSqliteEventLogStorage" in info  # the shipped settings, not Dagster's defaults
        assert (clone / ".ntrader" / "dagster" / "event_log.db").exists()
    finally:
        stop(dev)


def wait_for_locations(dev: subprocess.Popen, port: int, log: Path) -> list[dict]:
    deadline = time.monotonic() + HANG  # only bounds the wait; nothing asserts how long it took
    while time.monotonic() < deadline:
        if dev.poll() is not None:
            pytest.fail(f"dagster dev exited with {dev.returncode}:\n{log.read_text()[-3000:]}")
        try:
            data = graphql(port, LOCATIONS)["workspaceOrError"]
        except OSError:
            data = None  # not listening yet
        entries = (data or {}).get("locationEntries") or []
        if entries and all(e["locationOrLoadError"] for e in entries):
            return entries
        time.sleep(1)
    pytest.fail(f"dagster dev did not serve its code location within {HANG} s")


def stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and the webserver, daemon and code servers it started (its own group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived it
    except ProcessLookupError:
        pass

"""Messages never repeat what a file holds: driven as a user drives ntrader, then searched.

Each case runs the real command (a fresh ``ntrader`` process where the process's own environment or
its standard error matters, click's runner elsewhere) or the real Dagster import job, with a
secret-looking environment variable set, and searches standard output and error, the Dagster event
log of every run (what the UI shows), the sensor's quarantine notes and the inbox for the secret
and for whole lines of the file. A message may quote a short, printable excerpt of one cell; never
a line, never the environment, never control characters, never SQL or a password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, build_run_status_sensor_context, build_sensor_context, serialize_value

from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.quoting import EXCERPT_CHARS, excerpt, shown_path
from ntrader_pipeline.definitions import INGEST_JOB, build_definitions
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import AAPL_MINUTE, REPO_ROOT, STRATEGY_CONFIGS
from ntrader_pipeline_tests.test_dagster_dev_fresh_clone import free_port

SECRET = f"hunter2-{uuid.uuid4().hex}"  # what a warehouse password looks like to a test


def ntrader_process(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``ntrader ARGS`` in a fresh process on ``home``, with the secret in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env |= {
        "NTRADER_HOME": str(home),
        "NTRADER_STRATEGY_CONFIGS_DIR": str(STRATEGY_CONFIGS),
        "PGPASSWORD": SECRET,
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a hang, not a speed limit
    )


def event_log_text(dagster_home: Path) -> str:
    """Every event of every run the instance holds, serialized: what the UI can show."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))  # the instance file's paths follow it
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            runs = instance.get_runs()
            assert runs, "the command started no Dagster run"
            return "\n".join(serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id))


def private_file(folder: Path, first_line: str) -> Path:
    """A file only its owner may read, whose first line holds the secret, and a CSV symlink to it."""
    target = folder / "credentials"
    target.write_text(f"{first_line}\nDB_USER=admin\nDB_HOST=db.internal\n")
    target.chmod(0o600)
    link = folder / "bars.csv"
    link.symlink_to(target)
    return link


def test_importing_the_process_environment_prints_and_logs_no_variable(tmp_path):
    home = tmp_path / "home"
    done = ntrader_process(home, "data", "import-csv", "--file", "/proc/self/environ", "--symbol", "ORCL")
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert SECRET not in output and "PGPASSWORD=" not in output
    assert "Traceback" not in output and "\\x00" not in output  # nothing of the file, not even escaped
    assert ":1: no timestamp column" in done.stderr, done.stderr
    assert len(done.stderr) < 1000, done.stderr
    log = event_log_text(home / "dagster")
    assert "no timestamp column" in log  # the failure is there, with its reason
    assert SECRET not in log and "PGPASSWORD" not in log


def test_a_symlink_to_a_private_file_puts_none_of_its_lines_in_output_or_event_log(tmp_path):
    link = private_file(tmp_path, f"PGPASSWORD={SECRET}")
    home = tmp_path / "home"
    done = ntrader_process(home, "data", "import-csv", "--file", str(link), "--symbol", "ORCL")
    assert done.returncode == 1
    assert "credentials:1: no timestamp column" in done.stderr, done.stderr
    log = event_log_text(home / "dagster")
    for text in (done.stdout + done.stderr, log):
        assert SECRET not in text and "PGPASSWORD" not in text and "DB_USER=admin" not in text


def test_an_environment_dropped_in_the_inbox_is_quarantined_with_notes_that_hold_none_of_it(tmp_path):
    """The Dagster import job as the daemon runs it: sensor tick, run, quarantine sensor."""
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, inbox_dir=tmp_path / "inbox")
    environ = tmp_path / "environ"  # what /proc/<pid>/environ holds: NUL-separated, no line end
    environ.write_bytes(b"\0".join([b"HOME=/root", f"PGPASSWORD={SECRET}".encode(), b"LANG=C.UTF-8"]) + b"\0")
    environ.chmod(0o600)
    settings.resolved_inbox_dir.mkdir(parents=True)
    dropped = settings.resolved_inbox_dir / "ORCL.csv"
    dropped.symlink_to(environ)
    stamp = time.time() - 60
    os.utime(dropped, (stamp, stamp), follow_symlinks=False)
    os.utime(environ, (stamp, stamp))
    defs = build_definitions(settings)
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_sensor_def("inbox_csv_sensor")(build_sensor_context(instance=instance, definitions=defs))
    [request] = result.run_requests
    for partitions in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(partitions.partitions_def_name, list(partitions.partition_keys))
    execution = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        run_config=request.run_config,
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )
    assert not execution.success
    run = instance.get_run_by_id(execution.run_id)
    context = build_run_status_sensor_context(
        "inbox_quarantine_sensor", execution.get_run_failure_event(), instance, run
    )
    defs.resolve_sensor_def("inbox_quarantine_sensor")(context.for_run_failure())
    notes = settings.resolved_inbox_dir / "quarantine" / "ORCL.csv.errors.txt"
    assert notes.read_text().splitlines() == [
        "ORCL.csv:1: no timestamp column (looked for timestamp, datetime, date, time and aliases)",
        "ORCL.csv:1: no column for open, high, low, close, volume",
    ]
    log = "\n".join(serialize_value(entry) for entry in instance.all_logs(execution.run_id))
    assert "no timestamp column" in log
    assert SECRET not in log and "PGPASSWORD" not in log and "LANG=" not in log


def test_a_hundred_kilobyte_line_gives_a_few_short_lines_of_error(tmp_path, ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    path = tmp_path / "wide.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        f"2024-01-02,{'9x' * 50_000},186.50,184.75,185.95,2847300\n"  # a 100 KB cell
        f"{'A' * 100_000}\n"  # a 100 KB line of another kind
        "2024-01-04,185.95,186.25,185.50,186.10,1254800\n"
    )
    done = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(path), "--symbol", "ORCL"])
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f"{path}:2 column 'open': value '{'9x' * 15}9…': not a number",
        f"{path}:3: has 1 field but the header has 6",
        f"error: {path}: 2 problems; nothing was imported",
    ]
    assert len(done.stderr) < 1000


def test_a_file_name_with_a_newline_stays_on_one_line_per_problem(tmp_path, ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    path = tmp_path / "bars\nfrom vendor\x1b[31m.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02,abc,186.50,184.75,185.95,2847300\n"
        "2024-01-03,185.25,186.50,184.75,185.95,-3\n"
    )
    done = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(path), "--symbol", "ORCL"])
    assert done.exit_code == 1
    shown = shown_path(path)
    assert shown.endswith("bars\\nfrom vendor\\x1b[31m.csv")
    assert done.stderr.splitlines() == [
        f"{shown}:2 column 'open': value 'abc': not a number",
        f"{shown}:3 column 'volume': value '-3': volume must not be negative",
        f"error: {shown}: 2 problems; nothing was imported",
    ]
    spec = tmp_path / "bad\nname.yaml"
    spec.write_text("strategy: momentum\nconfig: {rsi_period: 1}\n")
    validated = CliRunner().invoke(cli, ["strategy", "validate", str(spec)])
    assert validated.exit_code == 1
    assert validated.stderr.splitlines()[0] == (
        f"{shown_path(spec)}:2:22: config.rsi_period: rsi_period must be at least 2 bars"
    )


def test_a_cell_is_quoted_as_a_short_printable_excerpt():
    cell = "\x1b]0;owned\x07" + "z" * 200
    shown = excerpt(cell)
    assert shown == "\\x1b]0;owned\\x07zzzzzzzzzzzzzzz…" and len(shown) <= EXCERPT_CHARS
    assert excerpt(shown) == shown  # quoting twice changes nothing


def test_a_private_strategy_file_behind_a_symlink_is_not_printed(tmp_path, ntrader_home):
    """A file of ``name: value`` lines (a tokens file, say) gives one line per key, each key cut short."""
    target = tmp_path / "tokens"
    tokens = [f"production_api_token_number_{i}_{SECRET}" for i in range(3)]
    target.write_text("".join(f"{token}: read-write\n" for token in tokens))
    target.chmod(0o600)
    link = tmp_path / "strategy.yaml"
    link.symlink_to(target)
    done = CliRunner().invoke(cli, ["strategy", "validate", str(link)])
    assert done.exit_code == 1
    output = done.stdout + done.stderr
    assert SECRET not in output and "read-write" not in output
    assert f"{link}:1:1: {excerpt(tokens[0])}: unknown key; the top level takes strategy" in done.stderr


def test_an_empty_timezone_is_refused_as_an_option_before_any_run(ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    for zone in ["", "Mars/Olympus", "../../etc/passwd"]:
        done = CliRunner().invoke(
            cli, ["data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL", "--timezone", zone]
        )
        assert done.exit_code == 2, done.output
        assert f"timezone '{zone}' is not a time zone name (e.g. America/New_York" in done.stderr
        assert "string index out of range" not in done.stderr
    assert not ntrader_home.resolved_dagster_home.exists()  # refused before any run


def test_a_time_zone_abbreviation_is_a_problem_of_its_cell_without_a_pandas_warning(tmp_path):
    path = tmp_path / "est.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 09:30:00 EST,185.25,186.50,184.75,185.95,2847300\n"
        "2024-01-02 09:31:00 EST,185.95,186.25,185.50,186.10,1254800\n"
    )
    done = ntrader_process(tmp_path / "home", "data", "import-csv", "--file", str(path), "--symbol", "AAPL")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{path}:2 column 'timestamp': value '2024-01-02 09:30:00 EST': not a timestamp",
        f"{path}:3 column 'timestamp': value '2024-01-02 09:31:00 EST': not a timestamp",
        f"error: {path}: no valid bars (2 problems); nothing was imported",
    ]


def test_an_unreachable_warehouse_is_named_by_host_and_port_without_its_password(ntrader_home, monkeypatch):
    port = free_port()
    monkeypatch.setenv("NTRADER_WAREHOUSE_URL", f"postgresql+psycopg://ntrader:{SECRET}@127.0.0.1:{port}/warehouse")
    monkeypatch.setenv("NTRADER_DB_RETRIES", "0")
    for args in (["data", "list"], ["backtest", "list-results"]):
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 1
        assert done.stderr.startswith(
            f"error: the warehouse database is unreachable: postgresql database warehouse on 127.0.0.1:{port} ("
        ), done.stderr
        assert "Connection refused" in done.stderr and "migrating" not in done.stderr
        assert SECRET not in done.output + done.stderr and "[SQL" not in done.stderr


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A real 8 MiB file system, to be filled: root mounts a tmpfs (skipped elsewhere)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_dagster_storage_is_named_by_its_folder_without_sql(tmp_path, full_disk):
    dagster_home = full_disk / "dagster"
    env = {"NTRADER_DAGSTER_HOME": str(dagster_home)}
    first = ntrader_process(
        tmp_path / "home", "backtest", "run", "--strategy", "momentum", "--symbol", "ORCL", extra_env=env
    )
    assert "no bars imported for ORCL" in first.stderr, first.stderr  # the instance exists now
    with open(full_disk / "filler", "wb") as filler:  # fill the file system to the last byte
        try:
            while True:
                filler.write(b"\0" * (1 << 16))
                filler.flush()
        except OSError:
            pass
    done = ntrader_process(
        tmp_path / "home", "data", "import-csv", "--file", str(AAPL_MINUTE), "--symbol", "AAPL", extra_env=env
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: the Dagster instance storage is full or not writable: {dagster_home} ("), line
    for sql in ("SQL", "PRAGMA", "INSERT", "SELECT", "sqlalche.me"):
        assert sql not in done.stderr

"""The drop folder: CSV files dropped in the inbox are imported, then archived or quarantined.

``inbox_csv_sensor`` requests one import run per new or changed file (run key: name, size and
mtime) and adds the file's symbol as a partition. Its cursor holds only the keys of files still
in the inbox, so it never grows with history. It requests one file per symbol at a time, oldest
first, because two concurrent imports of one symbol would race on the catalog; a tick that
requests nothing says why each new file waits ("ORCL.csv waits: import run … of ORCL is still
STARTED").

Filing happens once a run has ended, in two run-status sensors: the run's outcome decides
where the file goes, and an import that failed for a reason that is not the file's (database
down, disk full) leaves the file in the inbox to be re-executed instead of misfiling it.
- run succeeded, or bars were written and only a check failed → ``archive/``;
- the file cannot be read as bars → ``quarantine/`` with ``<name>.errors.txt`` (every problem,
  one per line, found by reading the file again exactly as the run did);
- anything else → left in place, with the reason in the sensor log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

from ntrader_pipeline.core.inbox import archive, file_key, quarantine, scan_inbox
from ntrader_pipeline.core.paths import DEFAULT_MAX_CSV_BYTES
from ntrader_pipeline.defs.partitions import (
    INBOX_FILE_TAG,
    PARTITION_TAG,
    SYMBOLS,
    UNFINISHED,
    drop_symbol_without_bars,
    symbol_partitions,
)
from ntrader_pipeline.settings import Settings

if TYPE_CHECKING:
    from ntrader_pipeline.adapters.catalog import BarCatalog

INBOX_KEY_TAG = "ntrader/inbox_key"


def build_inbox_sensors(settings: Settings, ingest_job: str) -> list[SensorDefinition]:
    """The inbox sensor and the two sensors that file its runs' files, for ``settings``' inbox."""
    inbox = settings.resolved_inbox_dir
    pattern = settings.inbox_symbol_pattern
    interval = settings.inbox_sensor_interval
    max_bytes = settings.max_csv_bytes

    @sensor(
        name="inbox_csv_sensor",
        job_name=ingest_job,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Imports CSV files dropped in {inbox}.",
    )
    def inbox_csv_sensor(context: SensorEvaluationContext) -> SensorResult:
        return inbox_run_requests(context, inbox, pattern, ingest_job, time.time())

    @run_status_sensor(
        name="inbox_archive_sensor",
        run_status=DagsterRunStatus.SUCCESS,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Moves a successfully imported inbox file to the archive folder.",
    )
    def inbox_archive_sensor(context: RunStatusSensorContext) -> None:
        _file_and_log(context, lambda: settings.stores().catalog(), max_bytes)

    @run_failure_sensor(
        name="inbox_quarantine_sensor",
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Moves an inbox file whose import failed to quarantine (or leaves it when the fault is elsewhere).",
    )
    def inbox_quarantine_sensor(context: RunFailureSensorContext) -> None:
        _file_and_log(context, lambda: settings.stores().catalog(), max_bytes)

    return [inbox_csv_sensor, inbox_archive_sensor, inbox_quarantine_sensor]


def _file_and_log(context: RunStatusSensorContext, catalog: Callable[[], BarCatalog], max_bytes: int) -> None:
    """File the inbox CSV of the run that just ended (archive or quarantine) and log where it went."""
    outcome = file_inbox_run(context.instance, context.dagster_run, catalog, max_bytes)
    if outcome:
        context.log.info(outcome)


def inbox_run_requests(
    context: SensorEvaluationContext, inbox: Path, pattern: str, ingest_job: str, now: float
) -> SensorResult:
    """One import run per new or changed file; the cursor keeps the keys of requested files still present."""
    inbox.mkdir(parents=True, exist_ok=True)
    scan = scan_inbox(inbox, now, pattern)
    for path, reason in scan.refused:  # no run, no partition: the name itself is the problem
        context.log.warning(f"{reason}; quarantined as {quarantine(path, [reason])}")
    requested_before = set(json.loads(context.cursor)) if context.cursor else set()
    present = {f.key for f in scan.ready}
    busy = _symbols_importing(context.instance, ingest_job)
    known = set(context.instance.get_dynamic_partitions(SYMBOLS))
    requests, new_symbols, waiting_files = [], [], []
    for file in scan.ready:
        if file.key in requested_before:
            continue
        if file.symbol in busy:
            waiting_files.append(f"{file.path.name} waits: {busy[file.symbol]}")
            continue
        busy[file.symbol] = f"the import of {file.path.name} is requested in this tick"
        if file.symbol not in known:
            known.add(file.symbol)
            new_symbols.append(file.symbol)
        requests.append(
            RunRequest(
                run_key=file.key,
                partition_key=file.symbol,
                run_config={"ops": {"csv_bars": {"config": {"file": str(file.path)}}}},
                tags={INBOX_FILE_TAG: str(file.path), INBOX_KEY_TAG: file.key},
            )
        )
    cursor = json.dumps(sorted((requested_before & present) | {r.run_key for r in requests}))
    partition_requests = [symbol_partitions.build_add_request(new_symbols)] if new_symbols else []
    for line in waiting_files:
        context.log.info(line)
    if requests:
        return SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests, cursor=cursor)
    waiting = [f"{len(scan.settling)} still being written"] if scan.settling else []
    waiting += [f"names not matching the symbol pattern: {', '.join(scan.unmatched)}"] if scan.unmatched else []
    if waiting_files:  # new files there are: say why each waits (a run that never ends would hide here)
        return SensorResult(skip_reason="; ".join(waiting_files + waiting), cursor=cursor)
    return SensorResult(skip_reason="no new CSV files" + (f" ({'; '.join(waiting)})" if waiting else ""), cursor=cursor)


def _symbols_importing(instance: DagsterInstance, ingest_job: str) -> dict[str, str]:
    """Symbols with an inbox import queued, running or failed and about to be retried, each with
    which run and its status.

    A failed run whose retry the daemon has yet to launch still holds its symbol: between the
    failure and the retry's creation there is a window in which the next file of the symbol would
    otherwise start, and its import would race the retry on the catalog.
    """
    records = instance.get_run_records(RunsFilter(job_name=ingest_job, statuses=UNFINISHED))
    failed = instance.get_run_records(
        RunsFilter(job_name=ingest_job, statuses=[DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "true"})
    )
    busy: dict[str, str] = {}
    for record in reversed([*records, *failed]):  # oldest first: the run the file waits behind
        run = record.dagster_run
        if INBOX_FILE_TAG not in run.tags or PARTITION_TAG not in run.tags:
            continue
        symbol = run.tags[PARTITION_TAG]
        if run.status == DagsterRunStatus.FAILURE:
            if run.is_complete_and_waiting_to_retry:
                busy.setdefault(symbol, f"import run {run.run_id} of {symbol} failed and is about to be retried")
            continue
        busy.setdefault(symbol, f"import run {run.run_id} of {symbol} is still {run.status.value}")
    return busy


def file_inbox_run(
    instance: DagsterInstance,
    run: DagsterRun,
    catalog: Callable[[], BarCatalog] | None = None,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
) -> str | None:
    """Archive, quarantine or leave the inbox file of a finished run; returns what was done.

    With ``catalog`` (opened only then: filing a file needs neither store), a quarantined file's
    symbol loses its partition when it has no bars at all (``partitions.drop_symbol_without_bars``).
    """
    if INBOX_FILE_TAG not in run.tags:
        return None
    path = Path(run.tags[INBOX_FILE_TAG])
    if file_key(path) != run.tags.get(INBOX_KEY_TAG):
        return f"{path.name} changed or left the inbox since run {run.run_id} read it; not moved"
    if run.status == DagsterRunStatus.SUCCESS or _wrote_bars(instance, run):
        return f"{path.name} imported; archived as {archive(path)}"
    symbol = run.tags[PARTITION_TAG]
    problems = rejection(path, symbol, max_bytes)
    if problems:
        target = quarantine(path, problems)
        dropped = catalog is not None and drop_symbol_without_bars(instance, catalog(), symbol)
        note = f"; {symbol} has no bars, so its partition was removed" if dropped else ""
        return f"{path.name} rejected ({len(problems)} problems); quarantined as {target}{note}"
    return f"{path.name} is readable, so run {run.run_id} failed elsewhere; left in the inbox to re-execute"


def _wrote_bars(instance: DagsterInstance, run: DagsterRun) -> bool:
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1)
    return bool(records.records)


def rejection(path: Path, symbol: str, max_bytes: int = DEFAULT_MAX_CSV_BYTES) -> list[str]:
    """Every reason the file cannot become bars, read as the inbox run read it; [] when it can."""
    from ntrader_pipeline.core.csv_bars import read_bar_csv  # pyarrow: only when a file is checked
    from ntrader_pipeline.core.quoting import clipped, shown_path
    from ntrader_pipeline.core.validation import BarFileError

    try:
        read_bar_csv(path, symbol, max_bytes=max_bytes)
    except BarFileError as error:
        return [problem.describe(path.name) for problem in error.problems]
    except OSError:
        return []  # unreadable right now (permissions, disk): no evidence against the content
    except Exception as error:  # noqa: BLE001 - any other parse failure is still the file's fault
        return [f"{shown_path(path.name)}: cannot be read as bars ({type(error).__name__}: {clipped(error, 120)})"]
    return []

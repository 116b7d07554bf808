"""The drop folder, end to end: real sensor ticks on a temporary inbox, the requested import run
executed for real on a test instance, then the run-status sensors filing the file."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    SensorResult,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.inbox import SETTLE_SECONDS, file_key, symbol_from_name
from ntrader_pipeline.definitions import INGEST_JOB, build_definitions
from ntrader_pipeline.defs.market_data.sensors import INBOX_FILE_TAG, INBOX_KEY_TAG, file_inbox_run
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import AAPL_MINUTE, STRATEGY_CONFIGS

BAD_LINE = 33  # the AAPL sample's bar with open 191.40 above high 191.25


@pytest.fixture
def instance() -> DagsterInstance:
    """A fresh in-memory instance per test (instance_for_test costs ~2 s each here)."""
    return DagsterInstance.ephemeral()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, inbox_dir=tmp_path / "inbox")


def drop(settings: Settings, source: Path, name: str, age_seconds: float = 60, text: str | None = None) -> Path:
    """Put a file in the inbox as a finished copy (modified ``age_seconds`` ago)."""
    inbox = settings.resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / name
    if text is None:
        shutil.copyfile(source, target)
    else:
        target.write_text(text)
    stamp = time.time() - age_seconds
    os.utime(target, (stamp, stamp))
    return target


def fixed_aapl() -> str:
    """The AAPL sample with its bad bar's high raised above its open: a file every rule accepts."""
    lines = AAPL_MINUTE.read_text().splitlines()
    lines[BAD_LINE - 1] = lines[BAD_LINE - 1].replace(",191.40,191.25,", ",191.40,191.45,")
    return "\n".join(lines) + "\n"


def tick(defs, instance: DagsterInstance, cursor: str | None = None) -> SensorResult:
    sensor = defs.resolve_sensor_def("inbox_csv_sensor")
    return sensor(build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def run_request(defs, instance: DagsterInstance, result: SensorResult, request):
    """Do what the daemon does with a sensor result: add the partitions, run the request."""
    for partitions in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(partitions.partitions_def_name, list(partitions.partition_keys))
    job = defs.resolve_job_def(INGEST_JOB)
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )


def after_run(defs, instance: DagsterInstance, execution) -> None:
    """Evaluate the run-status sensor that fires for how the run ended."""
    run = instance.get_run_by_id(execution.run_id)
    if execution.success:
        event = execution.get_run_success_event()
        context = build_run_status_sensor_context("inbox_archive_sensor", event, instance, run)
        defs.resolve_sensor_def("inbox_archive_sensor")(context)
    else:
        event = execution.get_run_failure_event()
        context = build_run_status_sensor_context("inbox_quarantine_sensor", event, instance, run)
        defs.resolve_sensor_def("inbox_quarantine_sensor")(context.for_run_failure())


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("AAPL.csv", "AAPL"),
        ("AAPL_2024-01-02_1min.csv", "AAPL"),
        ("nvda_daily.CSV", "NVDA"),
        ("BRK.B.csv", "BRK.B"),
        ("BRK-B_1999.csv", "BRK-B"),
        ("2024_AAPL.csv", None),
        ("AAPL.txt", None),
    ],
)
def test_symbol_comes_from_the_file_name(name: str, symbol: str | None) -> None:
    assert symbol_from_name(name) == symbol


def test_a_configured_pattern_names_the_symbol() -> None:
    pattern = r"^bars-(?P<symbol>[a-z]+)-\d{8}\.csv$"
    assert symbol_from_name("bars-msft-20240102.csv", pattern) == "MSFT"
    assert symbol_from_name("MSFT.csv", pattern) is None


def test_each_new_or_changed_file_is_requested_once_and_the_cursor_stays_small(settings, instance) -> None:
    defs = build_definitions(settings)
    Definitions.validate_loadable(defs)
    msft = drop(settings, AAPL_MINUTE, "MSFT_2024-01-02.csv", age_seconds=120, text=fixed_aapl())
    aapl = drop(settings, AAPL_MINUTE, "AAPL_2024-01-02_1min.csv", age_seconds=60)
    drop(settings, AAPL_MINUTE, "readme.txt", text="not a csv")
    drop(settings, AAPL_MINUTE, "2024_bars.csv", text="no symbol in this name")

    first = tick(defs, instance)
    assert [r.run_key for r in first.run_requests] == [file_key(msft), file_key(aapl)]  # oldest first
    assert file_key(msft) == f"MSFT_2024-01-02.csv:{msft.stat().st_size}:{msft.stat().st_mtime_ns}"
    assert [r.partition_key for r in first.run_requests] == ["MSFT", "AAPL"]
    assert first.run_requests[1].run_config == {"ops": {"csv_bars": {"config": {"file": str(aapl)}}}}
    assert first.run_requests[1].tags[INBOX_KEY_TAG] == file_key(aapl)
    assert [list(p.partition_keys) for p in first.dynamic_partitions_requests] == [["MSFT", "AAPL"]]
    assert sorted(json.loads(first.cursor)) == sorted([file_key(msft), file_key(aapl)])

    second = tick(defs, instance, first.cursor)
    assert not second.run_requests
    assert "2024_bars.csv" in second.skip_reason.skip_message
    assert second.cursor == first.cursor

    aapl.write_text(fixed_aapl())  # the same name with new content is a new file
    os.utime(aapl, (time.time() - 30, time.time() - 30))
    third = tick(defs, instance, second.cursor)
    assert [r.run_key for r in third.run_requests] == [file_key(aapl)]
    assert json.loads(third.cursor) == sorted([file_key(msft), file_key(aapl)])  # old AAPL key gone

    msft.unlink()
    aapl.unlink()
    assert json.loads(tick(defs, instance, third.cursor).cursor) == []


def test_files_still_being_written_and_second_files_of_a_symbol_wait(settings, instance) -> None:
    defs = build_definitions(settings)
    older = drop(settings, AAPL_MINUTE, "AAPL_day1.csv", age_seconds=120)
    newer = drop(settings, AAPL_MINUTE, "AAPL_day2.csv", age_seconds=60)
    drop(settings, AAPL_MINUTE, "MSFT.csv", age_seconds=SETTLE_SECONDS / 5)

    first = tick(defs, instance)
    assert [r.run_key for r in first.run_requests] == [file_key(older)]  # one AAPL import at a time

    importing = DagsterRun(  # the first file's run is in progress
        job_name=INGEST_JOB,
        status=DagsterRunStatus.STARTED,
        tags={INBOX_FILE_TAG: str(older), INBOX_KEY_TAG: file_key(older), "dagster/partition": "AAPL"},
    )
    instance.add_run(importing)
    assert not tick(defs, instance, first.cursor).run_requests

    instance.report_run_failed(importing)
    second = tick(defs, instance, first.cursor)
    assert [r.run_key for r in second.run_requests] == [file_key(newer)]
    assert "1 still being written" in tick(defs, instance, second.cursor).skip_reason.skip_message


def test_a_failed_import_about_to_be_retried_still_holds_its_symbol(settings, instance) -> None:
    """Between a run's failure and the launch of its retry, the next file of the symbol waits: its
    import would otherwise race the retry on the catalog (seen after a daemon restart)."""
    defs = build_definitions(settings)
    older = drop(settings, AAPL_MINUTE, "AAPL_day1.csv", age_seconds=120)
    newer = drop(settings, AAPL_MINUTE, "AAPL_day2.csv", age_seconds=60)
    first = tick(defs, instance)
    tags = {INBOX_FILE_TAG: str(older), INBOX_KEY_TAG: file_key(older), "dagster/partition": "AAPL"}
    failed = DagsterRun(job_name=INGEST_JOB, status=DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(failed)
    instance.report_run_failed(failed)
    # What an instance with run_retries enabled records with the failure (Dagster's own tag).
    instance.add_run_tags(failed.run_id, {WILL_RETRY_TAG: "true"})

    waiting = tick(defs, instance, first.cursor)
    assert not waiting.run_requests
    assert f"AAPL_day2.csv waits: import run {failed.run_id} of AAPL failed and is about to be retried" in (
        waiting.skip_reason.skip_message
    )

    retry = DagsterRun(job_name=INGEST_JOB, status=DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(retry)
    instance.add_run_tags(failed.run_id, {AUTO_RETRY_RUN_ID_TAG: retry.run_id})
    assert f"import run {retry.run_id} of AAPL is still STARTED" in (
        tick(defs, instance, first.cursor).skip_reason.skip_message
    )
    instance.report_run_failed(retry)  # the retry's own failure is final (no will_retry tag)
    assert [r.run_key for r in tick(defs, instance, first.cursor).run_requests] == [file_key(newer)]


def test_a_good_file_is_imported_then_archived(settings, instance) -> None:
    defs = build_definitions(settings)
    path = drop(settings, AAPL_MINUTE, "AAPL.csv", text=fixed_aapl())
    result = tick(defs, instance)

    execution = run_request(defs, instance, result, result.run_requests[0])
    assert execution.success
    assert path.exists()  # the run only imports; filing waits for the run's outcome
    after_run(defs, instance, execution)

    assert not path.exists()
    assert (settings.resolved_inbox_dir / "archive" / "AAPL.csv").read_text() == fixed_aapl()
    inventory = Warehouse.open(settings.resolved_warehouse_url).bar_inventory("AAPL")
    assert [(row["symbol"], row["bars"]) for row in inventory] == [("AAPL", 51)]
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in execution.get_asset_check_evaluations()}
    assert checks[("bar_catalog", "ohlc_consistent")] and checks[("market_data", "row_count_matches_source")]


def test_a_rejected_file_is_quarantined_with_its_errors_and_nothing_is_written(settings, instance) -> None:
    defs = build_definitions(settings)
    path = drop(settings, AAPL_MINUTE, AAPL_MINUTE.name)
    result = tick(defs, instance)

    execution = run_request(defs, instance, result, result.run_requests[0])
    assert not execution.success
    after_run(defs, instance, execution)

    quarantined = settings.resolved_inbox_dir / "quarantine" / AAPL_MINUTE.name
    assert not path.exists() and quarantined.read_bytes() == AAPL_MINUTE.read_bytes()
    errors = (quarantined.parent / f"{AAPL_MINUTE.name}.errors.txt").read_text().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"{AAPL_MINUTE.name}:{BAD_LINE} ") and "191.25" in errors[0]
    assert Warehouse.open(settings.resolved_warehouse_url).bar_inventory("AAPL") == []


def test_a_run_that_failed_for_another_reason_leaves_the_file_in_the_inbox(tmp_path, instance) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the warehouse folder should be")
    settings = Settings(
        home=tmp_path / "home",
        strategy_configs_dir=STRATEGY_CONFIGS,
        inbox_dir=tmp_path / "inbox",
        warehouse_url=f"sqlite:///{blocker / 'warehouse.sqlite'}",
    )
    defs = build_definitions(settings)
    path = drop(settings, AAPL_MINUTE, "AAPL.csv", text=fixed_aapl())
    result = tick(defs, instance)

    execution = run_request(defs, instance, result, result.run_requests[0])
    assert not execution.success
    after_run(defs, instance, execution)

    assert path.read_text() == fixed_aapl()
    assert not (settings.resolved_inbox_dir / "archive").exists()
    assert not (settings.resolved_inbox_dir / "quarantine").exists()


def test_a_file_replaced_during_its_run_is_not_filed(settings, instance) -> None:
    path = drop(settings, AAPL_MINUTE, "AAPL.csv", text=fixed_aapl())
    key_when_requested = file_key(path)
    drop(settings, AAPL_MINUTE, "AAPL.csv", age_seconds=10)  # a new version arrives mid-run
    run = DagsterRun(
        job_name=INGEST_JOB,
        status=DagsterRunStatus.SUCCESS,
        tags={INBOX_FILE_TAG: str(path), INBOX_KEY_TAG: key_when_requested, "dagster/partition": "AAPL"},
    )
    assert "changed" in file_inbox_run(instance, run)
    assert path.read_bytes() == AAPL_MINUTE.read_bytes()


def test_names_taken_in_the_archive_get_a_suffix(settings, instance) -> None:
    archive = settings.resolved_inbox_dir / "archive"
    archive.mkdir(parents=True)
    (archive / "AAPL.csv").write_text("yesterday's file")
    path = drop(settings, AAPL_MINUTE, "AAPL.csv", text=fixed_aapl())
    run = DagsterRun(
        job_name=INGEST_JOB,
        status=DagsterRunStatus.SUCCESS,
        tags={INBOX_FILE_TAG: str(path), INBOX_KEY_TAG: file_key(path), "dagster/partition": "AAPL"},
    )
    file_inbox_run(instance, run)
    assert (archive / "AAPL.csv").read_text() == "yesterday's file"
    assert (archive / "AAPL-1.csv").read_text() == fixed_aapl()


def test_a_name_whose_symbol_breaks_the_grammar_is_quarantined_without_a_run_or_partition(tmp_path, instance) -> None:
    """A permissive custom pattern lets any text through as the symbol; the grammar still stops it."""
    settings = Settings(
        home=tmp_path / "home",
        strategy_configs_dir=STRATEGY_CONFIGS,
        inbox_dir=tmp_path / "inbox",
        inbox_symbol_pattern=r"^(?P<symbol>.+)\.csv$",
    )
    defs = build_definitions(settings)
    hostile = drop(settings, AAPL_MINUTE, "A;DROP TABLE market_data.csv")
    good = drop(settings, AAPL_MINUTE, "AAPL.csv", text=fixed_aapl())
    result = tick(defs, instance)
    assert [r.partition_key for r in result.run_requests] == ["AAPL"]
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["AAPL"]]
    assert not hostile.exists() and good.exists()
    quarantined = settings.resolved_inbox_dir / "quarantine" / hostile.name
    assert quarantined.read_bytes() == AAPL_MINUTE.read_bytes()
    reason = (quarantined.parent / f"{hostile.name}.errors.txt").read_text()
    assert reason.startswith(f"{hostile.name}: refused by its name: 'A;DROP TABLE market_data' is not a symbol: ")
    assert instance.get_dynamic_partitions("symbol") == []

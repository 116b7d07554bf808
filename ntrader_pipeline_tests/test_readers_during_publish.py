"""Readers see a whole version of a series while a writer publishes it, on disk and on object storage.

Backtests and checks read the catalog while imports replace the series they read. On disk a
publish swaps folders by renames; a reader holds the series' swap lock (shared) while it lists and
opens the files, the swap holds it exclusively, so a reader meets the old folder or the new one,
never the instant between two renames. On object storage a reader resolves the manifest once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.catalog_publish import swap_lock_path
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.backtest import window
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.processes import wait_for_lock_waiter, wait_until_stopped
from ntrader_pipeline_tests.support import ORCL_DAILY
from ntrader_pipeline_tests.test_crash_recovery import BAR_TYPE, DRIVER, expected_hash, repriced
from ntrader_pipeline_tests.test_object_storage import S3_VARIABLES


def ntrader(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ntrader_pipeline.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_backtest_started_mid_swap_runs_on_the_new_bars_instead_of_finding_none(
    tmp_path, ntrader_home, monkeypatch
) -> None:
    """A re-import stopped at the instant that broke readers (old bars folder moved aside, the new
    one not yet in): a backtest started then waits for the swap and runs on the new bars, where it
    used to fail with "the catalog has no DAILY bars"."""
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    catalog = ntrader_home.resolved_catalog_path
    url = ntrader_home.resolved_warehouse_url
    imported = CliRunner().invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"])
    assert imported.exit_code == 0, imported.output
    new_file = repriced(tmp_path / "ORCL_repriced.csv")
    writer = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(catalog), url, str(new_file)],
        env={**os.environ, "NTRADER_FAULT_STOP_AT": "backup-made"},
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = None
    try:
        wait_until_stopped(writer)
        assert not (catalog / "data" / "bar" / BAR_TYPE).exists()  # the instant: no live bars folder

        reader = ntrader("backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL")
        waiting = wait_for_lock_waiter(swap_lock_path(catalog, BAR_TYPE), reader)
        if not waiting:
            out, errors = reader.communicate()
            raise AssertionError(f"the backtest did not wait for the swap: exit {reader.returncode}: {errors[-2000:]}")
        writer.send_signal(signal.SIGCONT)
        _, errors = writer.communicate(timeout=600)
        assert writer.returncode == 0, errors[-2000:]
        out, errors = reader.communicate(timeout=600)
        assert reader.returncode == 0, errors[-2000:]
    finally:
        for process in (writer, reader):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    [run] = Warehouse.open(url).list_runs(symbol="ORCL")
    assert run.data_hash == expected_hash(new_file)  # the whole new version


# Readers as the pipeline reads: the resource's catalog (opened through the store, so a killed
# publish is settled first), then Dagster backtests and checks-alone runs on their own instance.
# Each prints one line per read: what it read (a content hash), or the error. They stop when told.
READS = """
import sys, pathlib
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import get_settings
stop = pathlib.Path(sys.argv[1])
stores = PipelineStores.from_settings(get_settings())
while not stop.exists():
    try:
        series = stores.catalog().read("ORCL", Timeframe.DAILY)
        print("read", series.content_hash() if series is not None else "none", flush=True)
    except Exception as exc:
        print("read error", type(exc).__name__, str(exc)[:200].replace(chr(10), " "), flush=True)
"""
RUNS = """
import sys, pathlib
from dagster import AssetMaterialization, DagsterInstance
from ntrader_pipeline.definitions import INGEST_JOB, build_definitions
from ntrader_pipeline.settings import get_settings
stop, first, last, bars, start, end = pathlib.Path(sys.argv[1]), *sys.argv[2:4], int(sys.argv[4]), *sys.argv[5:7]
defs, instance = build_definitions(get_settings()), DagsterInstance.ephemeral()
instance.add_dynamic_partitions("symbol", ["ORCL"])
instance.report_runless_asset_event(AssetMaterialization(  # what the checks judge: the stored import
    "bar_catalog", partition="ORCL",
    metadata={"bar_type": "ORCL.XNAS-1-DAY-LAST-EXTERNAL", "first": first, "last": last, "bars_written": bars},
))
backtests = defs.resolve_job_def("backtest_job")
window = {"ops": {"backtest": {"config": {"start": start, "end": end}}}}
ingest = defs.resolve_job_def(INGEST_JOB)
check_keys = set(ingest.asset_layer.asset_graph.asset_check_keys)
checks = ingest.get_subset(asset_selection=set(), asset_check_selection=check_keys)
def failure(result):
    events = [e for e in result.all_events if e.is_failure]
    return events[0].message.replace(chr(10), " ")[:300] if events else "no result"
while not stop.exists():
    done = backtests.execute_in_process(
        run_config=window, instance=instance, partition_key="sma_crossover|ORCL", raise_on_error=False
    )
    found = [m for m in done.asset_materializations_for_node("backtest") if m.asset_key.path == ["backtest"]]
    if done.success and found:
        print("backtest", found[0].metadata["data_sha256"].value, flush=True)
    else:
        print("backtest error", failure(done), flush=True)
    done = checks.execute_in_process(instance=instance, partition_key="ORCL", raise_on_error=False)
    content = {e.check_name: e for e in done.get_asset_check_evaluations() if e.asset_key.path == ["bar_catalog"]}
    if "content_matches" in content and "catalog_sha256" in content["content_matches"].metadata:
        print("check", content["content_matches"].metadata["catalog_sha256"].value, flush=True)
    else:
        found = content["content_matches"].description if "content_matches" in content else failure(done)
        print("check error", found, flush=True)
"""
PUBLISHES = 24  # at least; each alternates the series between two versions that differ in every bar
OVERLAPPING = 3  # backtests and check runs each that must have read while publishes went on
RUN_KINDS = ("backtest", "check")
WINDOW = (date(1995, 1, 1), date(1996, 12, 31))  # what the backtests trade: 2 years keep each run short
SESSIONS = 1000  # ORCL 1995-1998: each publish and each read stays short, so there are many of them


def two_versions(folder: Path, sessions: int) -> tuple[Path, Path]:
    """The first ``sessions`` bars of ORCL, and the same bars with every price 7 % higher."""
    header, *rows = ORCL_DAILY.read_text().splitlines()[: sessions + 1]
    changed = [header]
    for row in rows:
        day, *prices, volume = row.split(",")
        changed.append(",".join([day, *(f"{Decimal(p) * Decimal('1.07'):.6f}" for p in prices), volume]))
    old, new = folder / "ORCL_v0.csv", folder / "ORCL_v1.csv"
    old.write_text("\n".join([header, *rows]) + "\n")
    new.write_text("\n".join(changed) + "\n")
    return old, new


@pytest.mark.parametrize("where", ["disk", "s3"])
def test_backtests_checks_and_reads_during_repeated_reimports_see_one_whole_version(
    tmp_path, ntrader_home, monkeypatch, request, where
) -> None:
    """While ORCL is re-imported again and again, alternating two versions that differ in every bar,
    processes read it as the pipeline does (the resource's catalog, Dagster backtests, the checks run
    alone): not one read may fail, and every read is one of the two versions exactly."""
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        for variable in S3_VARIABLES:
            monkeypatch.setenv(variable, bucket[variable])
        monkeypatch.setenv("NTRADER_CATALOG_PATH", f"s3://{bucket['bucket']}/catalog")
    store = PipelineStores.from_settings(get_settings()).market_data()
    versions = [read_bar_csv(f, "ORCL") for f in two_versions(tmp_path, SESSIONS)]
    allowed = {
        "read": {v.content_hash() for v in versions},
        "check": {v.content_hash() for v in versions},
        "backtest": {window(v, *WINDOW).content_hash() for v in versions},
    }
    store.replace(versions[0])
    first, last = (pd.Timestamp(ns, tz="UTC").isoformat() for ns in (versions[0].first_ns, versions[0].last_ns))
    stop = tmp_path / "stop"
    arguments = [(READS, ()), (RUNS, (first, last, str(len(versions[0])), *(str(d) for d in WINDOW)))]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(stop), *extra],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"reader{i}.log").open("w"),  # Dagster's event log goes to stderr
            text=True,
        )
        for i, (script, extra) in enumerate(arguments)
    ]
    reads: list[list[str]] = []
    collectors = [threading.Thread(target=collect, args=(r.stdout, reads)) for r in readers]
    for collector in collectors:
        collector.start()
    try:
        while {k for k, *_ in reads} != {"read", "backtest"}:  # every reader is reading before the publishes
            assert all(r.poll() is None for r in readers), "a reader ended before the publishes"
            time.sleep(0.1)
        started, published = len(reads), 0

        def overlapped() -> bool:
            during = Counter(k for k, *_ in reads[started:])
            return min(during[k] for k in RUN_KINDS) >= OVERLAPPING

        deadline = time.monotonic() + 600  # a hang-catcher only: the runs overlap within a few publishes
        while published < PUBLISHES or not overlapped():
            assert time.monotonic() < deadline, f"the readers did not keep up: {Counter(k for k, *_ in reads)}"
            assert all(r.poll() is None for r in readers), "a reader ended during the publishes"
            published += 1
            store.replace(versions[published % 2])
    finally:
        stop.touch()
        for reader in readers:
            reader.wait(timeout=600)
        for collector in collectors:
            collector.join()

    failed = [" ".join(r) for r in reads if r[1] not in allowed[r[0]]]
    assert not failed, f"{len(failed)} of {len(reads)} reads failed or read neither version: {failed[:5]}"
    assert overlapped()
    assert {r[1] for r in reads if r[0] == "read"} == allowed["read"]  # the reads did interleave with the publishes


def collect(stream, into: list[list[str]]) -> None:
    for line in stream:
        if line.strip():
            into.append(line.split())

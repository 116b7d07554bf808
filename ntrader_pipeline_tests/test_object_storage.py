"""The catalog and the reports on an S3-API bucket (a real ``moto_server``), through real runs.

The import, the backtest and their reports take the same code paths as on disk except for the
storage; the crash cases kill a real import process at each phase of an object-storage publish
(versions plus a manifest PUT last) and show the next open settles it: catalog and table agree,
old or new, and no version is left that the manifest does not name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from dagster import AssetKey, instance_for_test
from sqlalchemy import create_engine, text

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.catalog_manifest import read_manifest
from ntrader_pipeline.adapters.market_data_store import MarketDataStore, series_lock
from ntrader_pipeline.adapters.object_store import S3Options
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.reports import REPORT_FILES
from ntrader_pipeline.definitions import build_definitions
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY
from ntrader_pipeline_tests.test_crash_recovery import BAR_TYPE, expected_hash, repriced, stored_content

S3_VARIABLES = (
    "NTRADER_S3_ENDPOINT_URL",
    "NTRADER_S3_REGION",
    "NTRADER_S3_ACCESS_KEY_ID",
    "NTRADER_S3_SECRET_ACCESS_KEY",
)


def s3_options(bucket: dict[str, str]) -> S3Options:
    return S3Options(*(bucket[v] for v in S3_VARIABLES))


def open_store(url: str, bucket: dict[str, str], warehouse_url: str) -> MarketDataStore:
    return MarketDataStore(BarCatalog(url, "XNAS", s3_options(bucket)), Warehouse.open(warehouse_url))


def versions(store: MarketDataStore) -> list[str]:
    return store.catalog.objects.children(f"series/{BAR_TYPE}")


def test_csv_bars_round_trip_through_an_s3_catalog(s3_bucket, sqlite_url) -> None:
    url = f"s3://{s3_bucket['bucket']}/catalog"
    store = open_store(url, s3_bucket, sqlite_url)
    incoming = read_bar_csv(ORCL_DAILY, "ORCL")
    stored = store.replace(incoming)
    assert stored.stored == 5036 and stored.catalog_files == 1

    again = open_store(url, s3_bucket, sqlite_url).catalog.read("ORCL", Timeframe.DAILY)
    assert again.frame.equals(incoming.frame) and again.price_precision == incoming.price_precision
    old = expected_hash(ORCL_DAILY)
    assert stored_content(store) == (old, old)

    manifest = read_manifest(store.catalog.objects, BAR_TYPE)
    assert versions(store) == [manifest["version"]]
    keys = store.catalog.objects.list()
    assert f"manifests/{BAR_TYPE}.json" in keys and not [k for k in keys if k.startswith("staging/")]

    # NautilusTrader's own catalog reads a version as it is (each version is a complete catalog)
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    options = s3_options(s3_bucket)
    nautilus = ParquetDataCatalog(
        f"{url}/series/{BAR_TYPE}/{manifest['version']}",
        fs_protocol="s3",
        fs_storage_options=options.fsspec(),
        fs_rust_storage_options=options.rust(),
    )
    assert len(nautilus.bars([BAR_TYPE])) == 5036
    assert nautilus.instruments()[0].price_precision == incoming.price_precision

    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))  # a re-import replaces the version, the old one goes
    assert versions(store) == [read_manifest(store.catalog.objects, BAR_TYPE)["version"]] != [manifest["version"]]


def test_a_backtest_on_s3_matches_the_local_one_and_its_reports_are_in_the_bucket(
    ntrader_home, s3_bucket, tmp_path, monkeypatch
) -> None:
    def run() -> tuple[dict, dict]:
        settings = get_settings()
        with instance_for_test() as instance:
            pipeline = Pipeline(settings, instance, build_definitions(settings))
            pipeline.import_csv(ORCL_DAILY, "ORCL")
            metrics = pipeline.run_backtest("sma_crossover", "ORCL", end=date(2004, 12, 31))
            report = instance.get_latest_materialization_event(AssetKey("backtest_report")).asset_materialization
        return metrics, {k: v.value for k, v in report.metadata.items() if k in ("report_dir", "tearsheet")}

    local, local_report = run()
    assert not local_report["report_dir"].startswith("s3://")

    for variable in S3_VARIABLES:
        monkeypatch.setenv(variable, s3_bucket[variable])
    root = f"s3://{s3_bucket['bucket']}"
    monkeypatch.setenv("NTRADER_CATALOG_PATH", f"{root}/catalog")
    monkeypatch.setenv("NTRADER_REPORTS_DIR", f"{root}/reports")
    monkeypatch.setenv("NTRADER_HOME", str(tmp_path / "s3-home"))  # a fresh warehouse: nothing shared
    remote, remote_report = run()

    differs = {"run_id"}
    assert {k: v for k, v in remote.items() if k not in differs} == {k: v for k, v in local.items() if k not in differs}
    run_id = remote["run_id"]
    assert remote_report == {
        "report_dir": f"{root}/reports/{run_id}",
        "tearsheet": f"{root}/reports/{run_id}/tearsheet.html",
    }
    reports = BarCatalog(f"{root}/reports", "XNAS", s3_options(s3_bucket)).objects  # the bucket, read back
    assert sorted(reports.list(run_id)) == sorted(f"{run_id}/{name}" for name in REPORT_FILES.values())
    saved = json.loads(reports.get(f"{run_id}/metrics.json"))
    assert saved["run_id"] == run_id and saved["data"]["bars"] > 0
    assert not (tmp_path / "s3-home" / "catalog").exists() and not (tmp_path / "s3-home" / "reports").exists()


DRIVER = """
import sys
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.settings import get_settings
catalog, url, csv = sys.argv[1:]
store = MarketDataStore(BarCatalog(catalog, "XNAS", get_settings().s3_options()), Warehouse.open(url))
store.replace(read_bar_csv(csv, "ORCL"))
"""
# phase -> which bars both stores must hold once settled (see test_crash_recovery for the disk's)
PHASES = {
    "staging": "old",  # the version uploaded, its journal still empty
    "staged": "old",  # the journal sealed, nothing else done
    "table-written": "old",  # rows replaced and publish marked, not committed, manifest not swapped
    "before-commit": "old",  # the manifest swapped to the new version, the commit not sent
    "committed": "new",  # committed, the old version and the journal still there
    "collected": "new",  # the old version deleted, the journal not yet
}


# Every phase on SQLite; on Postgres the phases either side of the commit, where recovery must ask
# the database whether the transaction committed (each case is a killed process and a recovery).
KILL_CASES = [(phase, "sqlite") for phase in PHASES] + [("before-commit", "postgres"), ("committed", "postgres")]


@pytest.mark.parametrize(("phase", "warehouse_url"), KILL_CASES, indirect=["warehouse_url"])
def test_a_kill_at_any_phase_of_an_s3_publish_is_settled_by_the_next_open(
    s3_bucket, warehouse_url, tmp_path, phase
) -> None:
    url = f"s3://{s3_bucket['bucket']}/catalog"
    store = open_store(url, s3_bucket, warehouse_url)
    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    old, new_file = expected_hash(ORCL_DAILY), repriced(tmp_path / "ORCL_repriced.csv")
    new = expected_hash(new_file)

    env = {**os.environ, **{v: s3_bucket[v] for v in S3_VARIABLES}, "NTRADER_FAULT_KILL_AT": phase}
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, url, warehouse_url, str(new_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert store.catalog.objects.list(f"staging/{BAR_TYPE}")  # the kill left an unsettled publish behind

    reopened = open_store(url, s3_bucket, warehouse_url)  # the next command
    assert stored_content(reopened) == ((old, old) if PHASES[phase] == "old" else (new, new))
    assert not reopened.catalog.objects.list("staging")
    assert versions(reopened) == [read_manifest(reopened.catalog.objects, BAR_TYPE)["version"]]  # no garbage


def test_a_writer_in_another_process_waits_for_the_series_lock_held_through_the_warehouse(
    s3_bucket, postgres_url, tmp_path
) -> None:
    """Writers of an S3 catalog may sit on different machines, so the series lock is a Postgres
    advisory lock: a second writer blocks on the server until the holder lets go, then publishes."""
    url = f"s3://{s3_bucket['bucket']}/catalog"
    store = open_store(url, s3_bucket, postgres_url)
    store.replace(read_bar_csv(ORCL_DAILY, "ORCL"))
    old, new_file = expected_hash(ORCL_DAILY), repriced(tmp_path / "ORCL_repriced.csv")
    manifest = read_manifest(store.catalog.objects, BAR_TYPE)

    env = {**os.environ, **{v: s3_bucket[v] for v in S3_VARIABLES}}
    watcher = create_engine(postgres_url)
    with series_lock(store.catalog, BAR_TYPE, warehouse=store.warehouse):
        writer = subprocess.Popen(
            [sys.executable, "-c", DRIVER, url, postgres_url, str(new_file)], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            with watcher.connect() as connection:
                waiting = []
                for _ in range(3000):  # a hang-catcher: the writer waits within seconds
                    waiting = (
                        connection.execute(
                            text(
                                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                            )
                        )
                        .scalars()
                        .all()
                    )
                    if waiting or writer.poll() is not None:
                        break
                    connection.rollback()
                    time.sleep(0.1)
            assert waiting and writer.poll() is None, "the second writer did not wait for the lock"
            assert read_manifest(store.catalog.objects, BAR_TYPE) == manifest  # nothing published meanwhile
            assert not store.catalog.objects.list("staging")
        except BaseException:
            writer.kill()
            raise
    _, errors = writer.communicate(timeout=300)
    watcher.dispose()
    assert writer.returncode == 0, errors[-2000:]
    new = expected_hash(new_file)
    assert stored_content(open_store(url, s3_bucket, postgres_url)) == (new, new) != (old, old)


READER = """
import sys, time
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.settings import get_settings
catalog = BarCatalog(sys.argv[1], "XNAS", get_settings().s3_options())
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    print(catalog.read("ORCL", Timeframe.DAILY).content_hash(), flush=True)
"""


def test_a_reader_during_publishes_sees_the_old_bars_or_the_new_never_a_mix(s3_bucket, sqlite_url, tmp_path) -> None:
    """Publishes alternate between two versions of ORCL while another process reads in a loop;
    every read is one whole version (the manifest is resolved once per read)."""
    url = f"s3://{s3_bucket['bucket']}/catalog"
    store = open_store(url, s3_bucket, sqlite_url)
    files = [ORCL_DAILY, repriced(tmp_path / "ORCL_repriced.csv")]
    contents = [read_bar_csv(f, "ORCL") for f in files]
    allowed = {c.content_hash() for c in contents}
    store.replace(contents[0])

    env = {**os.environ, **{v: s3_bucket[v] for v in S3_VARIABLES}}
    reader = subprocess.Popen([sys.executable, "-c", READER, url, "600"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        reads = [reader.stdout.readline().strip()]  # the reader is up before the publishes start
        for i in range(1, 7):
            store.replace(contents[i % 2])
    finally:
        reader.send_signal(signal.SIGTERM)
        out, _ = reader.communicate(timeout=120)
    reads += [line for line in out.splitlines() if line]
    assert len(reads) > 1
    assert set(reads) <= allowed

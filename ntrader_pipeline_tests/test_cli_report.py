"""The report and results commands on a real run made through Dagster, as a user types them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, FloatMetadataValue, IntMetadataValue, instance_for_test
from sqlalchemy import update

from ntrader_pipeline.adapters.warehouse import Warehouse, backtest_metrics, backtest_runs
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.reports import REPORT_FILES
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, point_settings_at


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> Iterator[tuple[Path, str, DagsterInstance]]:
    """A home with ORCL imported and one SMA backtest (1995–1997) run through the Dagster job."""
    home = tmp_path_factory.mktemp("cli_home")
    with pytest.MonkeyPatch.context() as monkeypatch, instance_for_test() as instance:
        point_settings_at(monkeypatch, home)
        pipeline = Pipeline.open(get_settings(), instance)
        pipeline.import_csv(ORCL_DAILY, "ORCL")
        metrics = pipeline.run_backtest("sma_crossover", "ORCL", end=date(1997, 12, 31))
        yield home, metrics["run_id"], instance
    Warehouse.open.cache_clear()


@pytest.fixture
def home(stored_run, monkeypatch) -> tuple[Path, str]:
    point_settings_at(monkeypatch, stored_run[0])
    return stored_run[:2]


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_materializations_carry_numeric_metrics_and_the_chart(stored_run):
    home, run_id, instance = stored_run
    stored = json.loads((home / "reports" / run_id / "metrics.json").read_text())
    metrics = instance.get_latest_materialization_event(AssetKey("backtest_metrics")).asset_materialization.metadata
    assert isinstance(metrics["sharpe_ratio"], FloatMetadataValue) and metrics["sharpe_ratio"].value == round(
        stored["sharpe_ratio"], 4
    )
    assert metrics["max_drawdown %"].value == round(stored["max_drawdown"] * 100, 2)
    assert isinstance(metrics["beta"], FloatMetadataValue)
    assert (
        isinstance(metrics["trade_count"], IntMetadataValue) and metrics["trade_count"].value == stored["trade_count"]
    )
    report = instance.get_latest_materialization_event(AssetKey("backtest_report")).asset_materialization.metadata
    # the first entry is small enough for Dagster to render inline (no "Show Markdown" click)
    assert list(report)[0] == "equity" and len(report["equity"].value) < 1000
    assert report["equity"].value.startswith("![equity](data:image/png;base64,iVBORw0KGgo")
    assert report["equity_and_drawdown"].value.startswith("![equity and drawdown](data:image/png;base64,iVBORw0KGgo")
    assert Path(report["tearsheet"].value).read_text().startswith("<!DOCTYPE html>")


def test_export_all_writes_exactly_the_reports_of_a_run(home, tmp_path):
    _, run_id = home
    result = ntrader("report", "export-all", run_id, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(REPORT_FILES.values())
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert document["run_id"] == run_id and document["strategy"] == "sma_crossover" and document["symbol"] == "ORCL"
    assert document["trade_count"] > 0 and isinstance(document["trade_count"], int)
    # the export from the warehouse equals what the Dagster run wrote beside it
    written = home[0] / "reports" / run_id
    for name in ("metrics.json", "trades.csv", "equity.csv", "returns.csv", "report.txt"):
        assert (tmp_path / "out" / name).read_text() == (written / name).read_text(), name
    # the bars are still in the catalog: the rebuilt tearsheet draws the price and the benchmark too
    page = (tmp_path / "out" / "tearsheet.html").read_text()
    assert 'id="price-trades"' in page and "buy and hold ORCL" in page
    assert "warning" not in result.output  # the benchmark's bars are those the run was measured against


def test_summary_and_generate_in_every_format(home, tmp_path):
    _, run_id = home
    summary = ntrader("report", "summary", run_id)
    assert summary.exit_code == 0 and f"Backtest {run_id}" in summary.output and "sharpe_ratio" in summary.output
    as_json = ntrader("report", "generate", "--backtest-id", run_id, "--format", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["run_id"] == run_id
    as_csv = ntrader("report", "generate", "--backtest-id", run_id, "--format", "csv")
    assert as_csv.output.startswith("position_id,side,entry_time,exit_time,entry_price")
    target = tmp_path / "sheet.html"
    as_html = ntrader("report", "generate", "--backtest-id", run_id, "--format", "html", "-o", str(target))
    assert as_html.exit_code == 0 and target.read_text().startswith("<!DOCTYPE html>")
    page = target.read_text()  # charts are inline SVG now, still no scripts
    assert 'id="underwater"' in page and "<svg" in page and "<script" not in page


def test_list_results_and_compare(home):
    _, run_id = home
    listed = ntrader("backtest", "list-results", "--symbol", "ORCL", "--sort", "return", "--format", "json")
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert [r["run_id"] for r in rows] == [run_id] and rows[0]["sharpe_ratio"] is not None
    assert type(rows[0]["trade_count"]) is int  # a count, though the warehouse stores it as a float
    assert json.loads(ntrader("backtest", "list-results", "--strategy", "nope", "--format", "json").output) == []
    table = ntrader("backtest", "list-results")
    assert table.exit_code == 0 and run_id in table.output
    assert f" {rows[0]['trade_count']} " in table.output.splitlines()[-2]  # "12", not "12.0000"
    compared = ntrader("backtest", "compare", run_id, run_id)
    assert compared.exit_code == 0 and "sharpe_ratio" in compared.output and compared.output.count(run_id) == 2


def test_unknown_ids_and_failed_writes_exit_non_zero_with_one_line(home, tmp_path):
    _, run_id = home
    for args in (
        ("report", "summary", "nope"),
        ("report", "export-all", "nope", "--output-dir", str(tmp_path)),
        ("backtest", "compare", run_id, "nope"),
        ("backtest", "reproduce", "nope"),
    ):
        result = ntrader(*args)
        assert result.exit_code == 1, args
        assert result.output.strip() == "error: no backtest run with id 'nope' (see `ntrader backtest list-results`)"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    failed = ntrader("report", "export-all", run_id, "--output-dir", str(blocker / "reports"))
    assert failed.exit_code == 1 and failed.output.startswith(f"error: cannot write {blocker}/reports/")
    assert "Traceback" not in failed.output
    assert ntrader("backtest", "compare", run_id).exit_code == 2  # usage: two ids at least


def test_reproduce_shows_identical_metrics(home):
    _, run_id = home
    result = ntrader("backtest", "reproduce", run_id)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"run {run_id} reproduced:") and "metrics identical" in result.output


def test_reproduce_names_what_changed(stored_run, tmp_path, monkeypatch):
    copy = tmp_path / "home"
    shutil.copytree(stored_run[0], copy)  # a private copy: this test changes the stored run
    point_settings_at(monkeypatch, copy)
    run_id = stored_run[1]
    warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
    with warehouse.transaction() as connection:
        row = connection.execute(backtest_runs.select().where(backtest_runs.c.run_id == run_id)).one()
        connection.execute(
            update(backtest_runs)
            .where(backtest_runs.c.run_id == run_id)
            .values(data_hash="0" * 64, versions={**row.versions, "nautilus_trader": "1.0.0"})
        )
        connection.execute(
            update(backtest_metrics)
            .where((backtest_metrics.c.run_id == run_id) & (backtest_metrics.c.name == "sharpe_ratio"))
            .values(value=9.5)
        )
    result = ntrader("backtest", "reproduce", run_id)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"run {run_id} did NOT reproduce:"
    assert any(line.startswith(f"  data hash differs: stored {'0' * 64}, catalog now ") for line in lines)
    assert "  version of nautilus_trader differs: stored 1.0.0, now 1.231.0" in lines
    assert any(line.startswith("  metric sharpe_ratio differs: stored 9.5, now ") for line in lines)
    assert len(lines) == 4  # nothing else changed

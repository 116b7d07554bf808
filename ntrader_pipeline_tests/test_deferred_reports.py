"""A backfill batch writes each partition's report folder when it is first asked for, not in the run:
the UI still gets the chart and the text report at once, and the folder then holds what a run of
one partition writes at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from dagster import AssetKey

from ntrader_pipeline.core.reports import REPORT_FILES
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY


def test_a_batch_defers_report_folders_until_one_is_asked_for(ntrader_home):
    from ntrader_pipeline import api
    from ntrader_pipeline.pipeline import Pipeline

    pipeline = Pipeline.open(ntrader_home)
    for symbol, path in (("ORCL", ORCL_DAILY), ("NVDA", NVDA_DAILY)):
        pipeline.import_csv(path, symbol)
    end = date(1999, 12, 31)
    alone = pipeline.run_backtest("sma_crossover", "ORCL", end=end)["run_id"]
    batch = pipeline.run_backtests("sma_crossover", ["ORCL", "NVDA"], end=end)
    orcl, nvda = batch["ORCL"].metrics["run_id"], batch["NVDA"].metrics["run_id"]
    reports = Path(ntrader_home.reports_location)
    assert sorted(p.name for p in (reports / alone).iterdir()) == sorted(REPORT_FILES.values())
    assert not (reports / orcl).exists() and not (reports / nvda).exists()

    events = pipeline.instance.fetch_materializations(AssetKey("backtest_report"), limit=10).records
    [shown] = [  # what the UI shows of the batch's ORCL partition, at once
        e.asset_materialization.metadata for e in events if e.asset_materialization.metadata["run_id"].value == orcl
    ]
    assert {"equity", "equity_and_drawdown", "report", "tearsheet", "report_dir"} <= set(shown)
    assert shown["tearsheet"].value == str(reports / orcl / REPORT_FILES["html"])

    assert pipeline.tearsheet_url(orcl) == str(reports / orcl / REPORT_FILES["html"])
    for kind, name in REPORT_FILES.items():  # the same as a run's own folder, but for its ids
        late = (reports / orcl / name).read_text()
        at_once = (reports / alone / name).read_text()
        if kind in ("text", "json", "html"):
            at_once = at_once.replace(alone, orcl)
        assert late.replace(batch_dagster_run(pipeline, orcl), "<run>") == at_once.replace(
            batch_dagster_run(pipeline, alone), "<run>"
        ), kind
    assert shown["report"].value == f"```\n{(reports / orcl / REPORT_FILES['text']).read_text()}\n```"
    assert not pipeline.write_reports(orcl)  # written once

    home = api.open(ntrader_home.home_dir)
    assert home.run(nvda).report_dir == str(reports / nvda)
    assert (reports / nvda / REPORT_FILES["html"]).exists()


def batch_dagster_run(pipeline, run_id: str) -> str:
    return pipeline.stores.warehouse().get_run(run_id).dagster_run_id


def test_prune_writes_a_deferred_folder_before_it_deletes_the_curve(ntrader_home):
    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.pipeline import Pipeline
    from ntrader_pipeline.retention import apply_prune, parse_age, plan_prune

    pipeline = Pipeline.open(ntrader_home)
    for symbol, path in (("ORCL", ORCL_DAILY), ("NVDA", NVDA_DAILY)):
        pipeline.import_csv(path, symbol)
    end = date(1999, 12, 31)
    superseded = pipeline.run_backtests("sma_crossover", ["ORCL", "NVDA"], end=end)["ORCL"].metrics["run_id"]
    pipeline.run_backtests("sma_crossover", ["ORCL", "NVDA"], end=end)
    reports = Path(ntrader_home.reports_location)
    assert not (reports / superseded).exists()
    warehouse = Warehouse.open(ntrader_home.resolved_warehouse_url)
    check_keys = pipeline.defs.get_repository_def().asset_graph.asset_check_keys
    plan = plan_prune(pipeline.instance, warehouse, check_keys, parse_age("0d"))
    assert superseded in plan.curves

    apply_prune(pipeline.instance, warehouse, plan, pipeline.write_reports)

    assert len(warehouse.get_equity_curve(superseded)) == 0
    assert sorted(p.name for p in (reports / superseded).iterdir()) == sorted(REPORT_FILES.values())

"""Sweeps and walk-forward as a user runs them: the commands, the Dagster partitions and assets
they leave behind, the warehouse runs, one set re-run alone as its own partition, every stored
run reproduced (sweep sets alone, the walk-forward as a walk-forward), and a degenerate sweep whose
PBO is undefined, with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance
from sqlalchemy import update

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.tables import backtest_runs
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS
from ntrader_pipeline.pipeline import Pipeline, strategy_file_config
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY, point_settings_at

SWEEP_FILE = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
backtest: {start: 2004-01-01, end: 2008-12-31}
sweep:
  grid: {fast_period: [5, 10], slow_period: [20, 40]}
  constraints: ["fast_period < slow_period"]
walk_forward: {in_sample: 400, out_of_sample: 250}
"""
KEYS = [f"sma_grid[fast_period={f},slow_period={s}]" for f in (5, 10) for s in (20, 40)]


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def research_home(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    home = tmp_path_factory.mktemp("research_home")
    spec = home / "sma_grid.yaml"
    spec.write_text(SWEEP_FILE)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, home / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(home / "state" / "dagster"))
        done = ntrader("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
        assert done.exit_code == 0, done.output
        yield home, spec
    Warehouse.open.cache_clear()


@pytest.fixture
def home(research_home, monkeypatch) -> tuple[Path, Path]:
    point_settings_at(monkeypatch, research_home[0] / "state")
    monkeypatch.setenv("DAGSTER_HOME", str(research_home[0] / "state" / "dagster"))
    return research_home


@pytest.fixture(scope="module")
def swept(research_home):
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, research_home[0] / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(research_home[0] / "state" / "dagster"))
        done = ntrader("backtest", "sweep", str(research_home[1]), "--symbol", "ORCL", "--format", "json")
    assert done.exit_code == 0, done.output
    return done


def test_sweep_prints_every_set_ranked_with_params_run_id_and_key_metrics(home, swept):
    document = json.loads(swept.stdout)
    rows = document["results"]
    assert sorted(r["key"] for r in rows) == sorted(KEYS)
    for row in rows:
        assert set(row["params"]) == {"fast_period", "slow_period"} and row["symbol"] == "ORCL"
        assert set(HEADLINE_METRICS) <= set(row) and len(row["run_id"]) == 12
        assert not {"dsr", "pbo", "deflated_sharpe"} & set(row)  # sweep-level figures are said once, above
    assert document["symbol"] == "ORCL" and document["metric"] == "sharpe_ratio"
    assert 0 <= document["pbo"] <= 1 and 0 <= document["deflated_sharpe"] <= 1 and document["undefined"] == {}
    assert document["trials"] == document["trials_used"] == 4 and document["pbo_splits"] > 0
    folder = get_settings().resolved_reports_dir / "research" / "sma_grid__ORCL"
    on_disk = json.loads((folder / "sweep.json").read_text())
    assert on_disk == {**document, "results": on_disk["results"]} and len(on_disk["results"]) == 4
    sharpes = [r["sharpe_ratio"] for r in rows]
    assert sharpes == sorted(sharpes, reverse=True) and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert "sweep sma_grid on ORCL: 4/4" in swept.stderr  # plain progress lines off a terminal

    warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
    for row in rows:
        stored = warehouse.get_run(row["run_id"])
        assert stored.strategy == row["key"] and stored.config["config"]["fast_period"] == row["params"]["fast_period"]
        assert warehouse.get_metrics(row["run_id"])["sharpe_ratio"] == pytest.approx(row["sharpe_ratio"], rel=1e-9)


def test_each_set_is_its_own_partition_and_the_results_asset_holds_the_table(home, swept):
    instance = DagsterInstance.get()
    assert set(KEYS) <= set(instance.get_dynamic_partitions("parameter_set"))
    records = instance.fetch_materializations(AssetKey("sweep_backtest"), limit=100).records
    assert {r.partition_key for r in records} == {f"{k}|ORCL" for k in KEYS}
    results = instance.get_latest_materialization_event(AssetKey("sweep_results")).asset_materialization
    assert results.partition == "_file|ORCL"
    meta = results.metadata
    assert meta["sets"].value == 4 and len(meta["sweep"].records) == 4
    assert list(meta)[0] == "sharpe_ratio by parameters"  # a Markdown table Dagster shows inline
    assert meta["sharpe_ratio by parameters"].value.startswith("| fast_period \\ slow_period | 20 | 40 |")
    assert meta["heatmap"].value.startswith("![sharpe_ratio by parameters](data:image/png;base64,")
    assert 0 <= meta["pbo"].value <= 1
    page = Path(meta["report"].value).read_text()
    assert 'id="sweep-heatmap"' in page and "Deflated Sharpe" in page
    assert "P[skill]" not in page  # the DSR is not the probability of skill: the page says what it is
    assert "deflated Sharpe: chance the best Sharpe beats the best of 4 trials by luck" in page


def test_one_set_rerun_alone_as_its_partition_gives_the_same_numbers(home, swept):
    best = json.loads(swept.stdout)["results"][0]
    pipeline = Pipeline.open(get_settings(), DagsterInstance.get())
    result = pipeline._execute(
        "sweep_set_job",
        f"{best['key']}|ORCL",
        {"ops": {"sweep_backtest": {"config": {"spec_file": strategy_file_config(home[1])}}}},
    )
    metrics = result.output_for_node("sweep_backtest")
    assert metrics["run_id"] != best["run_id"]
    for name in HEADLINE_METRICS:
        assert metrics[name] == pytest.approx(best[name], rel=1e-9, abs=1e-12), name


@pytest.fixture(scope="module")
def walked(research_home):
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, research_home[0] / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(research_home[0] / "state" / "dagster"))
        done = ntrader("backtest", "walk-forward", str(research_home[1]), "--symbol", "ORCL", "--format", "json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_walk_forward_prints_windows_and_a_stitched_stored_run(home, walked):
    document = walked
    assert document["metric"] == "sharpe_ratio" and len(document["windows"]) >= 2
    for window in document["windows"]:
        assert window["in_sample"][1] < window["out_of_sample"][0]
        assert window["key"] in KEYS and window["params"] == {
            "fast_period": int(window["key"].split("fast_period=")[1].split(",")[0]),
            "slow_period": int(window["key"].split("slow_period=")[1].rstrip("]")),
        }
        assert "sharpe_ratio" in window["in_sample_metrics"] and "total_return" in window["out_of_sample_metrics"]
    summary = ntrader("report", "summary", document["run_id"])
    assert summary.exit_code == 0 and "sma_grid[walk-forward] on ORCL" in summary.output
    table = ntrader("backtest", "walk-forward", str(home[1]), "--symbol", "ORCL")
    assert table.exit_code == 0 and "stitched out of sample" in table.stdout


def test_each_stored_window_enters_where_its_chosen_set_enters_when_run_over_all_the_bars(home, walked):
    """The walk-forward as the CLI stores it, window by window: the entries of the stitched run's
    trades in a window are the entries the chosen set makes, run alone over all the bars, in the
    window's dates (windows start warm; a cold start missed crosses early in a window)."""
    import pandas as pd

    from ntrader_pipeline.core.backtest import run_backtest
    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.strategy_specs import parse_spec

    orcl = read_bar_csv(ORCL_DAILY, "ORCL")
    trades = pd.DataFrame(Warehouse.open(get_settings().resolved_warehouse_url).get_trades(walked["run_id"]))
    local = lambda stamps: pd.to_datetime(stamps, utc=True).dt.tz_convert("America/New_York").dt.date  # noqa: E731
    compared = 0
    for i, window in enumerate(walked["windows"], start=1):
        plain = {"strategy": "sma_crossover", "config": window["params"]}
        plain["backtest"] = {"start": "2004-01-01", "end": "2008-12-31"}
        fills = run_backtest(orcl, parse_spec("alone", plain, "alone.yaml"), "XNAS", "alone").fills
        buys = pd.to_datetime(fills[fills["side"] > 0]["ts_event"], utc=True)
        first, last = (pd.Timestamp(day).date() for day in window["out_of_sample"])
        expected = sorted(t for t, day in zip(buys, local(buys), strict=True) if first <= day <= last)
        mine = trades[trades["position_id"].str.startswith(f"W{i}-") & ~trades["position_id"].str.endswith("-end")]
        assert sorted(pd.to_datetime(mine["entry_time"], utc=True)) == expected, (i, window["params"])
        compared += len(expected)
    assert compared >= 3


def test_a_walk_forward_run_reproduces_as_a_walk_forward_with_the_same_windows_and_picks(home, walked):
    run_id = walked["run_id"]
    stored = Warehouse.open(get_settings().resolved_warehouse_url).get_run(run_id)
    research = stored.config["research"]
    assert research["kind"] == "walk_forward" and research["bars"] == ["2004-01-02", "2008-12-31"]
    assert [w["key"] for w in research["windows"]] == [w["key"] for w in walked["windows"]]
    again = ntrader("backtest", "reproduce", run_id)
    assert again.exit_code == 0, again.output
    windows = len(walked["windows"])
    assert f"run {run_id} reproduced (walk-forward: the same {windows} windows and picks)" in again.output


def test_a_walk_forward_whose_stored_pick_differs_does_not_reproduce_and_names_the_window(home, walked):
    run_id = walked["run_id"]
    warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
    config = warehouse.get_run(run_id).config
    original = json.loads(json.dumps(config))
    first = config["research"]["windows"][0]
    first["key"] = next(k for k in KEYS if k != first["key"])
    with warehouse.engine.begin() as connection:
        connection.execute(update(backtest_runs).where(backtest_runs.c.run_id == run_id).values(config=config))
    try:
        again = ntrader("backtest", "reproduce", run_id)
    finally:
        with warehouse.engine.begin() as connection:
            connection.execute(update(backtest_runs).where(backtest_runs.c.run_id == run_id).values(config=original))
    assert again.exit_code == 1
    assert f"window 1 ({' → '.join(first['out_of_sample'])}) picked {walked['windows'][0]['key']}" in again.output
    assert f"stored {first['key']}" in again.output


def test_every_set_of_a_sweep_reproduces_alone(home, swept):
    for row in json.loads(swept.stdout)["results"]:
        again = ntrader("backtest", "reproduce", row["run_id"])
        assert again.exit_code == 0, again.output
        assert f"run {row['run_id']} reproduced: data sha256" in again.output


def test_a_next_open_run_stores_its_fill_mode_and_reproduces(home):
    spec = home[0] / "sma_next_open.yaml"
    spec.write_text(
        "strategy: sma_crossover\nconfig: {fast_period: 10, slow_period: 30}\n"
        "backtest: {start: 2004-01-01, end: 2008-12-31, fill: next_open}\n"
    )
    done = ntrader("backtest", "run-config", str(spec), "--symbol", "ORCL")
    assert done.exit_code == 0, done.output
    run_id = done.stdout.strip().splitlines()[-1]
    stored = Warehouse.open(get_settings().resolved_warehouse_url).get_run(run_id)
    assert stored.config["backtest"]["fill"] == "next_open"
    assert stored.versions["fills"] == "market orders decided on a bar fill at the next bar's open"
    again = ntrader("backtest", "reproduce", run_id)
    assert again.exit_code == 0 and "reproduced" in again.output, again.output


def test_a_sweep_of_sets_with_the_same_returns_reports_pbo_undefined_with_the_reason(home):
    spec = home[0] / "same_sets.yaml"
    spec.write_text(
        "strategy: sma_crossover\nconfig: {fast_period: 10, slow_period: 30}\n"
        "backtest: {start: 2004-01-01, end: 2008-12-31}\n"
        "sweep: {grid: {fixed_quantity: [100, 200, 300]}}\n"  # unused: the sets buy a share of equity
    )
    done = ntrader("backtest", "sweep", str(spec), "--symbol", "ORCL")
    assert done.exit_code == 0, done.output
    reason = "all 3 sets have the same daily returns: there is no best set to pick"
    assert f"probability of backtest overfitting: n/a ({reason})" in " ".join(done.stdout.split())
    report = get_settings().home_dir / "reports" / "research" / "same_sets__ORCL" / "sweep.json"
    summary = json.loads(report.read_text())
    assert len(summary["results"]) == 3 and all("pbo" not in row for row in summary["results"])
    assert summary["pbo"] is None and summary["trials"] == summary["trials_used"] == 3
    assert summary["undefined"] == {"pbo": reason}
    meta = DagsterInstance.get().get_latest_materialization_event(AssetKey("sweep_results")).asset_materialization
    assert meta.metadata["pbo"].value is None and meta.metadata["undefined"].value == {"pbo": reason}
    page = (report.parent / "sweep.html").read_text()
    assert f"PBO is n/a: {reason}." in page


def test_a_sweep_on_several_symbols_prints_one_object_per_symbol_in_order(home):
    done = ntrader("data", "import-csv", "--file", str(NVDA_DAILY), "--symbol", "NVDA")
    assert done.exit_code == 0, done.output
    spec = home[0] / "two_symbols.yaml"
    spec.write_text(
        "strategy: sma_crossover\nconfig: {fast_period: 10, slow_period: 30}\n"
        "backtest: {start: 2004-01-01, end: 2005-12-31}\nsweep: {grid: {fast_period: [5, 10], slow_period: [20]}}\n"
    )
    done = ntrader("backtest", "sweep", str(spec), "--symbol", "NVDA", "--symbol", "ORCL", "--format", "json")
    assert done.exit_code == 0, done.output
    sweeps = json.loads(done.stdout)
    assert [s["symbol"] for s in sweeps] == ["NVDA", "ORCL"]
    for sweep in sweeps:  # each symbol's own figures, said once
        assert sweep["trials"] == 2 and len(sweep["results"]) == 2
        assert {r["symbol"] for r in sweep["results"]} == {sweep["symbol"]}
        assert set(sweep["undefined"]) == {n for n in ("deflated_sharpe", "pbo") if sweep[n] is None}

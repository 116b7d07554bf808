"""Research on every core: the worker pool on its own (order, exceptions, a worker killed mid-job),
then a sweep and a walk-forward run by the CLI on one process and on two, compared figure by
figure in the warehouse; the two-process runs are a fresh ``ntrader`` process, as a user starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.parallel import JobFailed, WorkerPool
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.pool_jobs import die_in_a_worker_on_seven, fail_on_one_and_five, square_plus
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS, point_settings_at

SPEC = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30}
backtest: {start: 2002-01-01, end: 2008-12-31, fill: next_open}
sweep:
  grid: {fast_period: [5, 10, 20], slow_period: [30, 60]}
  constraints: ["fast_period < slow_period"]
walk_forward: {in_sample: 504, out_of_sample: 252}
"""


# --- the pool ---------------------------------------------------------------------------------


def test_a_pool_maps_jobs_in_order_on_its_workers_with_the_shared_data_sent_once():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(square_plus, range(12), 100))
        again = list(pool.map(square_plus, range(3), 1))  # the same workers, new shared data
    assert [o.result()[0] for o in outcomes] == [j * j + 100 for j in range(12)]
    workers = {o.result()[1] for o in outcomes}
    assert 1 <= len(workers) <= 2 and os.getpid() not in workers  # the second may arrive after the work
    assert [o.result()[0] for o in again] == [1, 2, 5] and {o.result()[1] for o in again} <= workers


def test_the_caller_works_beside_its_workers_and_the_results_keep_their_order():
    with WorkerPool(3) as pool:  # this process and two workers, however many of them arrive in time
        outcomes = list(pool.map(square_plus, range(40), 7))
    assert [o.result()[0] for o in outcomes] == [j * j + 7 for j in range(40)]
    with WorkerPool(1) as alone:  # one process: the caller's own
        assert {o.result()[1] for o in alone.map(square_plus, range(3), 0)} == {os.getpid()}


def test_an_exception_in_a_job_comes_back_as_it_was_raised_and_the_others_finish():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(fail_on_one_and_five, range(6)))
    assert [o.value for o in outcomes if o.error is None] == [0, 2, 3, 4]
    for index in (1, 5):
        with pytest.raises(ValueError, match=f"job {index} refuses"):
            outcomes[index].result()
        assert any("in a worker process" in note for note in outcomes[index].error.__notes__)


def test_a_worker_killed_mid_job_fails_that_job_alone():
    with WorkerPool(2, caller_works=False) as pool:
        outcomes = list(pool.map(die_in_a_worker_on_seven, range(10), os.getpid()))
        after = [o.result() for o in pool.map(square_plus, [10, 11], 0)]  # replaced: the pool still works
    assert [o.value for o in outcomes if o.error is None] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    with pytest.raises(JobFailed, match=r"job 8 died \(exit code -9\)"):
        outcomes[7].result()
    assert [value for value, _ in after] == [100, 121]


# --- sweeps and walk-forwards through the CLI ----------------------------------------------


def ntrader(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("parallel_home")
    spec = root / "sma_grid.yaml"
    spec.write_text(SPEC)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, root / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(root / "state" / "dagster"))
        done = ntrader("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
        assert done.exit_code == 0, done.output
        yield root, spec
    Warehouse.open.cache_clear()


def fresh_ntrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``ntrader`` in a new process, on the test's home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env |= {
        "NTRADER_HOME": str(root / "state"),
        "DAGSTER_HOME": str(root / "state" / "dagster"),
        "NTRADER_STRATEGY_CONFIGS_DIR": str(STRATEGY_CONFIGS),
    }
    return subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=900
    )


def stored(warehouse: Warehouse, run_id: str) -> tuple[dict, list, pd.DataFrame]:
    """Everything the warehouse holds about a run but its id and when it was made."""
    metrics = {k: v for k, v in warehouse.get_metrics(run_id).items() if k != "run_id"}
    trades = [{k: v for k, v in t.items() if k != "run_id"} for t in warehouse.get_trades(run_id)]
    return metrics, trades, warehouse.get_equity_curve(run_id)


def same_run(warehouse: Warehouse, one: str, other: str) -> None:
    (m1, t1, e1), (m2, t2, e2) = stored(warehouse, one), stored(warehouse, other)
    assert m1 == m2 and t1 == t2
    pd.testing.assert_frame_equal(e1, e2, check_exact=True)
    r1, r2 = warehouse.get_run(one), warehouse.get_run(other)
    for name in ("strategy", "symbol", "bar_type", "start", "end", "bar_count", "data_hash", "config", "versions"):
        assert getattr(r1, name) == getattr(r2, name), name


def test_a_sweep_on_two_processes_stores_exactly_what_one_process_stores(home):
    root, spec = home
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, root / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(root / "state" / "dagster"))
        one = ntrader("backtest", "sweep", str(spec), "--symbol", "ORCL", "--format", "json", "--jobs", "1")
        assert one.exit_code == 0, one.output
        two = fresh_ntrader(root, "backtest", "sweep", str(spec), "--symbol", "ORCL", "--format", "json", "--jobs", "2")
        assert two.returncode == 0, two.stderr
        sweep_one, sweep_two = json.loads(one.stdout), json.loads(two.stdout)
        rows_one, rows_two = sweep_one.pop("results"), sweep_two.pop("results")
        assert sweep_one == sweep_two and sweep_one["trials"] == 6  # the same DSR and PBO, to the last digit
        assert len(rows_one) == 6 and [r["key"] for r in rows_one] == [r["key"] for r in rows_two]
        warehouse = Warehouse.open(get_settings().resolved_warehouse_url)
        for a, b in zip(rows_one, rows_two, strict=True):
            assert a["run_id"] != b["run_id"]
            assert {k: v for k, v in a.items() if k != "run_id"} == {k: v for k, v in b.items() if k != "run_id"}
            same_run(warehouse, a["run_id"], b["run_id"])


def test_a_walk_forward_on_two_processes_stores_exactly_what_one_process_stores(home):
    root, spec = home
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, root / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(root / "state" / "dagster"))
        one = ntrader("backtest", "walk-forward", str(spec), "--symbol", "ORCL", "--format", "json", "--jobs", "1")
        assert one.exit_code == 0, one.output
        two = fresh_ntrader(
            root, "backtest", "walk-forward", str(spec), "--symbol", "ORCL", "--format", "json", "--jobs", "2"
        )
        assert two.returncode == 0, two.stderr
        doc_one, doc_two = json.loads(one.stdout), json.loads(two.stdout)
        assert len(doc_one["windows"]) >= 4
        assert doc_one["windows"] == doc_two["windows"]
        assert {k: v for k, v in doc_one["stitched"].items() if k != "run_id"} == {
            k: v for k, v in doc_two["stitched"].items() if k != "run_id"
        }
        same_run(Warehouse.open(get_settings().resolved_warehouse_url), doc_one["run_id"], doc_two["run_id"])

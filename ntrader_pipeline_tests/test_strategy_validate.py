"""``ntrader strategy validate`` finds every problem of every file in one pass, each at its line and
column, and what would fail at run time (a NaN, a balance NautilusTrader cannot hold, a key
written twice, research blocks that would crash after running every set) is refused there and
before any run: by the CLI's research commands and by the Dagster research assets themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, serialize_value

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.definitions import SWEEP_JOB, WALK_FORWARD_JOB
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS, point_settings_at

CORPUS = Path(__file__).parent / "corpus" / "yaml"
GRID = "sweep:\n  grid: {fast_period: [5, 10], slow_period: [20, 40]}\n"


def validate(*files: Path):
    return CliRunner().invoke(cli, ["strategy", "validate", *map(str, files)])


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_one_pass_lists_every_problem_of_every_file_at_its_line_and_column(ntrader_home, tmp_path):
    many = CORPUS / "41_many_mistakes.yaml"
    twice = CORPUS / "35_duplicate_keys.yaml"
    broken = written(tmp_path, "broken.yaml", "strategy: momentum\nconfig: {rsi_period: 14\nbacktest: {}\n")
    good = STRATEGY_CONFIGS / "momentum.yaml"
    done = validate(many, broken, good, twice)
    assert done.exit_code == 1
    assert done.stdout == f"ok: {good} (momentum)\n"
    assert done.stderr.splitlines() == [
        f"{many}:4:13: config.lookback: Expected `int`, got `str`",
        f"{many}:5:6: config.k: not a finite number (.nan and .inf are refused: no price, period or amount is one)",
        f"{many}:6:11: config.sizing: sizing must be one of percent_equity, fixed, not 'percent'",
        f"{many}:7:19: config.equity_percent: equity_percent must be above 0 and at most 100",
        f"{many}:8:21: config.max_drawdown_pct: risk limits go under backtest.risk, not config",
        f"{many}:9:3: config.bogus: unknown parameter (see `ntrader strategy list`)",
        f"{many}:11:14: backtest.timeframe: Input should be '1MIN', '5MIN', '1HOUR' or 'DAILY'",
        f"{many}:12:10: backtest.start: not a valid date (month must be in 1..12)",
        f"{many}:13:21: backtest.starting_balance: at most 1,000,000,000,000 USD: a NautilusTrader account holds "
        "at most 17,014,118,346,046, and the equity needs room to grow",
        f"{many}:14:17: backtest.fees.model: Input should be 'per_share' or 'zero'",
        f"{many}:14:34: backtest.fees.per_share: Input should be greater than or equal to 0",
        f"{many}:15:10: backtest.risk.max_lots: unknown key; backtest.risk takes max_position_shares, "
        "max_notional_per_order, max_drawdown_pct",
        f"{many}:16:12: benchmark: String should match pattern '^[A-Z0-9][A-Z0-9.\\-]*$'",
        f"{many}:19:11: sweep.metric: 'sharpe' is not a metric that ranks sets; use one of total_return, cagr, "
        "sharpe_ratio, sortino_ratio, calmar_ratio, max_drawdown, win_rate, profit_factor, alpha, information_ratio",
        f"{many}:20:57: walk_forward.step: 21 is shorter than out_of_sample (63): out-of-sample windows would "
        "overlap and the stitched run would trade their common sessions twice; use step = out_of_sample "
        "(or leave it out)",
        f"{broken}:3:9: not valid YAML (while parsing a flow mapping expected ',' or '}}', but got ':')",
        f"{twice}:5:3: config.fast_period: duplicate key (first written at line 3)",
        f"{twice}:6:1: strategy: duplicate key (first written at line 1)",
        "18 problems in 3 of 4 files",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "strategy: mean_reversion\nconfig: {lookback: 20, k: .nan}\n",
            "2:27: config.k: not a finite number (.nan and .inf are refused: no price, period or amount is one)",
        ),
        (
            "strategy: mean_reversion\nconfig:\n  k: .inf\n",
            "3:6: config.k: not a finite number (.nan and .inf are refused: no price, period or amount is one)",
        ),
        (
            "strategy: momentum\nbacktest:\n  starting_balance: 1e300\n",
            "3:21: backtest.starting_balance: at most 1,000,000,000,000 USD: a NautilusTrader account holds at "
            "most 17,014,118,346,046, and the equity needs room to grow",
        ),
        (
            "strategy: momentum\nconfig:\n  rsi_period: 14\n  rsi_period: 21\n",
            "4:3: config.rsi_period: duplicate key (first written at line 3)",
        ),
        (
            "strategy: momentum\nbacktest:\n  start: 2014-13-01\n",
            "3:10: backtest.start: not a valid date (month must be in 1..12)",
        ),
    ],
    ids=["nan", "inf", "1e300", "duplicate key", "month 13"],
)
def test_values_that_would_fail_at_run_time_are_refused_with_line_and_column(ntrader_home, tmp_path, text, problem):
    path = written(tmp_path, "mine.yaml", text)
    done = validate(path)
    assert done.exit_code == 1, done.output
    assert done.stderr.splitlines() == [f"{path}:{problem}", "1 problem in 1 of 1 file"]
    refused = CliRunner().invoke(cli, ["backtest", "run-config", str(path), "--symbol", "ORCL"])
    assert refused.exit_code == 1 and refused.stderr == f"error: {path}:{problem}\n"
    assert not ntrader_home.resolved_dagster_home.exists()  # refused before any run


RESEARCH_PROBLEMS = [
    (
        f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 252, out_of_sample: 126, step: 63}}\n",
        "4:58: walk_forward.step: 63 is shorter than out_of_sample (126): out-of-sample windows would overlap and "
        "the stitched run would trade their common sessions twice; use step = out_of_sample (or leave it out)",
    ),
    (
        f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 252, out_of_sample: 63, step: 126}}\n",
        "4:57: walk_forward.step: 126 is longer than out_of_sample (63): 63 sessions after each window would never "
        "be traded while the stitched run's benchmark spans them; use step = out_of_sample (or leave it out)",
    ),
    (
        f"strategy: sma_crossover\n{GRID}  metric: sharpe\n",
        "4:11: sweep.metric: 'sharpe' is not a metric that ranks sets; use one of total_return, cagr, sharpe_ratio, "
        "sortino_ratio, calmar_ratio, max_drawdown, win_rate, profit_factor, alpha, information_ratio",
    ),
    (
        f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 252, out_of_sample: 63, metric: volatility}}\n",
        "4:59: walk_forward.metric: 'volatility' is not a metric that ranks sets; use one of total_return, cagr, "
        "sharpe_ratio, sortino_ratio, calmar_ratio, max_drawdown, win_rate, profit_factor, alpha, information_ratio",
    ),
    (
        f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 20, out_of_sample: 63}}\n"
        "backtest: {start: 2004-01-02, end: 2004-03-29}\n",
        "4:27: walk_forward.in_sample: 2004-01-02..2004-03-29 has 60 sessions, fewer than the 61 the walk-forward "
        "needs: 40 to warm the sets up, 20 in sample and 1 out of sample (the longest warm-up: "
        "research[fast_period=5,slow_period=40], 40 bars)",
    ),
]
RESEARCH_IDS = ["overlapping windows", "skipped sessions", "sweep metric", "walk-forward metric", "span too short"]


@pytest.mark.parametrize(("text", "problem"), RESEARCH_PROBLEMS, ids=RESEARCH_IDS)
def test_research_blocks_that_would_fail_late_are_refused_by_validate(ntrader_home, tmp_path, text, problem):
    path = written(tmp_path, "research.yaml", text)
    done = validate(path)
    assert done.exit_code == 1, done.output
    assert done.stderr.splitlines() == [f"{path}:{problem}", "1 problem in 1 of 1 file"]


WIDE = f"strategy: sma_crossover\n{GRID}backtest: {{start: 2004-01-02, end: 2004-02-20}}\n"  # 34 sessions


def test_sweep_sets_that_would_warm_up_for_the_whole_span_are_a_warning(ntrader_home, tmp_path):
    """A grid may mean to include slow sets: a sweep runs each set cold over the span, so those
    that need more bars than it has are said to trade nothing, and the file passes."""
    path = written(tmp_path, "wide.yaml", WIDE)
    done = validate(path)
    assert done.exit_code == 0, done.output
    assert done.stdout == f"ok: {path} (sma_crossover)\n"
    assert done.stderr == (
        f"{path}:3:3: warning: sweep: 2 of 4 sets warm up for at least the 34 sessions of 2004-01-02..2004-02-20 "
        "(e.g. wide[fast_period=5,slow_period=40]: 40 bars): they cannot trade in the sweep\n"
    )


def test_walk_forward_windows_longer_than_a_warm_up_are_no_longer_refused_or_warned(ntrader_home, tmp_path):
    """Walk-forward runs start warm (every earlier bar goes through the indicators), so a set whose
    warm-up is longer than the in-sample window still trades there, and is picked: validate says
    nothing against it."""
    text = f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 30, out_of_sample: 30}}\n"
    path = written(tmp_path, "slow.yaml", text)
    done = validate(path)
    assert (done.exit_code, done.stdout, done.stderr) == (0, f"ok: {path} (sma_crossover)\n", "")
    cold = f"strategy: sma_crossover\n{GRID}walk_forward: {{in_sample: 20, out_of_sample: 63}}\n"
    cold = written(tmp_path, "cold.yaml", cold)
    assert validate(cold).exit_code == 0  # in_sample 20 ≤ every set's warm-up: the walk-forward warms them first


def test_validate_and_the_walk_forwards_window_check_agree_on_the_same_spec(ntrader_home, tmp_path):
    """One rule for the warm-up (each strategy's ``warmup_bars()``) and for what a walk-forward
    needs after it: on the span one session short, validate refuses and the walk-forward itself
    (asked with the file's checks skipped) fails with the same figures; a session more, both run."""
    from itertools import count

    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.research import run_walk_forward
    from ntrader_pipeline.core.strategy_specs import load_spec

    bars, numbers = read_bar_csv(ORCL_DAILY, "ORCL"), count()
    text, problem = RESEARCH_PROBLEMS[4]
    short = written(tmp_path, "research.yaml", text)
    assert validate(short).stderr.splitlines()[0] == f"{short}:{problem}"
    figures = problem.split(" has ", 1)[1].split(" (the longest", 1)[0]
    with pytest.raises(ValueError) as refused:
        run_walk_forward(bars, load_spec(short, check_config=False), "XNAS", lambda: f"r{next(numbers)}")
    assert str(refused.value) == f"{short}: walk_forward: the bars have {figures}"

    enough = written(tmp_path, "enough.yaml", text.replace("2004-03-29", "2004-03-30"))
    done = validate(enough)
    assert (done.exit_code, done.stderr) == (0, ""), done.output
    wf = run_walk_forward(bars, load_spec(enough), "XNAS", lambda: f"r{next(numbers)}")
    assert len(wf.windows) == 1 and wf.windows[0].window.out_start == wf.windows[0].window.out_end  # one session
    assert wf.result.spec["research"]["warmup_sessions"] == 40


@pytest.mark.parametrize(
    ("command", "case"), [("walk-forward", 0), ("walk-forward", 1), ("sweep", 2), ("walk-forward", 4)]
)
def test_the_research_commands_refuse_a_bad_block_before_any_run(ntrader_home, tmp_path, command, case):
    text, problem = RESEARCH_PROBLEMS[case]
    path = written(tmp_path, "research.yaml", text)
    done = CliRunner().invoke(cli, ["backtest", command, str(path), "--symbol", "ORCL"])
    assert done.exit_code == 1
    assert done.stderr == f"error: {path}:{problem}\n"
    assert not ntrader_home.resolved_dagster_home.exists()  # no Dagster run was started


# --- the Dagster research assets, as the UI runs them -------------------------------------------


@pytest.fixture(scope="module")
def orcl_pipeline(tmp_path_factory) -> Iterator[Pipeline]:
    """A home with the first 400 ORCL daily bars, imported through the Dagster job."""
    root = tmp_path_factory.mktemp("research_refusals")
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, root / "home")
        monkeypatch.setenv("DAGSTER_HOME", str(root / "home" / "dagster"))
        head = root / "ORCL_head.csv"
        head.write_text("\n".join(ORCL_DAILY.read_text().splitlines()[:401]) + "\n")
        pipeline = Pipeline.open(get_settings())
        pipeline.import_csv(head, "ORCL")
        yield pipeline
    Warehouse.open.cache_clear()


def research_run(pipeline: Pipeline, job: str, asset: str, text: str, **config):
    run_config = {"ops": {asset: {"config": {"spec_file": {"name": "ui_file", "yaml": text}, **config}}}}
    return pipeline.defs.resolve_job_def(job).execute_in_process(
        instance=pipeline.instance, partition_key="_file|ORCL", run_config=run_config, raise_on_error=False
    )


def failure_text(pipeline: Pipeline, result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.error.to_string()


def set_materializations(pipeline: Pipeline) -> int:
    return len(pipeline.instance.fetch_materializations(AssetKey("sweep_backtest"), limit=1000).records)


def test_the_sweep_asset_refuses_a_metric_no_set_has_before_running_any_set(orcl_pipeline, monkeypatch):
    point_settings_at(monkeypatch, orcl_pipeline.settings.home_dir)
    before = set_materializations(orcl_pipeline)
    result = research_run(
        orcl_pipeline, SWEEP_JOB, "sweep_results", f"strategy: sma_crossover\n{GRID}", metric="sharpe"
    )
    assert not result.success
    assert "'sharpe' is not a metric that ranks sets; use one of total_return" in failure_text(orcl_pipeline, result)
    assert set_materializations(orcl_pipeline) == before  # no set ran


@pytest.mark.parametrize("case", [0, 3])
def test_the_walk_forward_asset_refuses_a_bad_file_before_running_any_set(orcl_pipeline, monkeypatch, case):
    point_settings_at(monkeypatch, orcl_pipeline.settings.home_dir)
    text, problem = RESEARCH_PROBLEMS[case]
    runs_before = len(Warehouse.open(orcl_pipeline.settings.resolved_warehouse_url).list_results())
    result = research_run(orcl_pipeline, WALK_FORWARD_JOB, "walk_forward", text)
    assert not result.success
    assert f"ui_file.yaml:{problem}" in failure_text(orcl_pipeline, result)
    assert len(Warehouse.open(orcl_pipeline.settings.resolved_warehouse_url).list_results()) == runs_before


def test_the_sweep_asset_logs_the_files_warnings_in_the_run(orcl_pipeline, monkeypatch):
    point_settings_at(monkeypatch, orcl_pipeline.settings.home_dir)
    result = research_run(orcl_pipeline, SWEEP_JOB, "sweep_results", WIDE.replace("2004-", "1995-"))
    assert result.success
    log = "\n".join(serialize_value(e) for e in orcl_pipeline.instance.all_logs(result.run_id))
    assert "ui_file.yaml:3:3: warning: sweep: 2 of 4 sets warm up for at least the" in log

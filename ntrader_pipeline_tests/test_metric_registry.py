"""The metric registry: every computed metric has its row, and each form reads as documented.

docs/conventions.md's "How each surface shows a metric" is the rule; ``test_metric_surfaces.py`` checks
that real runs read that way on every surface.
"""

from __future__ import annotations

import math
from datetime import date

import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import (
    BY_NAME,
    HEADLINE_METRICS,
    METRIC_NAMES,
    RANKABLE_METRICS,
    Metrics,
    display,
    machine,
    panel_label,
    panel_number,
    table_cell,
)
from ntrader_pipeline.core.metrics import compute_metrics
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS


def test_every_metric_a_run_computes_has_its_row_in_registry_order():
    result = run_backtest(
        read_bar_csv(ORCL_DAILY, "ORCL"),
        load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml"),
        "XNAS",
        "r",
        None,
        date(1998, 12, 31),
    )
    metrics = compute_metrics(result, trade_ledger(result.fills))
    assert list(metrics) == list(METRIC_NAMES)  # every row computed, nothing computed without a row
    assert all(type(metrics[name]) is int for name in METRIC_NAMES if BY_NAME[name].unit == "count")


def test_headline_and_rankable_metrics():
    assert set(RANKABLE_METRICS) <= set(HEADLINE_METRICS)
    assert set(RANKABLE_METRICS) == {
        "total_return",
        "cagr",
        "sharpe_ratio",
        "sortino_ratio",
        "calmar_ratio",
        "max_drawdown",
        "profit_factor",
        "win_rate",
        "alpha",
        "information_ratio",
    }
    assert all(BY_NAME[name].better == "higher" for name in RANKABLE_METRICS)  # max drawdown is negative


@pytest.mark.parametrize(
    ("name", "value", "shown", "panel", "cell", "exact"),
    [
        ("total_return", 3.8394724029300002, "383.95%", 383.95, "383.95%", 3.8394724029),
        ("max_drawdown", -0.6756459025611175, "-67.56%", -67.56, "-67.56%", -0.6756459026),
        ("sharpe_ratio", 0.4115640065658773, "0.4116", 0.4116, "0.4116", 0.4115640066),
        ("trade_count", 97.0, "97", 97, 97, 97),  # a count read back from storage as a float
        ("final_equity", 483947.24029300007, "483,947.24", 483947.24, "483,947.24", "483947.24"),
        ("expectancy", -0.005, "-0.01", -0.01, "-0.01", "-0.01"),  # half a cent: away from zero
        ("max_drawdown_duration_days", 5392.04, "5,392.0", 5392.04, "5,392.0", 5392.04),
        ("beta", -0.0, "0.0000", 0.0, "0.0000", 0.0),
        ("alpha", -1e-12, "-0.00%", -0.0, "-0.00%", 0.0),
        ("start", "1995-01-03T21:00:00+00:00", "1995-01-03T21:00:00+00:00", None, "1995-01-03T21:00:00+00:00", None),
        ("profit_factor", None, "n/a", None, None, None),
        ("profit_factor", math.nan, "n/a", None, None, None),
        ("alpha", math.inf, "n/a", None, None, None),
    ],
)
def test_each_form_of_a_value(name, value, shown, panel, cell, exact):
    assert display(name, value) == shown
    assert panel_number(name, value) == panel
    assert table_cell(name, value) == cell
    if isinstance(value, str):
        assert machine(name, value) == value
    else:
        assert machine(name, value) == exact
        assert type(machine(name, value)) is type(exact)


def test_the_panel_labels_say_percent():
    assert panel_label("total_return") == "total_return %" and panel_label("sharpe_ratio") == "sharpe_ratio"


def test_metrics_read_back_from_storage_get_their_types_and_order():
    stored = {"trade_count": 12.0, "zzz_new": 3, "sharpe_ratio": float("nan"), "run_id": "abc", "bars": 250.0}
    metrics = Metrics.of(stored)
    assert list(metrics) == ["run_id", "bars", "sharpe_ratio", "trade_count", "zzz_new"]
    assert metrics["trade_count"] == 12 and type(metrics["trade_count"]) is int and type(metrics["bars"]) is int
    assert metrics["sharpe_ratio"] is None and metrics["zzz_new"] == 3


def test_the_summary_figures_are_headline_figures():
    from ntrader_pipeline.core.metric_registry import SUMMARY_METRICS

    assert set(SUMMARY_METRICS) <= set(HEADLINE_METRICS)

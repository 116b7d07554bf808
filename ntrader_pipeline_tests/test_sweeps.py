"""Sweep blocks: the constraint grammar (parsed, never evaluated), grids, seeded samples, readable
keys that parse back, walk-forward windows, and file errors that name the key."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ntrader_pipeline.core.strategy_specs import StrategySpecError, parse_spec
from ntrader_pipeline.core.sweeps import (
    Constraint,
    ConstraintError,
    SweepSpec,
    WalkForwardSpec,
    parameter_key,
    parse_parameter_key,
    windows,
)

BASE = {"strategy": "sma_crossover", "config": {"fast_period": 10, "slow_period": 30}}


@pytest.mark.parametrize(
    ("text", "params", "holds"),
    [
        ("fast_period < slow_period", {"fast_period": 5, "slow_period": 30}, True),
        ("fast_period < slow_period", {"fast_period": 30, "slow_period": 30}, False),
        ("2 <= fast_period < slow_period <= 100", {"fast_period": 2, "slow_period": 100}, True),
        ("2 <= fast_period < slow_period <= 100", {"fast_period": 1, "slow_period": 100}, False),
        ("k != 2.5", {"k": 2.5}, False),
        ("oversold>=-1", {"oversold": 0}, True),
    ],
)
def test_constraints_compare_names_and_numbers(text, params, holds):
    assert Constraint.parse(text).holds(params) is holds


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("fast_period < ", None),
        ("fast_period slow_period", 13),
        ("< 3", 1),
        ("__import__('os') < 1", 11),
        ("a + b < 3", 3),
    ],
)
def test_constraints_that_are_not_comparisons_are_refused_with_the_column(text, column):
    with pytest.raises(ConstraintError) as info:
        Constraint.parse(text)
    if column is not None:
        assert f"column {column}:" in str(info.value)


def test_a_grid_expands_in_order_and_drops_sets_that_break_a_constraint():
    sweep = SweepSpec(
        grid={"fast_period": [5, 10, 40], "slow_period": [30, 50]}, constraints=["fast_period < slow_period"]
    )
    assert sweep.parameter_sets() == [
        {"fast_period": 5, "slow_period": 30},
        {"fast_period": 5, "slow_period": 50},
        {"fast_period": 10, "slow_period": 30},
        {"fast_period": 10, "slow_period": 50},
        {"fast_period": 40, "slow_period": 50},
    ]


def test_random_samples_are_reproducible_from_the_seed_and_keep_integer_ranges_integer():
    sweep = SweepSpec(ranges={"lookback": (10, 60), "k": (1.0, 3.0)}, n=25, seed=42)
    first, again = sweep.parameter_sets(), sweep.parameter_sets()
    assert first == again and len(first) == 25
    assert all(isinstance(p["lookback"], int) and 10 <= p["lookback"] <= 60 for p in first)
    assert all(isinstance(p["k"], float) and 1.0 <= p["k"] <= 3.0 for p in first)
    assert SweepSpec(ranges={"lookback": (10, 60), "k": (1.0, 3.0)}, n=25, seed=43).parameter_sets() != first


def test_keys_are_readable_stable_and_parse_back():
    params = {"slow_period": 30, "fast_period": 10}
    key = parameter_key("sma_crossover", params)
    assert key == "sma_crossover[fast_period=10,slow_period=30]"
    assert parse_parameter_key(key) == ("sma_crossover", {"fast_period": 10, "slow_period": 30})
    assert parse_parameter_key("bands[allow_short=true,k=2.5]") == ("bands", {"allow_short": True, "k": 2.5})
    with pytest.raises(ValueError, match="not a parameter-set key"):
        parse_parameter_key("sma_crossover|ORCL")


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"grid": {"fast_period": [5]}, "constraints": ["fast_period < slow"]}, "slow is not a swept parameter"),
        ({"grid": {"fast_period": [5]}, "constraints": ["fast_period <"]}, "a constraint compares"),
        ({"ranges": {"fast_period": [5, 50]}}, "need n and seed"),
        ({"grid": {"fast_period": [5]}, "ranges": {"slow_period": [5, 50]}}, "either grid"),
        ({"grid": {"fast_period": [5, "x"]}}, "sweep: set sma[fast_period=x]: config.fast_period"),
        ({"grid": {"max_position_shares": [5]}}, "cannot be swept"),
        ({"grid": {"fast_period": [40], "slow_period": [30]}}, "sweep: set sma[fast_period=40,slow_period=30]"),
    ],
)
def test_bad_sweep_blocks_name_the_file_and_the_key(sweep, message):
    with pytest.raises(StrategySpecError) as info:
        parse_spec("sma", {**BASE, "sweep": sweep}, "sweeps/sma.yaml")
    assert str(info.value).startswith("sweeps/sma.yaml: ") and message in str(info.value)


def test_walk_forward_needs_a_sweep():
    with pytest.raises(StrategySpecError, match="walk_forward: needs a sweep"):
        parse_spec("sma", {**BASE, "walk_forward": {"in_sample": 10, "out_of_sample": 5}}, "f.yaml")


def test_with_parameters_names_the_run_by_its_key_and_drops_the_research_blocks():
    spec = parse_spec("sma", {**BASE, "sweep": {"grid": {"fast_period": [5, 20]}}}, "f.yaml")
    applied = spec.with_parameters({"fast_period": 20})
    assert applied.name == "sma[fast_period=20]" and applied.config["fast_period"] == 20
    assert applied.sweep is None and applied.canonical()["sweep"] is None and applied.source == "f.yaml"


DAYS = [date(2020, 1, 1) + timedelta(days=i) for i in range(10)]


def test_rolling_windows_move_by_the_step_and_never_overlap_out_of_sample():
    got = windows(DAYS, WalkForwardSpec(in_sample=4, out_of_sample=2))
    assert [(w.in_start.day, w.in_end.day, w.out_start.day, w.out_end.day) for w in got] == [
        (1, 4, 5, 6),
        (3, 6, 7, 8),
        (5, 8, 9, 10),
    ]


def test_anchored_windows_keep_the_first_day_and_the_last_window_is_cut_to_the_data():
    got = windows(DAYS, WalkForwardSpec(in_sample=4, out_of_sample=3, mode="anchored"))
    assert [(w.in_start.day, w.in_end.day, w.out_start.day, w.out_end.day) for w in got] == [
        (1, 4, 5, 7),
        (1, 7, 8, 10),
    ]

"""The tearsheet's additions: the benchmark beside every figure it shares, the benchmark in the
monthly and annual returns, rolling beta, the risk-free rate stated, and a histogram that does not
paint the flat days as losses."""

from __future__ import annotations

import html
import re
from datetime import date

import empyrical
import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import BENCHMARK_OF, display
from ntrader_pipeline.core.metrics import compute_metrics, equity_curve, own_benchmark
from ntrader_pipeline.core.performance import annual_returns, rolling_beta
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.strategy_specs import parse_spec
from ntrader_pipeline.core.svg_charts import GREEN, GREY, RED, bin_color, histogram
from ntrader_pipeline.core.tearsheet import cards, tearsheet_html
from ntrader_pipeline_tests.support import ORCL_DAILY

BAR = re.compile(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="(#[0-9a-f]+)"><title>([^<]*)</title>')


def bars(svg: str) -> list[tuple[str, float, int]]:
    """(colour, bin centre as a fraction, count) of each bar of a histogram."""
    out = []
    for color, title in BAR.findall(svg):
        centre, count = html.unescape(title).rsplit(": ", 1)
        out.append((color, float(centre.rstrip("%")) / 100, int(count.replace(",", ""))))
    return out


def test_flat_days_are_counted_apart_and_no_bar_of_losses_is_green_or_of_gains_red():
    """About half of a trend follower's days are exactly 0: drawn as a bar they were one red bar
    that dwarfed every other."""
    rng = np.random.default_rng(7)
    moved = rng.normal(0.0005, 0.015, 1200)
    returns = np.concatenate([moved, np.zeros(1100)])
    svg = histogram("h", "Daily returns", rng.permutation(returns))
    assert 'data-flat-days="1100"' in svg and "1,100 flat days (exactly 0) not drawn" in svg
    drawn = bars(svg)
    assert sum(count for _, _, count in drawn) == 1200
    assert max(count for _, _, count in drawn) < 200  # the tallest bar is a real bin, not the flat days
    for color, centre, _ in drawn:
        assert color == (RED if centre < 0 else GREEN), (color, centre)  # 0 is an edge: no bin spans it


def test_a_bin_is_coloured_by_the_sign_of_its_range():
    assert bin_color(-0.02, -0.01) == RED and bin_color(-0.01, 0.0) == RED
    assert bin_color(0.0, 0.01) == GREEN and bin_color(-0.005, 0.005) == GREY


def test_rolling_beta_matches_empyrical():
    rng = np.random.default_rng(3)
    index = pd.bdate_range("2019-01-02", periods=400, tz="UTC") + pd.Timedelta(hours=21)
    market = pd.Series(rng.normal(0.0003, 0.01, 400), index=index)
    strategy = 0.6 * market + pd.Series(rng.normal(0, 0.004, 400), index=index)
    got = rolling_beta(strategy, market.iloc[10:])  # the benchmark starts later: only common days count
    expected = empyrical.roll_beta(strategy.iloc[10:], market.iloc[10:], window=126).dropna()
    assert len(got) == len(expected) == 400 - 10 - 125
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-10)
    assert (got.index == expected.index).all()


def test_a_long_card_value_takes_two_columns():
    page = cards([("trades", "97", False), ("best set", "fast_period=10, slow_period=30", False)])
    assert '<div class="card">' in page and '<div class="card wide">' in page


@pytest.fixture(scope="module")
def page():
    orcl = read_bar_csv(ORCL_DAILY, "ORCL")
    spec = parse_spec(
        "sma",
        {
            "strategy": "sma_crossover",
            "config": {"fast_period": 10, "slow_period": 30},
            "backtest": {"risk_free_rate_pct": 2.5},
        },
        "sma.yaml",
    )
    result = run_backtest(orcl, spec, "XNAS", "page", None, date(2004, 12, 31))
    ledger = trade_ledger(result.fills)
    metrics = compute_metrics(result, ledger)
    text = tearsheet_html(
        RunRecord.of_result(result),
        metrics,
        ledger,
        equity_curve(result),
        prices=result.equity[["ts_event", "close"]],
        benchmark=own_benchmark(result),
    )
    return result, metrics, text


def rows_of(text: str, header: str) -> list[list[str]]:
    """The cell texts of the table whose first header cell is ``header``."""
    for table in re.findall(r"<table[^>]*>(.*?)</table>", text, re.S):
        cells = [
            [html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table)
        ]
        if cells and cells[0][0] == header:
            return cells
    raise AssertionError(f"no table headed {header}")


def test_every_figure_the_benchmark_shares_is_beside_it(page):
    _, metrics, text = page
    table = rows_of(text, "metric")
    assert table[0] == ["metric", "strategy", "buy and hold ORCL"]
    rows = {row[0]: row[1:] for row in table[1:]}
    for name, twin in BENCHMARK_OF.items():
        assert rows[name] == [display(name, metrics[name]), display(twin, metrics[twin])], name
    assert rows["trade_count"] == [display("trade_count", metrics["trade_count"]), ""]
    assert not set(BENCHMARK_OF.values()) & set(rows)  # in the benchmark column, not as rows of their own
    assert "risk-free rate of 2.50% a year" in text and "risk-free rate 2.50% a year" in text
    assert "historical, 95 %, of daily returns" in text


def test_the_benchmark_is_in_the_monthly_and_annual_returns(page):
    result, _, text = page
    table = rows_of(text, "year")
    assert table[0] == ["year", "strategy", "buy and hold ORCL", "difference"]
    closes = result.equity.set_index(pd.to_datetime(result.equity["ts_event"], utc=True))["close"]
    by_year = closes.groupby(closes.index.year).last()
    first = {1995: closes.iloc[0], **{y: by_year[y - 1] for y in by_year.index[1:]}}
    for year, strategy, bench, difference in table[1:]:
        expected = by_year[int(year)] / first[int(year)] - 1
        assert bench == f"{expected:.2%}", year
        percent = [float(cell.rstrip("%")) for cell in (strategy, bench, difference)]
        assert abs(percent[2] - (percent[0] - percent[1])) <= 0.011, year  # each cell rounded to 0.01
    heat = re.search(r'<svg class="chart" id="monthly-returns".*?</svg>', text, re.S).group(0)
    assert ">Year</text>" in heat and ">Bench.</text>" in heat
    assert 'id="annual-returns"' in text and "buy and hold ORCL" in text
    assert 'id="rolling-beta"' in text


def test_annual_returns_compound_in_exchange_time():
    index = pd.DatetimeIndex(["2023-12-29 21:00", "2024-01-01 01:30", "2024-01-02 21:00"], tz="UTC")
    got = annual_returns(pd.Series([0.1, 0.1, -0.5], index=index))
    assert list(got.index) == [2023, 2024] and got[2023] == pytest.approx(0.21) and got[2024] == pytest.approx(-0.5)

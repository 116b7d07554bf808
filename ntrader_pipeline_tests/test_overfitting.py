"""Deflated Sharpe Ratio and PBO against the papers' numbers and a second implementation written
differently (scipy and pandas here, numpy and the standard library in the module)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ntrader_pipeline.core.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    skew_kurtosis,
)


def test_the_deflated_sharpe_papers_numerical_example():
    # Bailey & López de Prado (2014), "A numerical example": annualised SR 2.5 over 1250 days,
    # 100 trials whose annualised Sharpe ratios have variance 1/2, skew -3, kurtosis 10.
    # The paper finds E[max SR] ≈ 0.1132 per day and DSR ≈ 0.9004.
    days_per_year = 250
    threshold = expected_max_sharpe(0.5 / days_per_year, 100)
    assert threshold == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe_ratio(2.5 / math.sqrt(days_per_year), threshold, 1250, skew=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=2e-4)


def scipy_dsr(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """The same formulas through scipy's moments and normal distribution."""
    sr = returns.mean() / returns.std(ddof=1)
    g3 = stats.skew(returns, bias=True)
    g4 = stats.kurtosis(returns, fisher=False, bias=True)
    n = len(trial_sharpes)
    sd = np.std(trial_sharpes, ddof=1)
    sr0 = sd * ((1 - np.euler_gamma) * stats.norm.ppf(1 - 1 / n) + np.euler_gamma * stats.norm.ppf(1 - 1 / (n * np.e)))
    z = (sr - sr0) * np.sqrt(len(returns) - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def test_deflated_sharpe_matches_a_scipy_implementation_on_fixed_data():
    rng = np.random.default_rng(7)
    trials = rng.standard_t(df=4, size=(1000, 40)) * 0.01 + 0.0004
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    best = trials[:, int(np.argmax(sharpes))]
    got = deflated_sharpe_ratio(best, sharpes)
    assert got.dsr == pytest.approx(scipy_dsr(best, sharpes), abs=1e-9)
    assert got.trials == 40 and got.observations == 1000
    skew, kurt = skew_kurtosis(best)
    assert skew == pytest.approx(stats.skew(best)) and kurt == pytest.approx(stats.kurtosis(best, fisher=False))
    # more trials of the same spread make the same best result less convincing
    assert deflated_sharpe_ratio(best, np.tile(sharpes, 10)).dsr < got.dsr


def pandas_pbo(frame: pd.DataFrame, blocks: int) -> float:
    """CSCV written independently: pandas group labels, scipy ranks."""
    size = len(frame) // blocks
    frame = frame.iloc[len(frame) - size * blocks :].reset_index(drop=True)
    label = frame.index // size
    below = 0
    splits = list(combinations(range(blocks), blocks // 2))
    for chosen in splits:
        mask = label.isin(chosen)
        is_sr = frame[mask].mean() / frame[mask].std()
        oos_sr = frame[~mask].mean() / frame[~mask].std()
        best = is_sr.idxmax()
        w = stats.rankdata(oos_sr.to_numpy())[list(frame.columns).index(best)] / (frame.shape[1] + 1)
        below += np.log(w / (1 - w)) <= 0
    return below / len(splits)


def test_pbo_of_pure_noise_is_near_one_half_and_matches_pandas():
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 0.01, size=(960, 30))
    got = probability_of_backtest_overfitting(noise, blocks=10)
    assert got.splits == math.comb(10, 5) == 252
    assert got.pbo == pytest.approx(pandas_pbo(pd.DataFrame(noise), 10), abs=1e-12)
    assert 0.25 < got.pbo < 0.75


def test_a_trial_that_is_best_everywhere_is_never_overfit():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, size=(400, 8))
    noise[:, 5] += 0.01  # clearly better in every block
    got = probability_of_backtest_overfitting(noise, blocks=8)
    assert got.pbo == 0.0 and all(logit > 0 for logit in got.logits)


def test_pbo_by_hand_on_four_blocks():
    # 2 trials, 4 blocks of 2 rows. Trial A is good in blocks 0-1 and bad in 2-3; B is its mirror.
    # Splits {0,1} and {2,3}: the in-sample winner is the out-of-sample loser (ω̄ = 1/3, logit < 0).
    # The four mixed splits see the same mean in and out of sample, so the winner stays first.
    a = np.array([0.02, 0.03, 0.02, 0.03, -0.01, -0.02, -0.01, -0.02])
    b = -a
    got = probability_of_backtest_overfitting(np.column_stack([a, b]), blocks=4)
    assert got.splits == 6
    assert got.pbo == pytest.approx(2 / 6)
    assert got.pbo == pytest.approx(pandas_pbo(pd.DataFrame({"a": a, "b": b}), 4))
    assert got.logits[0] == pytest.approx(math.log((1 / 3) / (2 / 3)))  # split {0, 1}: A in, last out


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), blocks=5)
    with pytest.raises(ValueError, match="two trials"):
        probability_of_backtest_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="cannot make"):
        probability_of_backtest_overfitting(np.zeros((10, 3)), blocks=16)

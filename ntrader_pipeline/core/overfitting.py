"""How much of a sweep's best result is luck: the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting.

- **DSR** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the probability that the
  best trial's true Sharpe ratio is above the Sharpe ratio the best of N *unskilled* trials would
  show by chance, given the variance of the trials' Sharpe ratios and the skew and kurtosis of the
  best trial's returns. Every Sharpe ratio here is per period (not annualised).
- **PBO** (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting",
  2015), by combinatorially symmetric cross-validation (CSCV): the T × N matrix of per-period
  returns (one column per trial) is cut into S blocks of rows; for every choice of S/2 blocks as
  in-sample (the rest out-of-sample) the trial best in sample is ranked out of sample; PBO is the
  share of choices where it lands in the bottom half (logit ≤ 0).

Only numpy and the standard library: no Dagster, no engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe(returns: np.ndarray) -> float:
    """Per-period Sharpe ratio: mean / sample std (ddof=1); NaN when undefined."""
    returns = np.asarray(returns, dtype=np.float64)
    if len(returns) < 2:
        return math.nan
    std = returns.std(ddof=1)
    return float(returns.mean() / std) if std > 0 else math.nan


def skew_kurtosis(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness and (non-excess) kurtosis, the population moments the paper uses (normal: 0, 3)."""
    r = np.asarray(returns, dtype=np.float64)
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    if m2 == 0:
        return 0.0, 3.0
    return float(np.mean(centred**3) / m2**1.5), float(np.mean(centred**4) / m2**2)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, observations: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true SR > ``sr_benchmark``) given an observed per-period ``sr`` over ``observations`` returns
    (Bailey & López de Prado 2012, eq. for PSR with non-normal returns)."""
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if observations < 2 or variance <= 0 or not math.isfinite(sr):
        return math.nan
    return _NORMAL.cdf((sr - sr_benchmark) * math.sqrt(observations - 1) / math.sqrt(variance))


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float:
    """E[max SR] of ``trials`` independent unskilled trials whose Sharpe ratios have this variance
    (the False Strategy Theorem): √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))."""
    if trials < 2 or sharpe_variance <= 0:
        return 0.0
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials) + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float  # probability, 0..1
    sharpe: float  # the best trial's per-period Sharpe
    sharpe_threshold: float  # expected maximum per-period Sharpe of the unskilled trials
    trials: int
    observations: int
    skew: float
    kurtosis: float


def deflated_sharpe_ratio(best_returns: np.ndarray, trial_sharpes: np.ndarray) -> DeflatedSharpe:
    """DSR of the best trial: PSR against the expected maximum Sharpe of ``len(trial_sharpes)`` trials.

    ``best_returns``: the chosen trial's per-period returns; ``trial_sharpes``: every trial's
    per-period Sharpe ratio (the best one included); undefined ones are dropped.
    """
    trial = np.asarray(trial_sharpes, dtype=np.float64)
    trial = trial[np.isfinite(trial)]
    returns = np.asarray(best_returns, dtype=np.float64)
    sr = sharpe(returns)
    skew, kurt = skew_kurtosis(returns)
    variance = float(trial.var(ddof=1)) if len(trial) > 1 else 0.0
    threshold = expected_max_sharpe(variance, len(trial))
    return DeflatedSharpe(
        dsr=probabilistic_sharpe_ratio(sr, threshold, len(returns), skew, kurt),
        sharpe=sr,
        sharpe_threshold=threshold,
        trials=len(trial),
        observations=len(returns),
        skew=skew,
        kurtosis=kurt,
    )


@dataclass(frozen=True)
class BacktestOverfitting:
    pbo: float  # share of splits whose in-sample best is below the out-of-sample median
    logits: tuple[float, ...]  # one per split
    splits: int
    blocks: int


def _sharpe_from_sums(total: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Per-column Sharpe (ddof=1) from column sums and sums of squares over ``n`` rows."""
    mean = total / n
    variance = np.maximum(squares - total * mean, 0.0) / (n - 1)
    std = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / std
    return np.where(std > 1e-15, out, -np.inf)  # a flat trial is never "best"


def probability_of_backtest_overfitting(returns: np.ndarray, blocks: int = 16) -> BacktestOverfitting:
    """PBO by CSCV over a T × N returns matrix (rows: periods, columns: trials), Sharpe as the metric.

    Rows that do not fill ``blocks`` equal blocks are dropped from the start (the paper's equal
    sub-matrices). The out-of-sample rank ω̄ of the in-sample best is its rank / (N + 1) (rank 1 =
    worst); logit λ = ln(ω̄ / (1 − ω̄)); PBO = share of λ ≤ 0.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    rows, trials = matrix.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number ≥ 2, not {blocks}")
    if trials < 2:
        raise ValueError("PBO needs at least two trials")
    size = rows // blocks
    if size < 2:
        raise ValueError(f"{rows} periods cannot make {blocks} blocks of at least 2")
    matrix = matrix[rows - size * blocks :].reshape(blocks, size, trials)
    # per-block sums make each split O(blocks × trials) instead of a copy of the matrix
    sums, squares = matrix.sum(axis=1), (matrix**2).sum(axis=1)
    all_sums, all_squares = sums.sum(axis=0), squares.sum(axis=0)
    half = size * blocks // 2
    logits = []
    for chosen in combinations(range(blocks), blocks // 2):
        picked = list(chosen)
        in_total, in_squares = sums[picked].sum(axis=0), squares[picked].sum(axis=0)
        in_sample = _sharpe_from_sums(in_total, in_squares, half)
        out_sample = _sharpe_from_sums(all_sums - in_total, all_squares - in_squares, half)
        best = int(np.argmax(in_sample))
        # rank 1..N of the best's out-of-sample Sharpe (ties share their average rank)
        below = float(np.sum(out_sample < out_sample[best]))
        equal = float(np.sum(out_sample == out_sample[best]))
        rank = below + (equal + 1) / 2
        omega = rank / (trials + 1)
        logits.append(math.log(omega / (1 - omega)))
    return BacktestOverfitting(
        pbo=float(np.mean(np.array(logits) <= 0)), logits=tuple(logits), splits=len(logits), blocks=blocks
    )


# --- how a sweep states them (JSON, API, CLI, HTML) ---------------------------------------


def dsr_meaning(trials_used: int) -> str:
    """What the deflated Sharpe ratio is, in words: a probability, not a Sharpe ratio, and not the
    probability that the strategy has skill."""
    return (
        f"the probability that the best set's Sharpe ratio exceeds what the best of {trials_used} "
        "trials would give by chance"
    )


def sweep_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The sweep-level figures of an ``overfitting_summary``, as JSON and the API give them: each
    figure once, and ``undefined`` saying why each null one is null."""
    undefined = {
        name: summary[reason]
        for name, key, reason in (("deflated_sharpe", "dsr", "dsr_reason"), ("pbo", "pbo", "pbo_reason"))
        if summary[key] is None
    }
    return {
        "trials": summary["trials"],
        "trials_used": summary["trials_used"],
        "trials_left_out": summary["trials_left_out"],
        "deflated_sharpe": summary["dsr"],
        "sharpe_threshold": summary["sharpe_threshold"],
        "pbo": summary["pbo"],
        "pbo_blocks": summary["pbo_blocks"],
        "pbo_splits": summary["pbo_splits"],
        "undefined": undefined,
    }


def overfitting_lines(summary: dict[str, Any]) -> list[str]:
    """The sweep's DSR and PBO as text: what each is, or ``n/a`` and why."""
    dsr, pbo = summary["dsr"], summary["pbo"]
    return [
        "deflated Sharpe ratio of the best set: "
        + (f"n/a ({summary['dsr_reason']})" if dsr is None else f"{dsr:.1%}, {dsr_meaning(summary['trials_used'])}"),
        "probability of backtest overfitting: "
        + (
            f"n/a ({summary['pbo_reason']})"
            if pbo is None
            else f"{pbo:.1%}, the share of {summary['pbo_splits']} in-sample/out-of-sample splits where the "
            "in-sample best set ranks in the bottom half out of sample"
        ),
    ]

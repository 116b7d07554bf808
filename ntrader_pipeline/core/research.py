"""Sweeps and walk-forward runs over one bar series, with the bars read once.

Each parameter set runs in its own ``BacktestEngine`` (exactly what its own backtest partition
would run), so a set's numbers are the same whether it ran in a sweep or alone, and the same on
one process or spread over ``processes`` workers (``core.parallel``): the sets are independent
jobs, their run ids are drawn in set order before any runs, and results come back in set order.
Progress goes to ``core.progress``; the Dagster assets and the CLI decide how it is shown.

Walk-forward runs are warm: every in-sample and out-of-sample run first follows every earlier bar
of the walk-forward's bars (``run_backtest(..., warmup=True)``), so a window decides each bar as
the chosen set's continuous run over all the bars does; the first in-sample window starts once
the sets' longest indicator has its bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.backtest import BacktestResult, run_backtest, warmup_bars, window
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, Metrics
from ntrader_pipeline.core.metrics import (
    EXCHANGE_TZ,
    Benchmark,
    benchmark_for,
    compute_metrics,
    daily_returns,
    equity_curve,
)
from ntrader_pipeline.core.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting, sharpe
from ntrader_pipeline.core.parallel import WorkerPool, usable_processes
from ntrader_pipeline.core.progress import progress
from ntrader_pipeline.core.strategy_specs import StrategySpec
from ntrader_pipeline.core.sweeps import WalkForwardSpec, Window, walk_forward_shortfall, windows

PBO_BLOCKS = 16
PBO_MIN_BLOCK_SESSIONS = 20  # docs/research.md promises at least this many daily returns per block
ClosesReader = Callable[[str], pd.DataFrame | None]


@dataclass(frozen=True)
class SetRun:
    """One parameter set's run: its result, ledger, metrics and daily returns."""

    key: str
    params: dict[str, Any]
    result: BacktestResult
    ledger: pd.DataFrame
    metrics: Metrics
    returns: pd.Series


def run_set(
    series: BarSeries,
    spec: StrategySpec,
    params: dict[str, Any],
    venue: str,
    run_id: str,
    start: date | None = None,
    end: date | None = None,
    allowlist: Sequence[str] = (),
    closes: ClosesReader | None = None,
    warmup: bool = False,
) -> SetRun:
    """Run ``spec`` with ``params`` applied on ``series`` and measure it (against the spec's benchmark)."""
    applied = spec.with_parameters(params)
    result = run_backtest(series, applied, venue, run_id, start, end, allowlist, warmup)
    ledger = trade_ledger(result.fills)
    benchmark = benchmark_for(result, closes or (lambda _symbol: None))
    metrics = compute_metrics(result, ledger, benchmark)
    return SetRun(applied.name, params, result, ledger, metrics, daily_returns(equity_curve(result)))


@dataclass(frozen=True)
class SetContext:
    """What every run of one sweep or walk-forward shares: sent to each worker once."""

    series: BarSeries
    spec: StrategySpec
    venue: str
    allowlist: tuple[str, ...]
    benchmarks: dict[str, pd.DataFrame | None]  # the spec's benchmark closes, read once

    @classmethod
    def of(
        cls, series: BarSeries, spec: StrategySpec, venue: str, allowlist: Sequence[str], closes: ClosesReader | None
    ) -> SetContext:
        symbol = spec.benchmark
        if symbol is not None and symbol != series.symbol and closes is not None:
            return cls(series, spec, venue, tuple(allowlist), {symbol: closes(symbol)})
        return cls(series, spec, venue, tuple(allowlist), {})


@dataclass(frozen=True)
class SetJob:
    """One run of a set: its window, whether it warms up, its starting cash, what comes back."""

    params: dict[str, Any]
    run_id: str
    start: date | None = None
    end: date | None = None
    warmup: bool = False
    balance: Decimal | None = None  # None: the spec's starting balance
    metrics_only: bool = False  # in-sample trials: the metrics rank them, nothing else is kept


@dataclass(frozen=True)
class Trial:
    """An in-sample run, as much as picking the best set needs."""

    key: str
    params: dict[str, Any]
    metrics: dict[str, Any]


def run_job(context: SetContext, job: SetJob) -> SetRun | Trial:
    """A ``SetJob`` in this process (a worker's job, or the caller's own)."""
    spec = context.spec
    if job.balance is not None:
        spec = spec.model_copy(update={"backtest": spec.backtest.model_copy(update={"starting_balance": job.balance})})
    run = run_set(
        context.series,
        spec,
        job.params,
        context.venue,
        job.run_id,
        job.start,
        job.end,
        context.allowlist,
        context.benchmarks.get,
        job.warmup,
    )
    return Trial(run.key, run.params, run.metrics) if job.metrics_only else run


def rank_key(metric: str) -> Callable[[dict[str, Any]], tuple]:
    """Best first: the highest value (drawdowns are negative, so the shallowest), undefined last."""

    def key(metrics: dict[str, Any]) -> tuple:
        value = metrics.get(metric)
        return (0, -value) if value is not None and math.isfinite(value) else (1, 0.0)

    return key


def sweep_rows(runs: list[SetRun], metric: str) -> list[dict[str, Any]]:
    """One row per set, ranked by ``metric``: rank, key, params, run id and every headline metric."""
    ordered = sorted(runs, key=lambda r: rank_key(metric)(r.metrics))
    return [
        {
            "rank": i + 1,
            "key": run.key,
            "symbol": run.result.symbol,
            "params": dict(run.params),
            "run_id": run.result.run_id,
            **{name: run.metrics.get(name) for name in HEADLINE_METRICS},
        }
        for i, run in enumerate(ordered)
    ]


def overfitting_summary(runs: list[SetRun], metric: str) -> dict[str, Any]:
    """DSR of the best set by ``metric`` and PBO over the sets, each None with its reason when undefined.

    Both use the sets whose daily returns have a defined Sharpe ratio (a set that never trades has
    none): ``trials_used`` says how many, ``trials_left_out`` which were left out and why. PBO is
    undefined when fewer than two such sets differ, or when the days cannot make two blocks of
    ``PBO_MIN_BLOCK_SESSIONS``.
    """
    out: dict[str, Any] = {
        "trials": len(runs),
        "trials_used": 0,
        "trials_left_out": None,
        "dsr": None,
        "dsr_reason": None,
        "sharpe_threshold": None,
        "pbo": None,
        "pbo_reason": None,
        "pbo_blocks": None,
        "pbo_splits": None,
    }
    sharpes = [sharpe(r.returns.to_numpy()) for r in runs]
    used = [r for r, s in zip(runs, sharpes, strict=True) if math.isfinite(s)]
    left = [r.key for r, s in zip(runs, sharpes, strict=True) if not math.isfinite(s)]
    out["trials_used"] = len(used)
    if left:
        out["trials_left_out"] = (
            f"{len(left)} of {len(runs)} sets have no defined Sharpe ratio (no trade, or flat daily returns): "
            + ", ".join(left)
        )
    if len(used) < 2:
        reason = f"{len(used)} of {len(runs)} sets have a defined Sharpe ratio; both figures need two"
        return {**out, "dsr_reason": reason, "pbo_reason": reason}
    best = sorted(runs, key=lambda r: rank_key(metric)(r.metrics))[0]
    dsr = deflated_sharpe_ratio(best.returns.to_numpy(), np.array([s for s in sharpes if math.isfinite(s)]))
    if math.isfinite(dsr.dsr):
        out.update(dsr=float(dsr.dsr), sharpe_threshold=_finite(dsr.sharpe_threshold * math.sqrt(252)))
    else:
        out["dsr_reason"] = f"the best set by {metric}, {best.key}, has no defined Sharpe ratio"
    pbo, reason = _pbo(used)
    if pbo is None:
        out["pbo_reason"] = reason
    else:
        out.update(pbo=pbo.pbo, pbo_blocks=pbo.blocks, pbo_splits=pbo.splits)
    return out


def _pbo(used: list[SetRun]):
    """CSCV over the days every used set has, or (None, why not)."""
    matrix = pd.concat([r.returns.rename(i) for i, r in enumerate(used)], axis=1).dropna().to_numpy()
    if len(matrix) and (matrix == matrix[:, :1]).all():
        return None, f"all {len(used)} sets have the same daily returns: there is no best set to pick"
    blocks = PBO_BLOCKS
    while blocks > 2 and len(matrix) // blocks < PBO_MIN_BLOCK_SESSIONS:
        blocks -= 2
    if len(matrix) // blocks < PBO_MIN_BLOCK_SESSIONS:
        return None, (
            f"{len(matrix)} daily returns cannot make 2 blocks of {PBO_MIN_BLOCK_SESSIONS} sessions "
            f"(PBO needs at least {2 * PBO_MIN_BLOCK_SESSIONS})"
        )
    return probability_of_backtest_overfitting(matrix, blocks), None


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def run_sweep(
    series: BarSeries,
    spec: StrategySpec,
    venue: str,
    new_run_id: Callable[[], str],
    start: date | None = None,
    end: date | None = None,
    allowlist: Sequence[str] = (),
    closes: ClosesReader | None = None,
    on_set: Callable[[SetRun], None] | None = None,
    processes: int | None = 1,
) -> list[SetRun]:
    """Every set of ``spec.sweep`` on ``series`` on ``processes`` workers (None: every core);
    ``on_set`` sees each run, in set order, as soon as it and the sets before it are done."""
    if spec.sweep is None:
        raise ValueError(f"{spec.source}: no sweep: block")
    sets = spec.sweep.parameter_sets()
    if not sets:
        raise ValueError(f"{spec.source}: sweep: no parameter set satisfies the constraints")
    context = SetContext.of(series, spec, venue, allowlist, closes)
    jobs = [SetJob(params, new_run_id(), start, end) for params in sets]
    runs = []
    with (
        progress(len(sets), f"sweep {spec.name} on {series.symbol}") as advance,
        WorkerPool(min(usable_processes(processes), len(jobs))) as pool,
    ):
        for outcome in pool.map(run_job, jobs, context):
            run = outcome.result()
            runs.append(run)
            if on_set:
                on_set(run)
            advance(run.key)
    return runs


# --- walk-forward ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkForwardWindow:
    window: Window
    params: dict[str, Any]
    key: str
    in_sample: dict[str, Any]  # metrics of the chosen set on in-sample bars
    out_of_sample: dict[str, Any]  # its metrics on the following out-of-sample bars


@dataclass(frozen=True)
class WalkForward:
    metric: str
    windows: list[WalkForwardWindow]
    result: BacktestResult  # the stitched out-of-sample run
    ledger: pd.DataFrame
    metrics: Metrics
    benchmark: Benchmark | None = field(default=None)


def exchange_days(series: BarSeries) -> list[date]:
    stamps = pd.to_datetime(series.frame["ts_event"], utc=True).dt.tz_convert(EXCHANGE_TZ).dt.date
    return sorted(set(stamps))


def run_walk_forward(
    series: BarSeries,
    spec: StrategySpec,
    venue: str,
    new_run_id: Callable[[], str],
    allowlist: Sequence[str] = (),
    closes: ClosesReader | None = None,
    processes: int | None = 1,
) -> WalkForward:
    """Pick the best set on each in-sample window, run it on the next out-of-sample window, and stitch.

    Every run warms up on the bars before it (see above). Each out-of-sample run starts with the
    previous one's final equity (to the cent) in cash: a position open at the end of a window is
    valued at that window's last close and not carried. The in-sample runs of every window are
    independent and go to ``processes`` workers at once; the out-of-sample runs, a chain through
    their cash, run here in order as their windows' picks come in.
    """
    if spec.sweep is None or spec.walk_forward is None:
        raise ValueError(f"{spec.source}: walk-forward needs both a sweep: and a walk_forward: block")
    wf: WalkForwardSpec = spec.walk_forward
    metric = wf.metric or spec.sweep.metric
    sets = spec.sweep.parameter_sets()
    bars = window(series, spec.backtest.start, spec.backtest.end)
    reserve = warmup_sessions(bars, spec, sets, allowlist)
    days = exchange_days(bars)
    short = walk_forward_shortfall(len(days), reserve, wf)
    if short is not None:
        raise ValueError(f"{spec.source}: walk_forward: the bars have {short}")
    spans = windows(days[reserve:], wf)
    context = SetContext.of(bars, spec, venue, allowlist, closes)
    trials = [
        SetJob(params, "in-sample", span.in_start, span.in_end, warmup=True, metrics_only=True)
        for span in spans
        for params in sets
    ]
    chosen, pieces = [], []
    balance = spec.backtest.starting_balance
    with (
        progress(len(spans) * (len(sets) + 1), f"walk-forward {spec.name} on {series.symbol}") as advance,
        WorkerPool(min(usable_processes(processes), len(trials))) as pool,
    ):
        outcomes = pool.map(run_job, trials, context)
        for span in spans:
            ranked = []
            for _ in sets:
                ranked.append(next(outcomes).result())
                advance(f"{span.in_start}..{span.in_end}")
            best = sorted(ranked, key=lambda t: rank_key(metric)(t.metrics))[0]
            out = run_job(context, SetJob(best.params, new_run_id(), span.out_start, span.out_end, True, balance))
            assert isinstance(out, SetRun)  # not metrics_only: the whole run
            advance(f"{span.out_start}..{span.out_end}")
            balance = Decimal(repr(float(out.result.equity["equity"].iloc[-1]))).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            chosen.append(WalkForwardWindow(span, best.params, best.key, best.metrics, out.metrics))
            pieces.append(out)
    stitched = stitch([p.result for p in pieces], spec, new_run_id(), bars, chosen, reserve)
    ledger = trade_ledger(stitched.fills)
    benchmark = benchmark_for(stitched, context.benchmarks.get)
    return WalkForward(metric, chosen, stitched, ledger, compute_metrics(stitched, ledger, benchmark), benchmark)


def warmup_sessions(
    bars: BarSeries, spec: StrategySpec, sets: list[dict[str, Any]], allowlist: Sequence[str] = ()
) -> int:
    """Sessions at the start of ``bars`` that only warm up the first in-sample window: through the
    session of the last of the sets' longest warm-up (``SignalStrategy.warmup_bars``)."""
    needed = max((warmup_bars(spec.with_parameters(p), allowlist) for p in sets), default=0)
    if needed == 0 or len(bars) == 0:
        return 0
    days = exchange_days(bars)
    if needed >= len(bars):
        return len(days)
    last = pd.Timestamp(int(bars.frame["ts_event"].iloc[needed - 1]), tz="UTC").tz_convert(EXCHANGE_TZ).date()
    return days.index(last) + 1


def stitch(
    results: list[BacktestResult],
    spec: StrategySpec,
    run_id: str,
    bars: BarSeries,
    chosen: list[WalkForwardWindow],
    reserve: int,
) -> BacktestResult:
    """The out-of-sample runs as one result: equity rows and fills in time order, positions
    renamed per window. A position still open at a window's end is closed in the fills at that
    window's last close without commission, as the next window's cash assumes, so round trips
    never join across windows.

    Its stored spec carries a ``research`` entry (``walk_forward_entry``) and its data hash covers
    every bar the walk-forward read, so ``reproduce`` can run the same walk-forward again."""
    fills = []
    for i, r in enumerate(results):
        f = r.fills.copy()
        f["position_id"] = f["position_id"].map(lambda p, i=i: f"W{i + 1}-{p}")
        last = r.equity.iloc[-1]
        if last["position"] != 0:
            close = Decimal(f"{last['close']:.{r.price_precision}f}")
            f = pd.concat(
                [
                    f,
                    pd.DataFrame(
                        [
                            {
                                "ts_event": int(last["ts_event"]),
                                "side": -1 if last["position"] > 0 else 1,
                                "quantity": Decimal(int(abs(last["position"]))),
                                "price": close,
                                "commission": Decimal("0.00"),
                                "position_id": f"W{i + 1}-end",
                            }
                        ]
                    ),
                ],
                ignore_index=True,
            )
        fills.append(f)
    equity = pd.concat([r.equity for r in results], ignore_index=True)
    first, last_result = results[0], results[-1]
    return replace(
        first,
        strategy=f"{spec.name}[walk-forward]",
        run_id=run_id,
        spec={**spec.canonical(), "research": walk_forward_entry(bars, chosen, reserve)},
        starting_balance=spec.backtest.starting_balance,
        bar_count=len(equity),
        end_ns=last_result.end_ns,
        data_hash=bars.content_hash(),
        equity=equity,
        fills=pd.concat(fills, ignore_index=True),
        risk_events=[e for r in results for e in r.risk_events],
        engine_account=last_result.engine_account,
    )


def walk_forward_entry(bars: BarSeries, chosen: list[WalkForwardWindow], reserve: int) -> dict[str, Any]:
    """What a stitched run stores beside its spec: that it is a walk-forward, the exchange dates of
    the bars it read, its warm-up sessions and each window's pick (what ``reproduce`` compares)."""
    days = exchange_days(bars)
    return {
        "kind": "walk_forward",
        "bars": [days[0].isoformat(), days[-1].isoformat()],
        "warmup_sessions": reserve,
        "windows": [
            {
                "in_sample": [w.window.in_start.isoformat(), w.window.in_end.isoformat()],
                "out_of_sample": [w.window.out_start.isoformat(), w.window.out_end.isoformat()],
                "key": w.key,
            }
            for w in chosen
        ],
    }


def walk_forward_document(wf: WalkForward) -> dict[str, Any]:
    """The windows (dates, chosen params, in- and out-of-sample metrics) and the stitched result."""
    return {
        "metric": wf.metric,
        "windows": [
            {
                "in_sample": [w.window.in_start.isoformat(), w.window.in_end.isoformat()],
                "out_of_sample": [w.window.out_start.isoformat(), w.window.out_end.isoformat()],
                "params": w.params,
                "key": w.key,
                "in_sample_metrics": {k: w.in_sample.get(k) for k in HEADLINE_METRICS},
                "out_of_sample_metrics": {k: w.out_of_sample.get(k) for k in HEADLINE_METRICS},
            }
            for w in wf.windows
        ],
        "stitched": wf.metrics,
    }

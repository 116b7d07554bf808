"""Re-run a stored backtest from its stored inputs and say exactly what, if anything, changed.

The inputs are the run's record: the strategy spec as it was (not today's YAML, its fill mode
included), the catalog bars of its symbol and interval cut to its first and last bar, and the
package versions it ran with. The re-run is compared with the stored run on the data hash, the
versions and every metric.

A stitched walk-forward run stores a ``research`` entry beside its spec (``kind: walk_forward``,
the dates of the bars it read, each window's pick): it is reproduced by running the same
walk-forward on those bars again, and the windows and picks are compared too. A sweep set's run
stores its set's plain spec, so it reproduces alone, like any backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.stores import Stores
from ntrader_pipeline.adapters.warehouse.results import load_run, symbol_and_venue
from ntrader_pipeline.core.backtest import run_backtest, run_versions, window
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, calendar_timezone
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import benchmark_for, compute_metrics, metric_differences
from ntrader_pipeline.core.strategy_specs import StrategySpec
from ntrader_pipeline.settings import get_settings


@dataclass
class Reproduction:
    run_id: str
    stored_hash: str
    fresh_hash: str | None
    version_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    metric_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    compared: int = 0
    problem: str | None = None  # why the re-run could not happen at all
    kind: str = "backtest"  # or "walk_forward"
    windows: int = 0  # a walk-forward's windows
    pick_changes: list[str] = field(default_factory=list)  # a walk-forward's windows or picks that differ

    @property
    def identical(self) -> bool:
        return (
            self.problem is None
            and self.fresh_hash == self.stored_hash
            and not self.version_changes
            and not self.metric_changes
            and not self.pick_changes
        )

    def explanation(self) -> list[str]:
        if self.problem:
            return [f"run {self.run_id} not reproduced: {self.problem}"]
        what = f" (walk-forward: the same {self.windows} windows and picks)" if self.kind == "walk_forward" else ""
        if self.identical:
            return [
                f"run {self.run_id} reproduced{what}: data sha256 {self.stored_hash[:12]}…, same versions, "
                f"all {self.compared} metrics identical"
            ]
        lines = [f"run {self.run_id} did NOT reproduce:"]
        lines.extend(f"  {change}" for change in self.pick_changes)
        if self.fresh_hash != self.stored_hash:
            lines.append(f"  data hash differs: stored {self.stored_hash}, catalog now {self.fresh_hash}")
        for name, (old, new) in self.version_changes.items():
            lines.append(f"  version of {name} differs: stored {old}, now {new}")
        for name, old, new in self.metric_changes:
            lines.append(f"  metric {name} differs: stored {old}, now {new}")
        return lines


def _timeframe(bar_type: str) -> Timeframe:
    return Timeframe.of_bar_type(bar_type)


def _exchange_date(stamp, calendar: str) -> date:
    stamp = pd.Timestamp(stamp)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp  # SQLite gives naive UTC
    return stamp.tz_convert(calendar_timezone(calendar)).date()


def reproduce_run(
    stores: Stores, run_id: str, catalog: BarCatalog | None = None, processes: int | None = None
) -> Reproduction:
    """Run ``run_id`` again from what was stored and compare; a walk-forward's sets go to ``processes``
    workers (default: the setting, else one per core)."""
    from ntrader_pipeline.core.research import run_walk_forward, walk_forward_entry

    settings = get_settings()
    stored = load_run(stores.warehouse(), run_id)
    record = stored.record
    symbol, venue = symbol_and_venue(record)
    if catalog is None:  # opened through the stores, so a publish a killed import left is settled first
        catalog = stores.catalog(venue)
    timeframe = _timeframe(record.bar_type)
    outcome = Reproduction(run_id, record.data_hash, None)
    series = catalog.read(symbol, timeframe)
    if series is None:
        outcome.problem = f"the catalog has no {timeframe.value} bars of {symbol} any more"
        return outcome
    config = dict(record.config)
    research = config.pop("research", None)
    if research is not None and research.get("kind") == "walk_forward":
        first, last = (date.fromisoformat(day) for day in research["bars"])
    else:
        calendar = record.versions.get("calendar", DEFAULT_CALENDAR)  # the calendar the run was made on
        first, last = _exchange_date(record.start, calendar), _exchange_date(record.end, calendar)
    bars = window(series, first, last)
    if len(bars) == 0:
        outcome.problem = f"the catalog has no {symbol} bars between {first} and {last} any more"
        return outcome
    spec = StrategySpec(**config)
    allowlist = settings.strategy_module_allowlist
    closes = catalog.closes_reader(timeframe)
    if research is not None and research.get("kind") == "walk_forward":
        outcome.kind, outcome.windows = "walk_forward", len(research["windows"])
        workers = processes or settings.research_processes
        wf = run_walk_forward(bars, spec, venue, lambda: run_id, allowlist, closes, workers)
        result, fresh = wf.result, wf.metrics
        outcome.pick_changes = _pick_changes(research, walk_forward_entry(bars, wf.windows, _reserve(result)))
    else:
        result = run_backtest(series, spec, venue, run_id, first, last, allowlist)
        fresh = compute_metrics(result, trade_ledger(result.fills), benchmark_for(result, closes))
    outcome.fresh_hash = result.data_hash
    now = run_versions(spec.backtest.fill, series.calendar)
    outcome.version_changes = {
        name: (old, now[name]) for name, old in record.versions.items() if name in now and now[name] != old
    }
    outcome.compared = len([n for n in fresh if n != "run_id"])
    outcome.metric_changes = metric_differences(stored.metrics, fresh)
    return outcome


def _reserve(result) -> int:
    return result.spec["research"]["warmup_sessions"]


def _pick_changes(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What differs between a stored walk-forward's windows and picks and a fresh run's."""
    changes = []
    if stored.get("warmup_sessions") != fresh["warmup_sessions"]:
        changes.append(
            f"warm-up differs: stored {stored.get('warmup_sessions')} sessions, now {fresh['warmup_sessions']}"
        )
    old, new = stored["windows"], fresh["windows"]
    if len(old) != len(new):
        changes.append(f"windows differ: stored {len(old)}, now {len(new)}")
    for i, (a, b) in enumerate(zip(old, new, strict=False), start=1):
        if a["in_sample"] != b["in_sample"] or a["out_of_sample"] != b["out_of_sample"]:
            changes.append(
                f"window {i} differs: stored {a['in_sample']} / {a['out_of_sample']}, "
                f"now {b['in_sample']} / {b['out_of_sample']}"
            )
        elif a["key"] != b["key"]:
            changes.append(f"window {i} ({' → '.join(a['out_of_sample'])}) picked {b['key']}, stored {a['key']}")
    return changes

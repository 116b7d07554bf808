"""``ntrader ops prune``: delete old Dagster runs (with their event logs) and old equity curves,
keeping every result a user keeps.

Dagster purges sensor and schedule ticks by itself (``retention:`` in the instance file) but never
runs or their events; the warehouse keeps every equity curve. Both grow with every trading day.

Kept, whatever their age:

- Dagster runs that are not finished, or finished after the cutoff;
- runs holding the latest materialization of an asset partition, or the latest execution of an
  asset check (partition): the UI's asset status, the checks that gate the automatic backtests
  and what the automation compares against all read them;
- runs tagged ``ntrader/keep`` (``ntrader ops keep ID``, or the tag set in the UI's launchpad);
- the newest stored result of every strategy × symbol (what the leaderboard shows, and the
  newest run of every sweep set and walk-forward), and results whose Dagster run is kept by the
  tag, together with their Dagster runs.

Older results lose only their equity curve (their record, metrics and trades stay, so
``list-results``, ``compare`` and ``reproduce`` still work); their report folders are untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.event_api import AssetRecordsFilter

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.retention import curve_rows, delete_curves, newest_per_pair, stored_runs

KEEP_TAG = "ntrader/keep"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h`` or ``2w`` as a duration."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhw])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an age: write a number and d (days), h (hours) or w (weeks), e.g. 90d")
    number, unit = int(match[1]), match[2]
    return {"h": timedelta(hours=number), "d": timedelta(days=number), "w": timedelta(weeks=number)}[unit]


@dataclass
class PrunePlan:
    cutoff: datetime
    runs: list[str] = field(default_factory=list)  # Dagster runs to delete
    runs_kept: dict[str, int] = field(default_factory=dict)  # old finished runs kept, by reason
    curves: dict[str, int] = field(default_factory=dict)  # warehouse run id -> equity-curve rows to delete
    curves_kept: dict[str, int] = field(default_factory=dict)  # old results keeping their curve, by reason

    def describe(self, done: bool) -> list[str]:
        verb = "deleted" if done else "would delete"
        kept = ", ".join(f"{n} {why}" for why, n in self.runs_kept.items() if n) or "none"
        kept_curves = ", ".join(f"{n} {why}" for why, n in self.curves_kept.items() if n) or "none"
        return [
            f"{verb} {len(self.runs)} Dagster runs finished before {self.cutoff:%Y-%m-%d %H:%M} UTC, with their "
            f"event logs; kept older runs: {kept}",
            f"{verb} the equity curves of {len(self.curves)} stored runs ({sum(self.curves.values()):,} rows); "
            f"kept: {kept_curves}",
        ]


def plan_prune(
    instance: DagsterInstance, warehouse: Warehouse, check_keys: Iterable, older_than: timedelta
) -> PrunePlan:
    """What ``prune`` would delete now (nothing is changed)."""
    cutoff = datetime.now(UTC) - older_than
    plan = PrunePlan(cutoff)
    tagged = {r.dagster_run.run_id for r in instance.get_run_records(RunsFilter(tags={KEEP_TAG: "true"}))}

    results = stored_runs(warehouse)
    newest = newest_per_pair(results)
    keep_curve = {r.run_id: "the newest of its strategy × symbol" for r in results if r.run_id in newest}
    keep_curve.update({r.run_id: "tagged ntrader/keep" for r in results if r.dagster_run_id in tagged})
    old = [r for r in results if r.created_at < cutoff]
    kept_old = [keep_curve[r.run_id] for r in old if r.run_id in keep_curve]
    plan.curves_kept = {why: kept_old.count(why) for why in dict.fromkeys(kept_old)}
    plan.curves = curve_rows(warehouse, [r.run_id for r in old if r.run_id not in keep_curve])
    behind_kept = {r.dagster_run_id for r in results if r.run_id in keep_curve and r.dagster_run_id}

    latest = latest_event_runs(instance, check_keys)
    reasons = {
        "holding a latest materialization or check": latest,
        "tagged ntrader/keep": tagged,
        "behind a kept result": behind_kept,
    }
    counts = dict.fromkeys(reasons, 0)
    for record in instance.get_run_records(RunsFilter(statuses=FINISHED, updated_before=cutoff)):
        run_id = record.dagster_run.run_id
        ended = record.end_time or record.update_timestamp.timestamp()
        if ended >= cutoff.timestamp():
            continue
        why = next((name for name, ids in reasons.items() if run_id in ids), None)
        if why is None:
            plan.runs.append(run_id)
        else:
            counts[why] += 1
    plan.runs_kept = counts
    return plan


def apply_prune(
    instance: DagsterInstance,
    warehouse: Warehouse,
    plan: PrunePlan,
    write_reports: Callable[[str], object] | None = None,
) -> None:
    """Delete what ``plan`` lists: the curves first (one transaction), then each Dagster run.

    ``write_reports(run_id)`` first writes the report folder a backfill deferred (the tearsheet
    needs the curve), so every result keeps a folder."""
    if write_reports is not None:
        for run_id in plan.curves:
            write_reports(run_id)
    delete_curves(warehouse, list(plan.curves))
    for run_id in plan.runs:
        instance.delete_run(run_id)


def latest_event_runs(instance: DagsterInstance, check_keys: Iterable) -> set[str]:
    """Runs holding the latest materialization of an asset (partition) or the latest execution of
    an asset check (partition)."""
    runs: set[str] = set()
    for key in instance.get_asset_keys():
        storage_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
            key, DagsterEventType.ASSET_MATERIALIZATION
        )
        if storage_ids:
            ids = list(storage_ids.values())
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, storage_ids=ids), limit=len(ids)
            ).records
            runs |= {r.run_id for r in records}
        event = instance.get_latest_materialization_event(AssetKey(key.path))
        if event is not None:
            runs.add(event.run_id)
    check_keys = list(check_keys)
    if check_keys:
        runs |= {
            info.latest_planned_run_id for info in instance.event_log_storage.get_asset_check_partition_info(check_keys)
        }
        for record in instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys).values():
            runs.add(record.run_id)
    return runs


def keep(instance: DagsterInstance, warehouse: Warehouse, ids: Iterable[str]) -> list[str]:
    """Tag the Dagster runs named (directly, or by a stored result's run id) ``ntrader/keep``."""
    tagged = []
    for run_id in ids:
        dagster_run_id = run_id if instance.get_run_by_id(run_id) is not None else None
        if dagster_run_id is None:
            record = warehouse.get_run(run_id)
            if record is None or not record.dagster_run_id:
                raise ValueError(
                    f"no Dagster run or stored result with id {run_id!r} (see `ntrader backtest list-results`)"
                )
            dagster_run_id = record.dagster_run_id
            if instance.get_run_by_id(dagster_run_id) is None:
                raise ValueError(f"the Dagster run {dagster_run_id} of result {run_id} was deleted already")
        instance.add_run_tags(dagster_run_id, {KEEP_TAG: "true"})
        tagged.append(dagster_run_id)
    return tagged

"""The asset graph as committed JSON: a change to an asset's key, deps, partitions, automation,
checks (and whether they block), jobs, schedules or sensors shows up as a reviewed diff.

After an intended change, write the new snapshot and commit it with the change:

    NTRADER_UPDATE_SNAPSHOTS=1 uv run pytest -n 0 ntrader_pipeline_tests/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from dagster import (
    AutomationCondition,
    Definitions,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
)

from ntrader_pipeline.definitions import build_definitions

SNAPSHOT = Path(__file__).with_name("asset_graph.json")
UPDATE_SWITCH = "NTRADER_UPDATE_SNAPSHOTS"


def partitions(definition: PartitionsDefinition | None) -> Any:
    if definition is None:
        return None
    if isinstance(definition, MultiPartitionsDefinition):
        return {"multi": {d.name: partitions(d.partitions_def) for d in definition.partitions_defs}}
    if isinstance(definition, DynamicPartitionsDefinition):
        return {"dynamic": definition.name}
    if isinstance(definition, StaticPartitionsDefinition):
        return {"static": definition.get_partition_keys()}
    return {type(definition).__name__: str(definition)}


def labels(condition: AutomationCondition) -> list[str]:
    """The labels in a condition's tree, depth first: what the UI names its parts."""
    own = [condition.get_label()] if condition.get_label() else []
    return own + [label for child in condition.children for label in labels(child)]


def automation(condition: AutomationCondition | None) -> Any:
    return None if condition is None else {"root": condition.name, "labels": labels(condition)}


def graph_snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    checks: dict[str, list[dict[str, Any]]] = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), []).append(
            {"name": key.name, "blocking": bool(graph.get_check_spec(key).blocking)}
        )
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "automation": automation(node.automation_condition),
            "checks": sorted(checks.get(key.to_user_string(), []), key=lambda c: c["name"]),
        }
    jobs = {
        job.name: {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "partitions": partitions(job.partitions_def),
        }
        for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone}
        for s in sorted(defs.schedules, key=lambda s: s.name)
    }
    sensors = {}
    for sensor in sorted(defs.sensors, key=lambda s: s.name):
        selection = getattr(sensor, "asset_selection", None)
        sensors[sensor.name] = {
            "type": type(sensor).__name__,
            "interval_seconds": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
            "jobs": sorted(t.job_name for t in sensor.targets),
            "assets": sorted(k.to_user_string() for k in selection.resolve(graph)) if selection else [],
        }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_the_asset_graph_is_the_committed_snapshot(ntrader_home):
    text = json.dumps(graph_snapshot(build_definitions(ntrader_home)), indent=2) + "\n"
    if os.environ.get(UPDATE_SWITCH) == "1":
        SNAPSHOT.write_text(text)
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(difflib.unified_diff(committed.splitlines(True), text.splitlines(True), "committed", "now"))
    assert not diff, f"the asset graph changed; if that is intended, rerun with {UPDATE_SWITCH}=1 and commit:\n{diff}"

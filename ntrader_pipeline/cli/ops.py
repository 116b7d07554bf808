"""``ntrader ops``: keep the instance and the warehouse from growing without end."""

from __future__ import annotations

import click

from ntrader_pipeline.cli.common import console, open_pipeline, open_warehouse


@click.group()
def ops() -> None:
    """Operate the deployment: prune old runs and equity curves, pin results to keep."""


@ops.command("prune")
@click.option("--older-than", "older_than", required=True, help="Age of what may go: 90d, 12h or 2w.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def prune(older_than: str, dry_run: bool) -> None:
    """Delete Dagster runs finished before the cutoff (with their event logs) and the equity curves of
    stored results older than it, keeping what a user keeps: runs holding the latest materialization
    or check of an asset, runs tagged ntrader/keep, and the newest result of every strategy × symbol
    (see docs/operations.md)."""
    from ntrader_pipeline.retention import apply_prune, parse_age, plan_prune

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    pipeline = open_pipeline()
    warehouse = open_warehouse()
    check_keys = pipeline.defs.get_repository_def().asset_graph.asset_check_keys
    plan = plan_prune(pipeline.instance, warehouse, check_keys, age)
    if not dry_run:
        apply_prune(pipeline.instance, warehouse, plan, pipeline.write_reports)
    for line in plan.describe(done=not dry_run):
        console.print(line)


@ops.command("keep")
@click.argument("ids", nargs=-1, required=True)
def keep(ids: tuple[str, ...]) -> None:
    """Tag runs ntrader/keep so prune never deletes them or their results' equity curves. IDS are
    Dagster run ids or stored result ids (a result's Dagster run is tagged, with all its results)."""
    from ntrader_pipeline.retention import keep as keep_runs

    for run_id in keep_runs(open_pipeline().instance, open_warehouse(), ids):
        console.print(f"kept: Dagster run {run_id}")

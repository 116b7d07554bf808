"""The research domain's definitions: sweeps (one set, or all of them) and walk-forward, with a job each."""

from __future__ import annotations

from dagster import Definitions, MultiPartitionsDefinition, define_asset_job

from ntrader_pipeline.defs.research.assets import build_research_assets

SWEEP_JOB = "sweep_job"
SWEEP_SET_JOB = "sweep_set_job"
WALK_FORWARD_JOB = "walk_forward_job"


def build_research_definitions(partitions: MultiPartitionsDefinition) -> Definitions:
    sweep_set, sweep_results, walk_forward = build_research_assets(partitions)
    return Definitions(
        assets=[sweep_set, sweep_results, walk_forward],
        jobs=[
            define_asset_job(SWEEP_JOB, selection=[sweep_results]),
            define_asset_job(SWEEP_SET_JOB, selection=[sweep_set]),
            define_asset_job(WALK_FORWARD_JOB, selection=[walk_forward]),
        ],
    )

"""The analytics domain's definitions: the leaderboard."""

from __future__ import annotations

from dagster import Definitions

from ntrader_pipeline.defs.analytics.assets import leaderboard


def build_analytics_definitions() -> Definitions:
    return Definitions(assets=[leaderboard])

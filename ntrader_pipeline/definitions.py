"""The Dagster code location: ``dagster dev`` (via workspace.yaml) and the CLI both load ``defs``.

Each domain under ``defs/`` builds its own ``Definitions``; this module merges them and holds
only what crosses domains: the warning filters, the stores resource, the executor and the
sensor that re-runs backtests and the leaderboard together.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning, PreviewWarning

# Set before the domains are imported: some of their definitions warn as their modules load.
# MultiToSingleDimensionPartitionMapping (backtest <- bars of its symbol) is beta; it is the
# documented way to map a multi-partition onto one of its dimensions.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*MultiToSingleDimensionPartitionMapping.*")
# Partitioned asset checks are a preview feature; they are what makes a failed check block only
# the backtests of *that* symbol.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")
# Evaluating on_new_bars in our code server (it has a condition of our own) is a beta parameter;
# it is the documented way to run custom conditions.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*use_user_code_server.*")

from dagster import (  # noqa: E402
    AssetsDefinition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    in_process_executor,
)

from ntrader_pipeline.core.strategy_specs import load_specs  # noqa: E402
from ntrader_pipeline.defs.analytics.definitions import build_analytics_definitions  # noqa: E402
from ntrader_pipeline.defs.backtests.definitions import BACKTEST_JOB, build_backtest_definitions  # noqa: E402
from ntrader_pipeline.defs.ibkr.definitions import build_ibkr_definitions  # noqa: E402
from ntrader_pipeline.defs.market_data.definitions import INGEST_JOB, build_market_data_definitions  # noqa: E402
from ntrader_pipeline.defs.partitions import backtest_partitions  # noqa: E402
from ntrader_pipeline.defs.research.definitions import (  # noqa: E402
    SWEEP_JOB,
    SWEEP_SET_JOB,
    WALK_FORWARD_JOB,
    build_research_definitions,
)
from ntrader_pipeline.defs.resources import PipelineStores  # noqa: E402
from ntrader_pipeline.settings import Settings, get_settings  # noqa: E402

__all__ = ["BACKTEST_JOB", "INGEST_JOB", "SWEEP_JOB", "SWEEP_SET_JOB", "WALK_FORWARD_JOB", "build_definitions", "defs"]


def build_definitions(settings: Settings) -> Definitions:
    # pydantic alone: checking each ``config:`` block against its class would import NautilusTrader
    # (seconds, ~300 MB) into every UI, daemon and run process; each run checks its own file.
    specs = load_specs(settings.strategy_configs_dir, check_config=False)
    if not specs:
        raise ValueError(f"no strategy YAML files in {settings.strategy_configs_dir}")
    partitions = backtest_partitions(list(specs))
    timeframes = {name: spec.backtest.timeframe for name, spec in specs.items()}
    backtests = build_backtest_definitions(settings, partitions, timeframes)
    analytics = build_analytics_definitions()
    shared = Definitions(
        sensors=[backtests_refresh_sensor([*_assets(backtests), *_assets(analytics)], settings)],
        resources={"stores": PipelineStores.from_settings(settings)},
        # A run launched by the UI, a sensor or a backfill runs all its steps in its one process:
        # the default multiprocess executor would pay the ~5 s import of Dagster and
        # NautilusTrader again for every step of a sub-second backtest.
        executor=in_process_executor,
    )
    return Definitions.merge(
        build_market_data_definitions(settings),
        backtests,
        build_research_definitions(partitions),
        analytics,
        build_ibkr_definitions(),
        shared,
    )


def backtests_refresh_sensor(
    targets: list[AssetsDefinition], settings: Settings
) -> AutomationConditionSensorDefinition:
    """Evaluates the automation conditions of the backtests (``on_new_bars``: eager, gated on the
    bars' blocking checks) and of the leaderboard, so new bars of a symbol re-run that symbol's
    backtests and then the leaderboard. It starts running; it can be stopped in the UI."""
    return AutomationConditionSensorDefinition(
        "backtests_refresh_sensor",
        target=targets,
        minimum_interval_seconds=settings.automation_sensor_interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Re-runs a symbol's backtests after its bars were re-imported and passed their checks.",
        use_user_code_server=True,  # on_new_bars has a condition of our own, evaluated in our code
    )


def _assets(definitions: Definitions) -> list[AssetsDefinition]:
    return [a for a in definitions.assets or [] if isinstance(a, AssetsDefinition)]


defs = build_definitions(get_settings())

"""What tests and benchmarks share: the sample data and repository paths, a private settings home,
free ports, a real S3-API server (``support.s3``) and fresh Postgres databases
(``support.databases``). Benchmarks import this package, never a ``conftest``."""

from ntrader_pipeline_tests.support.data import (
    AAPL_MINUTE,
    NVDA_DAILY,
    ORCL_DAILY,
    REPO_ROOT,
    STRATEGY_CONFIGS,
)
from ntrader_pipeline_tests.support.network import free_port
from ntrader_pipeline_tests.support.settings import point_settings_at

__all__ = [
    "AAPL_MINUTE",
    "NVDA_DAILY",
    "ORCL_DAILY",
    "REPO_ROOT",
    "STRATEGY_CONFIGS",
    "free_port",
    "point_settings_at",
]

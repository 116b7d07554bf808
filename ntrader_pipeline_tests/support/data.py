"""Where the repository's strategies and the bundled sample bars are, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

from ntrader_pipeline.settings import SAMPLE_DATA_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
STRATEGY_CONFIGS = REPO_ROOT / "strategy_configs"
ORCL_DAILY = SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv"
NVDA_DAILY = SAMPLE_DATA_DIR / "NVDA_1999-2014_daily_yahoo.csv"
AAPL_MINUTE = SAMPLE_DATA_DIR / "AAPL_2024-01-02_1min.csv"  # one bar's open is above its high, on purpose

"""Where ntrader keeps its state, read once from the environment (prefix ``NTRADER_``) or ``.env``.

Everything lives under one state folder, ``NTRADER_HOME`` (default ``.ntrader`` in the working
directory), unless a setting points a part elsewhere. With no settings at all the pipeline runs
embedded: a SQLite warehouse, a Dagster home, a Parquet catalog and the reports, side by side.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ntrader_pipeline.core.inbox import DEFAULT_SYMBOL_PATTERN
from ntrader_pipeline.core.paths import DEFAULT_MAX_CSV_BYTES

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DATA_DIR = PACKAGE_DIR / "sample_data"
# Partitions per run of a backfill, unless NTRADER_BACKTESTS_PER_RUN says otherwise. A run launched
# by the daemon on one machine starts a process that imports Dagster and NautilusTrader (~5-8 s
# here), more than 10 daily-bar backtests cost; larger batches amortize it further but show their
# materializations later (at the end of the run). On a pool of warm workers a run starts in about a
# second, and batches must be small enough to give every worker a run (scale mode: 10). Dagster cuts a
# backfill into ranges of one strategy (or one symbol, whichever has fewer keys) first.
DEFAULT_BACKTESTS_PER_RUN = 50


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NTRADER_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".ntrader"), description="State folder holding every default below.")
    warehouse_url: str | None = Field(
        None, description="SQLAlchemy URL of the warehouse; SQLite under home when unset."
    )
    catalog_path: Path | None = Field(None, description="NautilusTrader Parquet catalog folder.")
    reports_dir: Path | None = Field(None, description="Where per-run reports are written.")
    dagster_home: Path | None = Field(
        None, description="Dagster instance folder shared by the CLI and `dagster dev`; "
        "default: $DAGSTER_HOME if set, else <home>/dagster."
    )
    strategy_configs_dir: Path = Field(
        Path("strategy_configs"), description="Folder of strategy YAML files, one per partition."
    )
    inbox_dir: Path | None = Field(None, description="Drop folder watched by the CSV sensor.")
    inbox_symbol_pattern: str = Field(
        DEFAULT_SYMBOL_PATTERN, description="Regex with a `symbol` group, matched against inbox file names."
    )
    inbox_sensor_interval: int = Field(
        30, ge=1, description="Seconds between ticks of the inbox sensor and of the two sensors filing its files."
    )
    automation_sensor_interval: int = Field(
        30, ge=1, description="Seconds between evaluations of the backtests' automation conditions."
    )
    backtests_per_run: int = Field(
        DEFAULT_BACKTESTS_PER_RUN, ge=1, description="Backtest partitions per run of a backfill (BackfillPolicy.multi_run); "
        "smaller batches spread a sweep over more workers, larger ones pay a run's start-up fewer times.",
    )
    venue: str = Field("XNAS", description="Venue every imported equity is placed on.")
    max_csv_bytes: int = Field(
        DEFAULT_MAX_CSV_BYTES, gt=0, description="Larger CSV files are refused before they are read."
    )
    strategy_module_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Module prefixes (comma-separated) a YAML's strategy_path/config_path may import from.",
    )

    @field_validator("strategy_module_allowlist", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_warehouse_url(self) -> str:
        return self.warehouse_url or f"sqlite:///{self.home_dir / 'warehouse.sqlite'}"

    @property
    def resolved_catalog_path(self) -> Path:
        return (self.catalog_path or self.home_dir / "catalog").expanduser().resolve()

    @property
    def resolved_reports_dir(self) -> Path:
        return (self.reports_dir or self.home_dir / "reports").expanduser().resolve()

    @property
    def resolved_dagster_home(self) -> Path:
        """NTRADER_DAGSTER_HOME, else an already exported DAGSTER_HOME, else ``<home>/dagster``."""
        chosen = self.dagster_home or os.environ.get("DAGSTER_HOME") or self.home_dir / "dagster"
        return Path(chosen).expanduser().resolve()

    @property
    def resolved_inbox_dir(self) -> Path:
        return (self.inbox_dir or self.home_dir / "inbox").expanduser().resolve()


def get_settings() -> Settings:
    """Fresh settings from the current environment (tests change it between calls)."""
    return Settings()

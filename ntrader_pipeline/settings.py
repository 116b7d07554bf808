"""Where ntrader keeps its state, read once from the environment (prefix ``NTRADER_``) or ``.env``.

Everything lives under one state folder, ``NTRADER_HOME`` (default ``.ntrader`` in the working
directory), unless a setting points a part elsewhere. With no settings at all the pipeline runs
embedded: a SQLite warehouse, a Dagster home, a Parquet catalog and the reports, side by side.
The catalog and the reports may instead live on object storage (``s3://`` URLs, ``NTRADER_S3_*``).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ntrader_pipeline.adapters.object_store import S3Options, is_remote, local_path
from ntrader_pipeline.adapters.stores import Stores
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
    catalog_path: str | None = Field(
        None, description="NautilusTrader Parquet catalog: a folder, or an S3-API URL (s3://bucket/prefix)."
    )
    reports_dir: str | None = Field(
        None, description="Where per-run reports are written: a folder, or an S3-API URL (s3://bucket/prefix)."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-API server for s3:// locations (MinIO, moto...); unset: AWS."
    )
    s3_region: str | None = Field(None, description="Region of the s3:// bucket(s).")
    s3_access_key_id: str | None = Field(None, description="Access key id for s3:// locations (secret).")
    s3_secret_access_key: str | None = Field(None, description="Secret access key for s3:// locations (secret).")
    dagster_home: Path | None = Field(
        None,
        description="Dagster instance folder shared by the CLI and `dagster dev`; "
        "default: $DAGSTER_HOME if set, else <home>/dagster.",
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
        DEFAULT_BACKTESTS_PER_RUN,
        ge=1,
        description="Backtest partitions per run of a backfill (BackfillPolicy.multi_run); "
        "smaller batches spread a sweep over more workers, larger ones pay a run's start-up fewer times.",
    )
    research_processes: int | None = Field(
        None, ge=1, description="Worker processes a sweep or walk-forward runs its sets on; default: one per core."
    )
    venue: str = Field("XNAS", description="Venue every imported equity is placed on.")
    max_csv_bytes: int = Field(
        DEFAULT_MAX_CSV_BYTES, gt=0, description="Larger CSV files are refused before they are read."
    )
    db_retries: int = Field(
        5,
        ge=0,
        description="Retries of a database transaction after a transient failure "
        "(dropped connection, restart, serialization failure).",
    )
    db_retry_backoff: float = Field(0.5, ge=0, description="Seconds before the first retry, doubled each time.")
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
    def catalog_location(self) -> str:
        """The catalog: an ``s3://`` URL as given, else the absolute folder."""
        return _location(self.catalog_path, self.home_dir / "catalog")

    @property
    def reports_location(self) -> str:
        """Where reports go: an ``s3://`` URL as given, else the absolute folder."""
        return _location(self.reports_dir, self.home_dir / "reports")

    @property
    def resolved_catalog_path(self) -> Path:
        """The catalog folder, for code that needs a local one (refused when it is on object storage)."""
        return _local(self.catalog_location, "NTRADER_CATALOG_PATH")

    @property
    def resolved_reports_dir(self) -> Path:
        """The reports folder, for code that needs a local one (refused when it is on object storage)."""
        return _local(self.reports_location, "NTRADER_REPORTS_DIR")

    def s3_options(self) -> S3Options:
        return S3Options(self.s3_endpoint_url, self.s3_region, self.s3_access_key_id, self.s3_secret_access_key)

    def stores(self) -> Stores:
        """The catalog, warehouse and reports these settings name (opened when first used)."""
        return Stores(
            self.resolved_warehouse_url,
            self.catalog_location,
            self.reports_location,
            self.venue,
            self.s3_options(),
            self.db_retries,
            self.db_retry_backoff,
        )

    @property
    def resolved_dagster_home(self) -> Path:
        """NTRADER_DAGSTER_HOME, else an already exported DAGSTER_HOME, else ``<home>/dagster``."""
        chosen = self.dagster_home or os.environ.get("DAGSTER_HOME") or self.home_dir / "dagster"
        return Path(chosen).expanduser().resolve()

    @property
    def resolved_inbox_dir(self) -> Path:
        return (self.inbox_dir or self.home_dir / "inbox").expanduser().resolve()


def _location(value: str | None, default: Path) -> str:
    if value and is_remote(value):
        return value.rstrip("/")
    return str(local_path(value or default))


def _local(location: str, variable: str) -> Path:
    if is_remote(location):
        raise ValueError(f"{variable} is {location}, not a local folder")
    return Path(location)


def get_settings() -> Settings:
    """Fresh settings from the current environment (tests change it between calls)."""
    return Settings()

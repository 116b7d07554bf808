"""Run the pipeline's Dagster jobs in this process, on the instance the web UI shows.

The CLI and the benchmarks come through here, so a command-line import or backtest is the same
Dagster run a click in the UI would make, recorded in the same instance. Running in-process avoids
paying the ~5 s import of Dagster and NautilusTrader once per partition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions
from dagster._core.errors import DagsterAssetCheckFailedError

from ntrader_pipeline.adapters.locks import file_lock
from ntrader_pipeline.core.backtest import bars_to_trade
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.definitions import BACKTEST_JOB, INGEST_JOB, build_definitions
from ntrader_pipeline.defs.partitions import (
    FILE_STRATEGY_KEY,
    backtest_key,
    drop_symbol_without_bars,
    symbol_partitions,
)
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import Settings, get_settings

# The CLI reports a failed run as one line (PipelineError); Dagster's ERROR log would add a traceback.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

INSTANCE_YAML = """\
# Dagster instance of the embedded ntrader setup (edit freely). ntrader writes this file into a
# new home; the repository ships a copy in .ntrader/dagster, so a plain `dagster dev` with the
# DAGSTER_HOME of .env.example finds its instance before any ntrader command ran. Paths follow
# DAGSTER_HOME, so the file works wherever the folder is.
# Events go to one SQLite file instead of Dagster's default of one new database per run, which
# cost about half a second per backtest partition here (see bench/backtest_overhead.py).
# Runs launched from the UI each start a fresh Python process (~5 s of imports): two at a time is
# what two cores take; `ntrader backtest backfill` runs many partitions in one process instead.
# Only one run at a time may talk to the IB Gateway (pool `ibkr`, the one pool the assets use).
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 600  # a busy two-core machine can need minutes to start a run process
  free_slots_after_run_end_seconds: 300
code_servers:
  local_startup_timeout: 600
# A run the daemon cannot hand to a busy code server within gRPC's deadline is retried, not failed.
run_queue:
  max_user_code_failure_retries: 3
  user_code_failure_retry_delay: 30
event_log_storage:
  module: dagster.core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir:
      env: DAGSTER_HOME
telemetry:
  enabled: false
"""


class PipelineError(RuntimeError):
    """A user-facing reason a request failed: refused before any run (unknown strategy or symbol),
    or bars stored but a blocking data check then failed."""


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the shared Dagster home and point ``DAGSTER_HOME`` at it.

    Commands started at once on a new home all get here: the settings file appears whole or not
    at all (written aside, then linked into place, which fails if another process won), so no
    process reads a half-written ``dagster.yaml`` and starts an instance with default settings.
    """
    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        draft = home / f".dagster.yaml.{os.getpid()}"
        draft.write_text(INSTANCE_YAML)
        try:
            os.link(draft, target)
        except FileExistsError:
            pass  # another command created it first, with the same settings
        finally:
            draft.unlink()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance(settings: Settings) -> DagsterInstance:
    """The shared instance; one process at a time opens it, since the first opening of a new home
    creates its SQLite storages and stamps their schema versions."""
    home = prepare_dagster_home(settings)
    with file_lock(home / ".open.lock"):
        return DagsterInstance.get()


@dataclass
class Pipeline:
    settings: Settings
    instance: DagsterInstance
    defs: Definitions

    @classmethod
    def open(cls, settings: Settings | None = None, instance: DagsterInstance | None = None) -> Pipeline:
        settings = settings or get_settings()
        if instance is None:
            instance = open_instance(settings)
        return cls(settings, instance, build_definitions(settings))

    def _execute(self, job_name: str, partition_key: str, run_config: dict) -> Any:
        """One in-process Dagster run; an asset's own exception propagates as it was raised."""
        try:
            return self.defs.resolve_job_def(job_name).execute_in_process(
                instance=self.instance,
                partition_key=partition_key,
                run_config={**run_config, **QUIET_LOGS},
            )
        except DagsterAssetCheckFailedError as exc:  # the write happened; a blocking check then failed
            failed = " ".join(str(exc).split(":", 1)[-1].split())
            raise PipelineError(
                f"{partition_key}: stored, but blocking data checks failed ({failed}); "
                "its backtests will not run until this is fixed (details: the checks in the UI)"
            ) from exc

    def strategy_names(self) -> list[str]:
        """The strategy partition keys that name a file in strategy_configs (not ``_file``)."""
        partitions = self.defs.resolve_job_def(BACKTEST_JOB).partitions_def
        keys = partitions.get_partitions_def_for_dimension("strategy").get_partition_keys()
        return [key for key in keys if key != FILE_STRATEGY_KEY]

    def symbols(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(symbol_partitions.name))

    @property
    def stores(self) -> PipelineStores:
        return PipelineStores.from_settings(self.settings)

    def add_symbols(self, symbols: list[str]) -> list[str]:
        """Add the symbols that are not partitions yet; returns those."""
        existing = set(self.instance.get_dynamic_partitions(symbol_partitions.name))
        new = [s for s in symbols if s not in existing]
        if new:
            self.instance.add_dynamic_partitions(symbol_partitions.name, new)
        return new

    def import_csv(
        self,
        file: str | Path,
        symbol: str,
        timeframe: str | None = None,
        timezone: str = "America/New_York",
        *,
        on_invalid: str = "reject",
        adjusted: bool = False,
    ) -> dict[str, Any]:
        """Import a CSV for ``symbol`` (a new symbol becomes a partition); returns what was stored.

        A new symbol whose file is rejected loses its partition again (nothing was stored).
        """
        symbol = symbol.upper()
        added = self.add_symbols([symbol])
        config = {
            "file": str(Path(file).resolve()),
            "timeframe": timeframe,
            "timezone": timezone,
            "on_invalid": on_invalid,
            "adjusted": adjusted,
        }
        try:
            result = self._execute(INGEST_JOB, symbol, {"ops": {"csv_bars": {"config": config}}})
        except Exception:
            if added:
                drop_symbol_without_bars(self.instance, self.stores.catalog(), symbol)
            raise
        materialization = result.asset_materializations_for_node("csv_bars")[0]
        return {key: value.value for key, value in materialization.metadata.items()}

    def run_backtest(
        self,
        strategy: str,
        symbol: str,
        start: date | None = None,
        end: date | None = None,
        timeframe: str | None = None,
        spec_path: str | Path | None = None,
    ) -> dict[str, Any]:
        """Materialize one backtest partition and what derives from it; returns its metrics.

        With ``spec_path`` the YAML file runs on the ``_file`` strategy partition instead.
        """
        symbol = symbol.upper()
        strategies = self.strategy_names()
        if spec_path is not None:
            strategy = FILE_STRATEGY_KEY
        elif strategy not in strategies:
            raise PipelineError(f"unknown strategy {strategy!r}; strategy files: {', '.join(strategies)}")
        if symbol not in self.instance.get_dynamic_partitions(symbol_partitions.name):
            raise PipelineError(f"no bars imported for {symbol}; run `ntrader data import-csv` first")
        self._refuse_what_cannot_run(strategy, symbol, start, end, timeframe, spec_path)
        config = {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "timeframe": timeframe,
            "spec_path": str(Path(spec_path).resolve()) if spec_path is not None else None,
        }
        result = self._execute(BACKTEST_JOB, backtest_key(strategy, symbol), {"ops": {"backtest": {"config": config}}})
        return result.output_for_node("backtest_metrics")

    def _refuse_what_cannot_run(
        self, strategy: str, symbol: str, start: date | None, end: date | None,
        timeframe: str | None, spec_path: str | Path | None,
    ) -> None:
        """Refuse a backtest whose run could only fail (no bars to trade), before any run starts.

        A run that fails on bad input would mark its partition failed in the UI, as if the stored
        data or the strategy were broken.
        """
        stores = self.stores
        spec = load_spec(spec_path if spec_path is not None else stores.strategy_file(strategy))
        interval = Timeframe.parse(timeframe) if timeframe else spec.backtest.timeframe
        series = stores.catalog().read(symbol, interval)
        if series is None:
            raise PipelineError(f"the catalog has no {interval.value} bars for {symbol}; import them first")
        try:
            bars_to_trade(series, spec, start, end)
        except ValueError as exc:
            raise PipelineError(str(exc)) from None

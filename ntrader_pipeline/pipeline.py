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

from dagster import DagsterEventType, DagsterInstance, Definitions
from dagster._core.errors import DagsterAssetCheckFailedError

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.definitions import BACKTEST_JOB, INGEST_JOB, build_definitions
from ntrader_pipeline.defs.ibkr.assets import IBKR_JOB, NO_RETRY_TAG, IbkrGateway
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY, backtest_key, symbol_partitions
from ntrader_pipeline.settings import Settings, get_settings

# The CLI reports a failed run as one line (PipelineError); Dagster's ERROR log would add a traceback.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

INSTANCE_YAML = """\
# Dagster instance of the embedded ntrader setup (written by ntrader; edit freely).
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
  free_slots_after_run_end_seconds: 300
event_log_storage:
  module: dagster.core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {home}/history
telemetry:
  enabled: false
"""


class PipelineError(RuntimeError):
    """A user-facing reason a request failed: refused before any run (unknown strategy or symbol),
    or bars stored but a blocking data check then failed."""


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the shared Dagster home and point ``DAGSTER_HOME`` at it."""
    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(INSTANCE_YAML.format(home=home))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class IbkrRunFailed(PipelineError):
    """An IBKR fetch run failed; ``summary`` holds what it did per symbol (may be empty)."""

    def __init__(self, message: str, summary: list[dict[str, Any]]):
        super().__init__(message)
        self.summary = summary


@dataclass
class Pipeline:
    settings: Settings
    instance: DagsterInstance
    defs: Definitions

    @classmethod
    def open(cls, settings: Settings | None = None, instance: DagsterInstance | None = None) -> Pipeline:
        settings = settings or get_settings()
        if instance is None:
            prepare_dagster_home(settings)
            instance = DagsterInstance.get()
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

    def add_symbols(self, symbols: list[str]) -> None:
        existing = set(self.instance.get_dynamic_partitions(symbol_partitions.name))
        new = [s for s in symbols if s not in existing]
        if new:
            self.instance.add_dynamic_partitions(symbol_partitions.name, new)

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
        """Import a CSV for ``symbol`` (a new symbol becomes a partition); returns what was stored."""
        symbol = symbol.upper()
        self.add_symbols([symbol])
        config = {
            "file": str(Path(file).resolve()),
            "timeframe": timeframe,
            "timezone": timezone,
            "on_invalid": on_invalid,
            "adjusted": adjusted,
        }
        result = self._execute(INGEST_JOB, symbol, {"ops": {"csv_bars": {"config": config}}})
        materialization = result.asset_materializations_for_node("csv_bars")[0]
        return {key: value.value for key, value in materialization.metadata.items()}

    def fetch_ibkr(
        self, symbols: list[str], start: date, end: date, timeframe: str, gateway: IbkrSettings | None = None
    ) -> list[dict[str, Any]]:
        """Run ``ibkr_ingest_job`` for these symbols (its checks included); returns the per-symbol summary.

        ``gateway`` replaces the ``ibkr`` resource's settings (the CLI's --host, --port...).
        Raises ``IbkrRunFailed`` with every failed symbol's reason, or a blocking check's failure.
        """
        config = {"symbols": symbols, "timeframe": timeframe, "start": start.isoformat(), "end": end.isoformat()}
        run_config: dict[str, Any] = {"ops": {"ibkr_bars": {"config": config}}, **QUIET_LOGS}
        if gateway is not None:
            run_config["resources"] = {"ibkr": {"config": IbkrGateway.config_from_settings(gateway)}}
        result = self.defs.resolve_job_def(IBKR_JOB).execute_in_process(
            instance=self.instance, run_config=run_config, raise_on_error=False, tags={NO_RETRY_TAG: "1"}
        )
        summary: list[dict[str, Any]] = []
        for materialization in result.asset_materializations_for_node("ibkr_bars"):
            summary = materialization.metadata["symbols"].value
        failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        if not failures:
            return summary
        event = failures[0]
        data = event.step_failure_data
        if event.step_key == "ibkr_bars" and data.user_failure_data is not None:
            symbols_meta = data.user_failure_data.metadata.get("symbols")
            raise IbkrRunFailed(data.user_failure_data.description, symbols_meta.value if symbols_meta else summary)
        message = " ".join(data.error.message.split()) if data.error else "the run failed"
        if event.step_key != "ibkr_bars":  # the bars were stored; a blocking check then failed
            raise IbkrRunFailed(
                f"stored, but blocking data checks failed ({message}); details: the checks of ibkr_bars in the UI",
                summary,
            )
        raise IbkrRunFailed(message.split(": ", 1)[-1], summary)

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
        config = {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "timeframe": timeframe,
            "spec_path": str(Path(spec_path).resolve()) if spec_path is not None else None,
        }
        result = self._execute(BACKTEST_JOB, backtest_key(strategy, symbol), {"ops": {"backtest": {"config": config}}})
        return result.output_for_node("backtest_metrics")

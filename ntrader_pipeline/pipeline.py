"""Run the pipeline's Dagster jobs in this process, on the instance the web UI shows.

The CLI and the benchmarks come through here, so a command-line import or backtest is the same
Dagster run a click in the UI would make, recorded in the same instance. Running in-process avoids
paying the ~5 s import of Dagster and NautilusTrader once per partition.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    MetadataValue,
    MultiPartitionsDefinition,
)
from dagster._core.errors import DagsterAssetCheckFailedError

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.adapters.locks import file_lock
from ntrader_pipeline.adapters.run_processes import cli_run_tags, fail_dead_runs
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.metric_registry import Metrics
from ntrader_pipeline.core.paths import MAX_SPEC_BYTES, read_regular_file
from ntrader_pipeline.core.quoting import clipped, excerpt
from ntrader_pipeline.core.records import Backtested, Failed, NotApplicable, PartitionOutcome
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.core.symbols import parse_symbol, parse_symbols
from ntrader_pipeline.definitions import (
    BACKTEST_JOB,
    INGEST_JOB,
    SWEEP_JOB,
    WALK_FORWARD_JOB,
    build_definitions,
)
from ntrader_pipeline.defs.ibkr.assets import IBKR_JOB, NO_RETRY_TAG, IbkrGateway
from ntrader_pipeline.defs.partitions import (
    FILE_STRATEGY_KEY,
    SYMBOLS,
    backtest_key,
    drop_orphan_symbols,
    drop_symbol_without_bars,
)
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import Settings, get_settings

log = logging.getLogger("ntrader_pipeline.runs")

# The CLI reports a failed run as one line (PipelineError); Dagster's ERROR log would add a traceback.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

INSTANCE_YAML = """\
# Dagster instance of the embedded ntrader setup (edit freely). ntrader writes this file into a
# new home; the repository ships a copy in .ntrader/dagster, so a plain `dagster dev` with the
# DAGSTER_HOME of .env.example finds its instance before any ntrader command ran. Paths follow
# DAGSTER_HOME, so the file works wherever the folder is.
# Events go to one SQLite file instead of Dagster's default of one new database per run, which
# cost about half a second per backtest partition here (see bench/backtest_overhead.py).
# Runs launched from the UI each start a fresh Python process (seconds of imports): two at a time is
# what two cores take; a backfill puts up to 50 backtest partitions in one run to pay that once.
# Only one run at a time may talk to the IB Gateway (pool `ibkr`, the one pool the assets use).
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
# A run whose process is gone (killed with the daemon or the command that ran it) is failed, not
# left STARTED holding a run slot: this launcher (Dagster's default) tells run monitoring whether a
# run's process lives (ntrader_pipeline/adapters/run_processes.py); every ntrader command checks too.
run_launcher:
  module: ntrader_pipeline.adapters.run_processes
  class: ProcessCheckedRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 600  # a busy two-core machine can need minutes to start a run process
  poll_interval_seconds: 30  # how often each running run's process is checked
  max_resume_run_attempts: 0  # a run is never resumed in place: its retry is a new run
  free_slots_after_run_end_seconds: 300
# A run failed because its process died (not because an asset failed) runs again, once. Runs of
# the ntrader command are never retried (the person who started one saw it die).
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
# Sensor ticks (the inbox and automation sensors tick every 30 s) are purged after these days; the
# daemon does it. Old runs, their event logs and old equity curves: `ntrader ops prune`.
retention:
  schedule:
    purge_after_days: 90
  sensor:
    purge_after_days: {skipped: 1, failure: 30, success: 30, started: 30}
  auto_materialize:
    purge_after_days: {skipped: 1, failure: 30, success: 30, started: 30}
code_servers:
  local_startup_timeout: 600
# A run the daemon cannot hand to a busy code server within gRPC's deadline is retried, not failed.
run_queue:
  max_user_code_failure_retries: 3
  user_code_failure_retry_delay: 30
# One SQLite file for every run's events, each batch of asset events written in one transaction
# (a backfill run writes 8 per backtest partition): ntrader_pipeline/adapters/event_log.py.
event_log_storage:
  module: ntrader_pipeline.adapters.event_log
  class: BatchedSqliteEventLogStorage
  config:
    base_dir:
      env: DAGSTER_HOME
telemetry:
  enabled: false
"""


def strategy_file_config(path: str | Path) -> dict[str, str]:
    """A strategy file as the run config carries it (``StrategyFile``): its name and its text, so
    the run needs no file wherever it executes."""
    path = Path(path)
    raw = read_regular_file(path, MAX_SPEC_BYTES, "strategy file")
    return {"name": path.stem, "yaml": raw.decode("utf-8")}


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


class IbkrRunFailed(PipelineError):
    """An IBKR fetch run failed; ``summary`` holds what it did per symbol (may be empty)."""

    def __init__(self, message: str, summary: list[dict[str, Any]]):
        super().__init__(message)
        self.summary = summary


def _failure_reasons(result: Any) -> tuple[dict[str, str], str]:
    """Why a backtest run's partitions failed: ``failed`` (partition key → reason) from the step's
    ``Failure`` metadata when some of a batch failed, and the one reason for every other partition
    (the exception that stopped the step)."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is None:
        return {}, "the run failed"
    data = failure.step_failure_data
    if data.user_failure_data is not None and "failed" in data.user_failure_data.metadata:
        return dict(data.user_failure_data.metadata["failed"].value), data.user_failure_data.description or "failed"
    error = data.error
    message = (error.cause or error).message if error else ""
    return {}, message.splitlines()[0] if message else "the run failed"


def _check_detail(metadata: Mapping[str, Any]) -> str:
    """A failed check's summary and the examples its metadata lists (``missing_examples``...)."""
    text = str(metadata["summary"].value) if "summary" in metadata else "failed"
    for key, value in metadata.items():
        if key.endswith("examples") and value.value:
            text += f"; {key.replace('_', ' ')}: {', '.join(str(v) for v in value.value)}"
    return text


def _not_applicable_in(result: Any) -> dict[str, str]:
    """Partition key → reason, for the backtest partitions a run observed as not applicable."""
    found = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation
            if "not_applicable" in observation.metadata:
                found[observation.partition] = str(observation.metadata["not_applicable"].value)
    return found


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
        pipeline = cls(settings, instance, build_definitions(settings))
        pipeline.settle_dead_runs()
        return pipeline

    def settle_dead_runs(self) -> None:
        """Fail this host's runs whose process is gone (a command killed with -9, a restarted
        container) and drop the partitions their killed first imports left, before this command
        runs anything (``adapters.run_processes``; the daemon's run monitoring does the same)."""
        for run in fail_dead_runs(self.instance):
            log.warning("run %s (%s) had lost its process: marked failed", run.run_id, run.job_name)
        for symbol in drop_orphan_symbols(self.instance, lambda: self.stores.catalog()):
            log.warning("%s had no bars left by its killed import: its partition was removed", symbol)

    def _execute(self, job_name: str, partition_key: str, run_config: dict) -> Any:
        """One in-process Dagster run; an asset's own exception propagates as it was raised."""
        run_id = str(uuid.uuid4())
        try:
            return self.defs.resolve_job_def(job_name).execute_in_process(
                instance=self.instance,
                partition_key=partition_key,
                run_config={**run_config, **QUIET_LOGS},
                run_id=run_id,
                tags=cli_run_tags(),
            )
        except DagsterAssetCheckFailedError as exc:  # the write happened; a blocking check then failed
            names, details = self._failed_checks(run_id)
            raise PipelineError(
                f"{partition_key}: stored, but blocking data checks failed ({names}); "
                "its backtests will not run until this is fixed" + "".join(f"\n  {line}" for line in details)
            ) from exc

    def _failed_checks(self, run_id: str) -> tuple[str, list[str]]:
        """``asset: check,check`` of the blocking checks that failed in a run, read from its events,
        and one line per failed check: its summary and examples (what the UI shows of it)."""
        records = self.instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        ).records
        failed: dict[str, list[str]] = {}
        details = []
        for record in records:
            event = record.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event else None
            if not isinstance(evaluation, AssetCheckEvaluation):
                continue
            if not evaluation.passed and evaluation.blocking and evaluation.severity == AssetCheckSeverity.ERROR:
                asset = evaluation.asset_key.to_user_string()
                failed.setdefault(asset, []).append(evaluation.check_name)
                details.append(f"{asset} {evaluation.check_name}: {_check_detail(evaluation.metadata)}")
        return "; ".join(f"{asset}: {','.join(names)}" for asset, names in failed.items()), details

    def strategy_names(self) -> list[str]:
        """The strategy partition keys that name a file in strategy_configs (not ``_file``)."""
        partitions = self.defs.resolve_job_def(BACKTEST_JOB).partitions_def
        if not isinstance(partitions, MultiPartitionsDefinition):
            raise TypeError(f"{BACKTEST_JOB} is not partitioned by strategy and symbol")
        keys = partitions.get_partitions_def_for_dimension("strategy").get_partition_keys()
        return [key for key in keys if key != FILE_STRATEGY_KEY]

    def symbols(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(SYMBOLS))

    @property
    def stores(self) -> PipelineStores:
        return PipelineStores.from_settings(self.settings)

    def add_symbols(self, symbols: list[str]) -> list[str]:
        """Add the symbols that are not partitions yet (all checked against the symbol grammar first); returns those."""
        symbols = parse_symbols(symbols)
        existing = set(self.instance.get_dynamic_partitions(SYMBOLS))
        new = [s for s in symbols if s not in existing]
        if new:
            self.instance.add_dynamic_partitions(SYMBOLS, new)
        return new

    def import_csv(
        self,
        file: str | Path,
        symbol: str,
        timeframe: str | None = None,
        timezone: str | None = None,
        *,
        on_invalid: str = "reject",
        adjusted: bool = False,
        calendar: str | None = None,
    ) -> dict[str, Any]:
        """Import a CSV for ``symbol`` (a new symbol becomes a partition); returns what was stored.

        ``calendar``: the series' exchange calendar (default: the symbol's stored one, else XNYS);
        ``timezone`` of naive timestamps: default the calendar's.

        A new symbol whose file is rejected loses its partition again (nothing was stored).
        """
        symbol = parse_symbol(symbol)
        added = self.add_symbols([symbol])
        config = {
            "file": str(Path(file).resolve()),
            "timeframe": timeframe,
            "timezone": timezone,
            "on_invalid": on_invalid,
            "adjusted": adjusted,
            "calendar": calendar,
        }
        try:
            result = self._execute(INGEST_JOB, symbol, {"ops": {"csv_bars": {"config": config}}})
        except Exception:
            if added:
                drop_symbol_without_bars(self.instance, self.stores.catalog(), symbol)
            raise
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
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
            tags={NO_RETRY_TAG: "1", **cli_run_tags()},
        )
        summary: list[dict[str, Any]] = []
        for materialization in result.asset_materializations_for_node("ibkr_bars"):
            summary = _symbol_rows(materialization.metadata.get("symbols"))
        failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        if not failures:
            return summary
        event = failures[0]
        data = event.step_failure_data
        if event.step_key == "ibkr_bars" and data.user_failure_data is not None:
            symbols_meta = data.user_failure_data.metadata.get("symbols")
            raise IbkrRunFailed(
                data.user_failure_data.description or "the IB fetch failed",
                _symbol_rows(symbols_meta) if symbols_meta else summary,
            )
        message = clipped(" ".join(data.error.message.split())) if data.error else "the run failed"
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
    ) -> Metrics:
        """Materialize one backtest partition and what derives from it; returns its metrics.

        With ``spec_path`` the YAML file runs on the ``_file`` strategy partition instead.
        """
        symbol = parse_symbol(symbol)
        strategies = self.strategy_names()
        if spec_path is not None:
            strategy = FILE_STRATEGY_KEY
        elif strategy not in strategies:
            raise PipelineError(f"unknown strategy '{excerpt(strategy)}'; strategy files: {', '.join(strategies)}")
        if symbol not in self.instance.get_dynamic_partitions(SYMBOLS):
            raise PipelineError(f"no bars imported for {symbol}; run `ntrader data import-csv` first")
        self._refuse_what_cannot_run(strategy, symbol, start, end, timeframe, spec_path)
        config = {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "timeframe": timeframe,
            "spec_file": strategy_file_config(spec_path) if spec_path is not None else None,
        }
        key = backtest_key(strategy, symbol)
        result = self._execute(BACKTEST_JOB, key, {"ops": {"backtest": {"config": config}}})
        return self.stored_metrics(result)[key]

    def _refuse_what_cannot_run(
        self,
        strategy: str,
        symbol: str,
        start: date | None,
        end: date | None,
        timeframe: str | None,
        spec_path: str | Path | None,
    ) -> None:
        """Refuse a backtest whose run could only fail (no bars to trade), before any run starts.

        A run that fails on bad input would mark its partition failed in the UI, as if the stored
        data or the strategy were broken.
        """
        from ntrader_pipeline.core.backtest import bars_to_trade

        stores = self.stores
        spec = load_spec(spec_path if spec_path is not None else stores.strategy_file(strategy))
        interval = Timeframe.parse(timeframe) if timeframe else spec.backtest.timeframe
        catalog = stores.catalog()
        series = catalog.read(symbol, interval)
        if series is None:
            held = [tf.value for tf in Timeframe if catalog.bar_files(symbol, tf)]
            if held:  # the partition is not applicable: say what would run
                raise PipelineError(
                    f"not applicable: {symbol} has no {interval.value} bars, only {', '.join(held)}; "
                    f"import {interval.value} bars or run with --timeframe {held[0]}"
                )
            raise PipelineError(f"the catalog has no {interval.value} bars for {symbol}; import them first")
        try:
            bars_to_trade(series, spec, start, end)
        except ValueError as exc:
            raise PipelineError(clipped(exc)) from None

    def backfill_shares(self, strategies: list[str], symbols: list[str], shares: int) -> list[tuple[str, list[str]]]:
        """Strategy × symbol work cut into pieces for ``shares`` processes: each strategy's symbols in
        partition order, cut into about ``shares`` runs of consecutive partitions, so each piece
        still makes ``run_backtests``' batches."""
        known = {s: i for i, s in enumerate(self.instance.get_dynamic_partitions(SYMBOLS))}
        ordered = sorted(symbols, key=lambda s: (known.get(s, len(known)), s))
        size = max(1, min(-(-len(ordered) // shares), self.settings.backtests_per_run))
        return [(strategy, ordered[i : i + size]) for strategy in strategies for i in range(0, len(ordered), size)]

    def run_backtests(
        self, strategy: str, symbols: list[str], start: date | None = None, end: date | None = None
    ) -> dict[str, PartitionOutcome]:
        """Materialize ``strategy`` on many symbols, in the runs a UI backfill would make: ranges of
        consecutive symbol partitions, at most ``backtests_per_run`` (setting) each, so a run's fixed
        cost is paid once per batch. Returns each symbol's metrics, or why it failed; a symbol without
        bars at the strategy's interval is not applicable and not requested."""
        from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

        if strategy not in self.strategy_names():
            reason = f"unknown strategy '{excerpt(strategy)}'; strategy files: {', '.join(self.strategy_names())}"
            return {symbol: Failed(reason) for symbol in symbols}
        known = list(self.instance.get_dynamic_partitions(SYMBOLS))  # the partitions' order
        outcome: dict[str, PartitionOutcome] = {
            s: Failed(f"no bars imported for {s}; run `ntrader data import-csv` first")
            for s in symbols
            if s not in known
        }
        outcome.update(self._not_applicable(strategy, [s for s in symbols if s in known]))
        wanted = sorted({known.index(s) for s in symbols if s in known and s not in outcome})
        batches: list[list[int]] = []
        for index in wanted:
            if batches and batches[-1][-1] == index - 1 and len(batches[-1]) < self.settings.backtests_per_run:
                batches[-1].append(index)
            else:
                batches.append([index])
        config = {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
        for batch in batches:
            keys = [backtest_key(strategy, known[i]) for i in batch]
            result = self.defs.resolve_job_def(BACKTEST_JOB).execute_in_process(
                instance=self.instance,
                raise_on_error=False,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: keys[0],
                    ASSET_PARTITION_RANGE_END_TAG: keys[-1],
                    **cli_run_tags(),
                },
                run_config={"ops": {"backtest": {"config": config}}, **QUIET_LOGS},
            )
            stored = self.stored_metrics(result)
            reasons, reason = _failure_reasons(result)
            skipped = _not_applicable_in(result)
            for key, index in zip(keys, batch, strict=True):
                done = stored.get(key)
                if done is not None:
                    outcome[known[index]] = Backtested(done)
                elif key in skipped:
                    outcome[known[index]] = NotApplicable(skipped[key])
                else:
                    outcome[known[index]] = Failed(clipped(reasons.get(key, reason)))
        return {symbol: outcome[symbol] for symbol in symbols}

    def _not_applicable(self, strategy: str, symbols: list[str]) -> dict[str, NotApplicable]:
        """The symbols with bars, but none at ``strategy``'s interval: partitions that could only fail."""
        interval = load_spec(self.stores.strategy_file(strategy)).backtest.timeframe
        catalog = self.stores.catalog()
        return {
            s: NotApplicable(f"not applicable: {s} has no {interval.value} bars")
            for s in symbols
            if not catalog.bar_files(s, interval) and any(catalog.bar_files(s, tf) for tf in Timeframe)
        }

    def stored_metrics(self, result: Any) -> dict[str, Metrics]:
        """The metrics of every backtest partition a run materialized, as the warehouse holds them."""
        warehouse = self.stores.warehouse()
        records = self.instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100_000
        ).records  # from the instance: a failed batch's successes are logged events, not step outputs
        materializations = [m for r in records if (m := r.event_log_entry.asset_materialization) is not None]
        return {
            m.partition: warehouse.get_metrics(str(m.metadata["run_id"].value))
            for m in materializations
            if m.asset_key.to_user_string() == "backtest_metrics" and m.partition is not None
        }

    def _file_partition(self, spec_path: str | Path) -> tuple[str, dict[str, str] | None]:
        """A file in strategy_configs runs on its own strategy partition; any other on ``_file``
        with its text in the run config."""
        path = Path(spec_path).resolve()
        own = path == (Path(self.settings.strategy_configs_dir) / f"{path.stem}.yaml").resolve()
        if own and path.stem in self.strategy_names():
            return path.stem, None
        return FILE_STRATEGY_KEY, strategy_file_config(path)

    def _research(self, job: str, asset: str, spec_path: str | Path, symbol: str, config: dict) -> dict[str, Any]:
        symbol = parse_symbol(symbol)
        if symbol not in self.instance.get_dynamic_partitions(SYMBOLS):
            raise PipelineError(f"no bars imported for {symbol}; run `ntrader data import-csv` first")
        strategy, spec_file = self._file_partition(spec_path)
        run_config = {"ops": {asset: {"config": {**config, "spec_file": spec_file}}}}
        return self._execute(job, backtest_key(strategy, symbol), run_config).output_for_node(asset)

    def run_sweep(
        self,
        spec_path: str | Path,
        symbol: str,
        metric: str | None = None,
        start: date | None = None,
        end: date | None = None,
        processes: int | None = None,
    ) -> dict[str, Any]:
        """Every parameter set of the file's ``sweep:`` on ``symbol`` in one Dagster run, on ``processes``
        workers (default: the setting, else one per core); returns the ranked sets with DSR and PBO
        (the ``sweep_results`` output)."""
        config = {
            "metric": metric,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "processes": processes,
        }
        return self._research(SWEEP_JOB, "sweep_results", spec_path, symbol, config)

    def tearsheet_url(self, run_id: str, write: bool = True) -> str:
        """The HTML page of a run a user opens: a local path, or an ``s3://`` URL. With ``write``
        the run's report folder is written first if its backfill deferred it."""
        from ntrader_pipeline.core.reports import REPORT_FILES

        if write:
            self.write_reports(run_id)
        return self.stores.reports().url(f"{run_id}/{REPORT_FILES['html']}")

    def write_reports(self, run_id: str) -> bool:
        """Write a stored run's report folder if it has none yet (see ``results.write_stored_reports``)."""
        from ntrader_pipeline.adapters.warehouse.results import write_stored_reports

        return write_stored_reports(self.stores.stores(), run_id)

    def research_report_url(self, strategy: str, symbol: str, name: str) -> str:
        """Where a strategy's sweep or walk-forward page (``name``) on ``symbol`` was written."""
        from ntrader_pipeline.defs.research.assets import sweep_report_prefix

        return self.stores.reports().url(f"{sweep_report_prefix(strategy, symbol)}/{name}")

    def run_walk_forward(self, spec_path: str | Path, symbol: str, processes: int | None = None) -> dict[str, Any]:
        """The file's ``walk_forward:`` on ``symbol``; returns the windows and the stitched result."""
        return self._research(WALK_FORWARD_JOB, "walk_forward", spec_path, symbol, {"processes": processes})


def _symbol_rows(value: MetadataValue | None) -> list[dict[str, Any]]:
    """The per-symbol summary ``ibkr_bars`` records (JSON metadata: one object per symbol)."""
    rows = value.value if value is not None else None
    return [dict(row) for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

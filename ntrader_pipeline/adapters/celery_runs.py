"""Dagster runs on a pool of Celery workers: dagster-celery's ``CeleryRunLauncher`` plus what a
pool of warm workers needs from it.

The daemon's queued runs go to the broker as whole-run tasks; each worker executes a run in its own
(warm) process. On top of dagster-celery this module adds:

- one set of Celery settings shared by the launcher and the workers (``CELERY_SETTINGS``);
- the worker's name on each run it executes (tag ``ntrader/worker``), so the UI shows where it ran;
- asset events written in batches (``event_log.enable_event_batches``): Postgres writes a backfill
  run's materializations of one asset in one statement;
- a health check that notices a dead worker. dagster-celery reads the task's state from the result
  backend, which says STARTED forever after its worker was killed; run monitoring would never fail
  the run and ``run_retries`` would never relaunch it. Here a STARTED task's worker must also
  answer a ping; one that misses ``MISSED_PINGS_TO_FAIL`` in a row is reported failed.

Nothing here is imported when the code location loads: only the instance (daemon, webserver) and
``ntrader worker`` import it.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._cli.api import _execute_run_command_body
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import unpack_value
from dagster_celery.config import DEFAULT_CONFIG, TASK_EXECUTE_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.make_app import make_app
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

from ntrader_pipeline.adapters.event_log import enable_event_batches

enable_event_batches()  # every process that opens the scale instance loads this launcher

QUEUE = "dagster"  # dagster-celery routes every run task to this queue
WORKER_TAG = "ntrader/worker"
BROKER_URL_VAR = "NTRADER_CELERY_BROKER_URL"
BACKEND_URL_VAR = "NTRADER_CELERY_BACKEND_URL"
PING_TIMEOUT_SECONDS = 10.0
MISSED_PINGS_TO_FAIL = 2  # one health check per run-monitoring poll: a busy host may miss one ping

CELERY_SETTINGS: dict[str, Any] = {
    **DEFAULT_CONFIG,
    # A worker takes a run only when it has a free process: with prefetching, a busy worker would
    # hold a second run while another worker idles (Redis brokers only; ignored on RabbitMQ).
    "worker_prefetch_multiplier": 1,
    "worker_disable_prefetch": True,
    # The task is acknowledged as it starts (Celery's default), so the broker never hands a dead
    # worker's run to another worker: Dagster's run_retries is the one way a run is run again.
    "task_acks_late": False,
    "task_track_started": True,  # a STARTED task records its worker's name, which the health check pings
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}


def celery_app(broker: str, backend: str) -> Celery:
    """The workers' Celery app: dagster-celery's, with this module's settings and run task."""
    app = make_app(
        app_args={
            "broker": broker,
            "backend": backend,
            "include": [],
            "config_source": CELERY_SETTINGS,
            "task_default_queue": QUEUE,
        }
    )

    @app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
    def execute_job(task, execute_job_args_packed) -> int:
        """dagster-celery's run task, which also tags the run with the worker executing it."""
        args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
        with DagsterInstance.get() as instance:
            run = instance.get_run_by_id(args.run_id)
            # Dagster refuses to execute a run that is past STARTING (one already failed and
            # retried, say); only tag a run this worker will really execute.
            if run is not None and run.status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING):
                instance.add_run_tags(args.run_id, {WORKER_TAG: task.request.hostname})
            return _execute_run_command_body(
                instance=instance,
                run_id=args.run_id,
                write_stream_fn=lambda _event: None,
                set_exit_code_on_failure=args.set_exit_code_on_failure is not False,
            )

    create_resume_job_task(app)
    return app


class WorkerCheckedCeleryRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` whose health check also fails a run whose worker no longer answers."""

    def __init__(self, default_queue: str, config_source: dict | None = None, **kwargs: Any) -> None:
        super().__init__(
            default_queue=default_queue, config_source={**CELERY_SETTINGS, **(config_source or {})}, **kwargs
        )
        self._missed_pings: dict[str, int] = {}  # run id -> consecutive missed pings (this daemon's memory)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if DAGSTER_CELERY_TASK_ID_TAG not in run.tags:  # a run the CLI executes in its own process
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not executed by a worker")
        health = super().check_run_worker_health(run)
        if health.status != WorkerStatus.RUNNING:
            self._missed_pings.pop(run.run_id, None)
            return health
        info = self.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG]).info
        worker = info.get("hostname") if isinstance(info, dict) else None
        if not worker:
            return health
        if self.celery.control.ping(destination=[worker], timeout=PING_TIMEOUT_SECONDS):
            self._missed_pings.pop(run.run_id, None)
            return health
        missed = self._missed_pings[run.run_id] = self._missed_pings.get(run.run_id, 0) + 1
        if missed < MISSED_PINGS_TO_FAIL:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker {worker} missed a ping")
        self._missed_pings.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"worker {worker} does not answer ({missed} pings of {PING_TIMEOUT_SECONDS:.0f} s missed)",
        )

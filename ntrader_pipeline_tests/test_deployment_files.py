"""The deployment files hold what users rely on: local-only ports, a working Postgres instance config."""

from __future__ import annotations

import re
import shutil

import yaml
from dagster import DagsterInstance, asset, materialize

from ntrader_pipeline_tests.support import REPO_ROOT
from ntrader_pipeline_tests.support.databases import set_deployment_postgres_env


def test_compose_publishes_ports_on_loopback_only_and_gateway_under_a_profile():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "dagster-webserver", "dagster-daemon", "ib-gateway"} <= set(services)
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(str(port).startswith("127.0.0.1:") for port in published)
    assert services["ib-gateway"]["profiles"] == ["ibkr"]
    example = (REPO_ROOT / ".env.example").read_text()
    for variable in ("POSTGRES_PASSWORD", "TWS_USERID", "TWS_PASSWORD"):
        assert f"{variable}=" in example


COMPOSE = REPO_ROOT / "docker-compose.yml"
DAGSTER_SERVICES = ("dagster-webserver", "dagster-daemon")


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_variable_compose_uses_is_documented_in_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE.read_text()))  # $${X} is the container's own
    example = (REPO_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert {"POSTGRES_PASSWORD", "IB_GATEWAY_NETWORK_PORT", "NTRADER_UID"} <= used
    assert used - documented == set()


def test_dagster_containers_run_as_a_user_that_owns_what_they_write():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    [user] = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert user not in ("root", "0")
    assert re.search(rf"chown -R {user}:{user} /data /opt/dagster", dockerfile)
    services = compose_services()
    for name in DAGSTER_SERVICES:
        assert services[name].get("user", user) not in ("root", "0", "0:0"), name
        assert services[name]["build"]["args"] == {"UID": "${NTRADER_UID:-1000}", "GID": "${NTRADER_GID:-1000}"}


def test_webserver_has_a_healthcheck_on_server_info():
    check = compose_services()["dagster-webserver"]["healthcheck"]
    assert "/server_info" in " ".join(check["test"])
    assert check["retries"] >= 1


def test_inbox_and_reports_are_host_folders_the_containers_use():
    for name in DAGSTER_SERVICES:
        service = compose_services()[name]
        mounts = dict(volume.split(":")[:2] for volume in service["volumes"])
        assert mounts["./data/inbox"] == service["environment"]["NTRADER_INBOX_DIR"] == "/data/inbox"
        # the embedded mode's default; the scale profile's .env points it at the bucket instead
        assert service["environment"]["NTRADER_REPORTS_DIR"] == "${NTRADER_REPORTS_DIR:-/data/reports}"
        assert mounts["./data/reports"] == "/data/reports"


def test_deployment_dagster_yaml_runs_a_real_run_on_postgres(postgres_url, tmp_path, monkeypatch):
    """The repo-root dagster.yaml, with the variables docker-compose sets, on a real Postgres."""
    set_deployment_postgres_env(postgres_url, monkeypatch)
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.get_runs() == []
        # Opening is not enough: the event log's NOTIFY fails on the first event under psycopg 3.
        result = materialize([_probe], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(_probe.key) is not None
    finally:
        instance.dispose()


@asset
def _probe() -> int:
    return 1


def test_instances_give_a_busy_host_time_to_start_runs(ntrader_home, postgres_url, tmp_path, monkeypatch):
    """Under load a launch RPC passes its 60 s deadline and a run process takes minutes to start:
    the daemon must retry the hand-over and wait, not fail the run."""
    from ntrader_pipeline.pipeline import prepare_dagster_home

    set_deployment_postgres_env(postgres_url, monkeypatch)
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    for home in (tmp_path, prepare_dagster_home(ntrader_home)):
        instance = DagsterInstance.from_config(str(home))
        try:
            queue = instance.get_concurrency_config().run_queue_config
            assert queue.max_user_code_failure_retries >= 3, home
            assert queue.max_concurrent_runs == 2
            assert instance.run_monitoring_start_timeout_seconds >= 600
            assert instance.code_server_process_startup_timeout >= 600
        finally:
            instance.dispose()


SCALE_SERVICES = ("redis", "minio", "minio-bucket", "worker")


def test_the_scale_profile_adds_a_broker_object_storage_and_a_scalable_non_root_worker():
    compose = COMPOSE.read_text()
    services = compose_services()
    for name in SCALE_SERVICES:
        assert services[name]["profiles"] == ["scale"], name
        assert services[name].get("user", "ntrader") not in ("root", "0", "0:0"), name
    worker = services["worker"]
    assert worker["command"] == ["ntrader", "worker"]
    assert "ports" not in worker and "container_name" not in worker  # `--scale worker=N` needs both absent
    assert worker["build"]["args"] == services["dagster-daemon"]["build"]["args"]  # the image's plain user
    assert set(worker["depends_on"]) == {"postgres", "redis", "minio-bucket"}  # the bucket exists before a run
    # Every Dagster process reads the instance file .env chooses: the embedded one unless told otherwise.
    for name in (*DAGSTER_SERVICES, "worker"):
        assert "${NTRADER_INSTANCE_FILE:-./dagster.yaml}:/opt/dagster/home/dagster.yaml:ro" in services[name]["volumes"]
    assert "NTRADER_INSTANCE_FILE=./deploy/dagster.scale.yaml" in (REPO_ROOT / ".env.example").read_text()
    assert "--profile scale up -d --scale worker=" in compose


def test_the_scale_worker_environment_passes_the_worker_checks(tmp_path):
    """What compose gives a worker, with .env's variables filled in and the scale instance file."""
    from ntrader_pipeline.cli.worker import missing_worker_settings

    shutil.copy(REPO_ROOT / "deploy" / "dagster.scale.yaml", tmp_path / "dagster.yaml")

    def filled(value: str) -> str:  # ${X:-default} as its default, any other ${X} as "x"
        return re.sub(
            r"\$\{[A-Z0-9_]+(?::-([^}]*))?[^}]*\}", lambda m: m.group(1) if m.group(1) is not None else "x", value
        )

    environment = {k: filled(str(v)) for k, v in compose_services()["worker"]["environment"].items()}
    assert missing_worker_settings({**environment, "DAGSTER_HOME": str(tmp_path)}) == []


def test_scale_instance_file_loads_on_postgres_with_workers_monitoring_and_retries(postgres_url, tmp_path, monkeypatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator

    from ntrader_pipeline.adapters.celery_runs import WorkerCheckedCeleryRunLauncher

    set_deployment_postgres_env(postgres_url, monkeypatch)
    for name, value in {
        "NTRADER_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "NTRADER_CELERY_BACKEND_URL": "redis://127.0.0.1:6379/0",
        "NTRADER_MAX_CONCURRENT_RUNS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.scale.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert isinstance(instance.run_launcher, WorkerCheckedCeleryRunLauncher)
        assert instance.run_launcher.broker == "redis://127.0.0.1:6379/0"
        assert instance.run_launcher.celery.conf.worker_disable_prefetch is True
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 3
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # `ibkr`: one run at a time
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
    finally:
        instance.dispose()

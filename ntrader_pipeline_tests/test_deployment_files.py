"""The deployment files hold what users rely on: local-only ports, a working Postgres instance config."""

from __future__ import annotations

import shutil

import yaml
from dagster import DagsterInstance, asset, materialize

from ntrader_pipeline_tests.conftest import REPO_ROOT


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


def test_deployment_dagster_yaml_runs_a_real_run_on_postgres(postgres_url, tmp_path, monkeypatch):
    """The repo-root dagster.yaml, with the variables docker-compose sets, on a real Postgres."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    for key, value in {
        "DAGSTER_POSTGRES_HOST": url.host, "DAGSTER_POSTGRES_PORT": str(url.port),
        "DAGSTER_POSTGRES_USER": url.username, "DAGSTER_POSTGRES_PASSWORD": url.password or "",
        "DAGSTER_POSTGRES_DB": url.database,
    }.items():
        monkeypatch.setenv(key, value)
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
    from sqlalchemy.engine import make_url

    from ntrader_pipeline.pipeline import prepare_dagster_home

    url = make_url(postgres_url)
    for key, value in {"DAGSTER_POSTGRES_HOST": url.host, "DAGSTER_POSTGRES_PORT": str(url.port),
                       "DAGSTER_POSTGRES_USER": url.username, "DAGSTER_POSTGRES_PASSWORD": url.password or "",
                       "DAGSTER_POSTGRES_DB": url.database}.items():
        monkeypatch.setenv(key, value)
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

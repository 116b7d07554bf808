"""``ntrader worker`` refuses to start, naming each missing setting, where it would not share its
results (and so would write a private SQLite warehouse or catalog under a relative folder)."""

from __future__ import annotations

import shutil

from click.testing import CliRunner

from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.cli.worker import missing_worker_settings
from ntrader_pipeline_tests.support import REPO_ROOT, STRATEGY_CONFIGS

SCALE_INSTANCE = REPO_ROOT / "deploy" / "dagster.scale.yaml"


def shared_settings(dagster_home) -> dict[str, str]:
    return {
        "NTRADER_WAREHOUSE_URL": "postgresql+psycopg://ntrader@db:5432/ntrader",
        "DAGSTER_HOME": str(dagster_home),
        "NTRADER_CELERY_BROKER_URL": "redis://redis:6379/0",
        "NTRADER_CELERY_BACKEND_URL": "redis://redis:6379/1",
        "NTRADER_CATALOG_PATH": "/data/ntrader/catalog",
        "NTRADER_REPORTS_DIR": "s3://bucket/reports",
        "NTRADER_STRATEGY_CONFIGS_DIR": str(STRATEGY_CONFIGS),
        "NTRADER_MAX_CONCURRENT_RUNS": "4",
        **{f"DAGSTER_POSTGRES_{part}": "x" for part in ("HOST", "PORT", "USER", "DB")},
        "DAGSTER_POSTGRES_PASSWORD": "",  # trust authentication: empty is a value
    }


def test_a_worker_without_settings_refuses_and_names_each_one(ntrader_home):
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code == 1
    for name in (
        "NTRADER_WAREHOUSE_URL",
        "DAGSTER_HOME",
        "NTRADER_CELERY_BROKER_URL",
        "NTRADER_CELERY_BACKEND_URL",
        "NTRADER_CATALOG_PATH",
        "NTRADER_REPORTS_DIR",
    ):
        assert f"{name} is not set" in result.output
    assert not (ntrader_home.home_dir / "warehouse.sqlite").exists()


def test_the_scale_settings_pass_and_each_local_one_is_named(tmp_path):
    shutil.copy(SCALE_INSTANCE, tmp_path / "dagster.yaml")
    env = shared_settings(tmp_path)
    assert missing_worker_settings(env) == []
    local = {**env, "NTRADER_WAREHOUSE_URL": "sqlite:///w.sqlite", "NTRADER_CATALOG_PATH": ".ntrader/catalog"}
    problems = missing_worker_settings(local)
    assert len(problems) == 2
    assert "NTRADER_WAREHOUSE_URL is SQLite" in problems[0] and "relative path" in problems[1]
    unread = {k: v for k, v in env.items() if k not in ("NTRADER_MAX_CONCURRENT_RUNS", "NTRADER_STRATEGY_CONFIGS_DIR")}
    (tmp_path / "empty").mkdir()
    assert missing_worker_settings({**unread, "NTRADER_STRATEGY_CONFIGS_DIR": str(tmp_path / "empty")}) == [
        f"NTRADER_MAX_CONCURRENT_RUNS is not set (read by {tmp_path / 'dagster.yaml'})",
        f"NTRADER_STRATEGY_CONFIGS_DIR: no strategy files in {tmp_path / 'empty'}",
    ]


def test_an_instance_that_runs_in_place_or_on_sqlite_is_refused(tmp_path):
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")  # Postgres, but runs start in the daemon
    assert missing_worker_settings(shared_settings(tmp_path)) == [
        f"DAGSTER_HOME: {tmp_path / 'dagster.yaml'} does not send runs to workers (see deploy/dagster.scale.yaml)"
    ]
    shutil.copy(REPO_ROOT / ".ntrader" / "dagster" / "dagster.yaml", tmp_path / "dagster.yaml")  # the embedded one
    assert len(missing_worker_settings(shared_settings(tmp_path))) == 2

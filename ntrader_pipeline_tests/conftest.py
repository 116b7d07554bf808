"""Shared fixtures: a private ntrader home per test, real SQLite and Postgres warehouses, and a
real S3-API server (``s3_server``, one per session) with a fresh bucket per test (``s3_bucket``).

Postgres tests use ``NTRADER_TEST_POSTGRES_URL`` (default: the local server on 127.0.0.1:5432).
Each test gets its own freshly created database, dropped after it. When the server is
unreachable the tests skip with the reason, unless ``NTRADER_REQUIRE_POSTGRES=1`` (set by
``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from ntrader_pipeline.settings import Settings, get_settings

# Test files import these from ``ntrader_pipeline_tests.support``; the names stay importable from
# here until the branches written before the move have merged.
from ntrader_pipeline_tests.support import (  # noqa: F401
    AAPL_MINUTE,
    NVDA_DAILY,
    ORCL_DAILY,
    REPO_ROOT,
    STRATEGY_CONFIGS,
    point_settings_at,
)
from ntrader_pipeline_tests.support.databases import fresh_database
from ntrader_pipeline_tests.support.s3 import create_bucket, s3_environment
from ntrader_pipeline_tests.support.s3 import s3_server as run_s3_server

# Property tests explore the same examples on every run (a red CI must be reproducible), and
# no example has a time limit: the machines are small and shared.
hypothesis_settings.register_profile("ntrader", derandomize=True, deadline=None)
hypothesis_settings.load_profile("ntrader")

# The two tests that run whole deployments take half the suite's time. pytest runs on two
# processes (pytest-xdist, one file per unit of work, in this order): the soak starts at once on
# one, the other files fill the other around it, and the scale-out test, which wants the machine
# most, runs last.
ORDER = {"operations/test_soak.py": -1, "operations/test_scaleout.py": 1}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: ORDER.get(item.nodeid.split("::")[0].removeprefix("ntrader_pipeline_tests/"), 0))


DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def ntrader_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose every store lives under a fresh temporary home (SQLite warehouse)."""
    point_settings_at(monkeypatch, tmp_path / "home")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return get_settings()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's admin database, or a skip (a failure in CI)."""
    admin_url = make_url(os.environ.get("NTRADER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no server here"
        admin.dispose()
        reason = f"Postgres unreachable at {admin_url.render_as_string(hide_password=True)}: {exc}"
        if os.environ.get("NTRADER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    yield admin
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """URL of a fresh, empty Postgres database, dropped after the test."""
    with fresh_database(postgres_admin, "ntrader_test") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-API server (``moto_server``) for the session; its endpoint URL."""
    with run_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_server: str) -> dict[str, str]:
    """A fresh, empty bucket on ``s3_server``: the ``NTRADER_S3_*`` variables that reach it, plus
    ``"bucket"``, its name. Set the variables in the environment (monkeypatch) where ntrader runs."""
    name = f"ntrader-test-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_server, name)
    return {**s3_environment(s3_server), "bucket": name}

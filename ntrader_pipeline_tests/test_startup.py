"""What a process imports before it does anything: the code location never loads NautilusTrader,
and commands that run nothing load neither Dagster nor NautilusTrader. (How long that takes is
measured by ``bench/startup.py``, never asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ntrader_pipeline.cli.results import SORT_CHOICES
from ntrader_pipeline.core.metric_display import SORT_KEYS
from ntrader_pipeline_tests.support import REPO_ROOT

HEAVY = ("dagster", "nautilus_trader", "pandas", "sqlalchemy", "matplotlib", "s3fs", "botocore", "aiobotocore", "boto3")


def loaded_after(code: str, env: dict[str, str], heavy: tuple[str, ...] = HEAVY) -> set[str]:
    """The ``heavy`` top-level packages a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1])) & set(heavy)


def cli(*commands: list[str]) -> str:
    """Code running each command in turn in one interpreter, as ``ntrader`` would (exit 0 each)."""
    return (
        "from ntrader_pipeline.cli.main import cli\n"
        f"for args in {list(commands)!r}:\n"
        "    try:\n        cli(args, prog_name='ntrader')\n"
        "    except SystemExit as exit:\n        assert not exit.code, (args, exit.code)"
    )


def test_loading_the_code_location_imports_dagster_alone(ntrader_home):
    """Every UI, daemon, sensor and run process loads it: pandas, SQLAlchemy, the engine and any S3
    client wait for a run."""
    assert loaded_after("import ntrader_pipeline.definitions", {}) == {"dagster"}


def test_loading_a_code_location_on_object_storage_imports_dagster_alone(ntrader_home):
    """With the catalog and reports on s3:// the client (botocore, ~1 s) is still left to the runs."""
    env = {"NTRADER_CATALOG_PATH": "s3://bucket/catalog", "NTRADER_REPORTS_DIR": "s3://bucket/reports"}
    assert loaded_after("import ntrader_pipeline.definitions", env) == {"dagster"}


def test_help_imports_neither_dagster_nor_the_engine(ntrader_home):
    helps = [
        ["--help"],
        ["backtest", "--help"],
        ["backtest", "list-results", "--help"],
        ["data", "--help"],
        ["report", "--help"],
        ["strategy", "--help"],
    ]
    assert loaded_after(cli(*helps), {}) == set()


def test_commands_that_only_read_the_warehouse_skip_dagster_and_the_engine(ntrader_home):
    assert not loaded_after(cli(["backtest", "list-results"], ["data", "list"]), {}) & {"dagster", "nautilus_trader"}


def test_reading_a_current_warehouse_needs_sqlalchemy_alone(ntrader_home):
    """Once the schema is at the newest revision, listing needs no alembic (it only migrates) and no
    numpy, pandas or pyarrow (they only write bars): each costs seconds of every command's start."""
    commands = cli(["backtest", "list-results"], ["data", "list"])
    assert "alembic" in loaded_after(commands, {}, ("alembic",))  # the first command creates the schema
    assert loaded_after(commands, {}, (*HEAVY, "alembic", "numpy", "pyarrow")) == {"sqlalchemy"}


def test_the_schema_revision_the_warehouse_checks_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ntrader_pipeline.adapters.warehouse.store import MIGRATIONS
    from ntrader_pipeline.adapters.warehouse.tables import SCHEMA_REVISION

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


def test_sort_choices_of_list_results_are_the_sort_keys():
    assert SORT_CHOICES == list(SORT_KEYS)


def test_importing_the_python_api_loads_nothing_heavy(ntrader_home):
    """A notebook's first cell stays quick: pandas, SQLAlchemy, Dagster and the engine come with use."""
    assert loaded_after("import ntrader_pipeline.api", {}) == set()

"""Entry point: the command groups, and one place that turns errors into one-line reasons."""

from __future__ import annotations

import os
import sys

import click
from dotenv import load_dotenv

from ntrader_pipeline.cli import ibkr as _ibkr  # noqa: F401 - adds `data connect` and `data fetch`
from ntrader_pipeline.cli.backtest import backtest
from ntrader_pipeline.cli.data import data
from ntrader_pipeline.cli.demo import demo, ui
from ntrader_pipeline.cli.report import report
from ntrader_pipeline.cli.results import compare, list_results, reproduce
from ntrader_pipeline.cli.strategy import strategy
from ntrader_pipeline.cli.worker import worker


class NtraderGroup(click.Group):
    """Prints ``error: <reason>`` and exits 1 instead of a traceback (NTRADER_DEBUG=1 shows it)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure must exit non-zero with a reason
            if os.environ.get("NTRADER_DEBUG"):
                raise
            for line in failure_lines(exc):
                click.echo(f"error: {line}", err=True)
            sys.exit(1)


SHOWN_LINES = 40  # of one error; a reason is one line, a file's problems a few dozen
LINE_CHARS = 500


def failure_lines(exc: Exception) -> list[str]:
    """What a user reads about ``exc``: its reason, printable, bounded, never SQL or a password.

    Our own errors already quote input as excerpts; text from other libraries may quote anything
    (a cell, a SQL statement with its parameters), so its quoted values are cut to excerpts too.
    """
    from ntrader_pipeline.core.quoting import clipped, printable

    database = _database_failure(exc)
    if database is not None:
        return [database]
    text = str(exc).strip() or type(exc).__name__
    ours = type(exc).__module__.startswith("ntrader_pipeline")
    lines = [printable(line)[:LINE_CHARS] if ours else clipped(line) for line in text.splitlines() if line.strip()]
    if len(lines) > SHOWN_LINES:
        lines = [*lines[: SHOWN_LINES - 1], f"... and {len(lines) - SHOWN_LINES + 1} more lines"]
    return lines


def _database_failure(exc: Exception) -> str | None:
    """A database failure said plainly: an unreachable warehouse by host and port, a Dagster
    storage that cannot be written by its folder; the driver's first line, never the statement."""
    from ntrader_pipeline.adapters.warehouse.retry import WarehouseError, database_name, is_database_error, reason

    if isinstance(exc, WarehouseError):
        cause = exc.__cause__
        if cause is not None and _unreachable(cause):
            from ntrader_pipeline.settings import get_settings

            where = database_name(get_settings().resolved_warehouse_url)
            return f"the warehouse database is unreachable: {where} ({reason(cause)})"
        return None
    if not is_database_error(exc):
        return None
    if _raised_by_dagster(exc):
        home = os.environ.get("DAGSTER_HOME", "")
        if type(getattr(exc, "orig", exc)).__module__ == "sqlite3":
            return f"the Dagster instance storage is full or not writable: {home} ({reason(exc)})"
        return f"the Dagster instance storage failed: {home}/dagster.yaml ({reason(exc)})"
    return f"a database operation failed: {reason(exc)}"


UNREACHABLE = (
    "connection refused",
    "could not connect",
    "failed to resolve host",
    "timeout expired",
    "timed out",
    "no route to host",
)


def _unreachable(exc: BaseException) -> bool:
    """Whether the server never answered (refused, unknown host, timeout), as opposed to refusing the work."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).lower()
    return any(marker in text for marker in UNREACHABLE)


def _raised_by_dagster(exc: BaseException) -> bool:
    """Whether the failing call came from Dagster's own storage code (its instance, event log, runs)."""
    tb, owner = exc.__traceback__, ""
    while tb is not None:
        package = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if package in {"dagster", "dagster_postgres", "ntrader_pipeline"}:
            owner = package  # the deepest caller of ours or Dagster's (below: alembic, SQLAlchemy, the driver)
        tb = tb.tb_next
    return owner.startswith("dagster")


@click.group(cls=NtraderGroup)
def cli() -> None:
    """Backtest US-equity strategies with NautilusTrader, orchestrated by Dagster."""


for command in (demo, ui, data, backtest, report, strategy, worker):
    cli.add_command(command)
for command in (list_results, compare, reproduce):
    backtest.add_command(command)


def main() -> None:
    # Export .env to the environment, as Dagster's own commands do: the settings read the file
    # themselves, but Dagster reads secrets from the environment by name (defs/resources.py).
    load_dotenv(".env", override=False)
    cli(prog_name="ntrader")

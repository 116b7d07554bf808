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
from ntrader_pipeline.cli.ops import ops
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
            reason = str(exc).strip() or type(exc).__name__
            click.echo(f"error: {reason}", err=True)
            sys.exit(1)


@click.group(cls=NtraderGroup)
def cli() -> None:
    """Backtest US-equity strategies with NautilusTrader, orchestrated by Dagster."""


for command in (demo, ui, data, backtest, report, strategy, worker, ops):
    cli.add_command(command)
for command in (list_results, compare, reproduce):
    backtest.add_command(command)


def main() -> None:
    # Export .env to the environment, as Dagster's own commands do: the settings read the file
    # themselves, but Dagster reads secrets from the environment by name (defs/resources.py).
    load_dotenv(".env", override=False)
    cli(prog_name="ntrader")

"""``ntrader strategy``: discover, create and validate strategy YAML files."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from ntrader_pipeline.cli.common import console


def _registry():
    from ntrader_pipeline.core.strategies import REGISTRY  # imports NautilusTrader: only when needed

    return REGISTRY


@click.group()
def strategy() -> None:
    """List registered strategies, write YAML templates and validate YAML files."""


@strategy.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_strategies(fmt: str) -> None:
    """Registered strategies: name, description, parameters and their defaults."""
    rows = [
        {"name": entry.name, "description": entry.description, "parameters": entry.parameter_table()}
        for entry in _registry().values()
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("strategy", "description", "parameters (default)", show_lines=True)
    for row in rows:
        params = "\n".join(f"{p['name']} = {p['default']}  ({p['type']}) {p['help']}" for p in row["parameters"])
        table.add_row(row["name"], row["description"], params)
    console.print(table)


def template(name: str) -> str:
    """A YAML file for ``name`` with every parameter at its default: valid and runnable as written."""
    entry = _registry()[name]
    lines = [
        f"# {entry.description}",
        "# Validate with `ntrader strategy validate <file>`; run with",
        "# `ntrader backtest run-config <file> --symbol SYMBOL`, or copy it into strategy_configs/.",
        f"strategy: {name}",
        f"description: {name} with default parameters.",
        "config:",
    ]
    for param in entry.parameter_table():
        value = json.dumps(param["default"])
        lines.append(f"  {param['name']}: {value}  # {param['help']}")
    lines += [
        "backtest:",
        "  timeframe: DAILY",
        "  # start: 2010-01-01       # first date (default: all bars)",
        "  # end: 2014-12-31",
        "  starting_balance: 100000",
        "  fees:",
        "    model: per_share         # or zero",
        "    per_share: 0.005         # USD per share",
        "    minimum: 1.0             # USD per order",
        "    max_percent: 1.0         # at most this % of the trade value",
        "  risk: {}                   # limits, each off when absent, e.g.:",
        "  #   max_position_shares: 10000       # cut entries to this many shares",
        "  #   max_notional_per_order: 250000   # USD; larger entries are denied",
        "  #   max_drawdown_pct: 30             # flatten and halt 30% below the equity peak",
    ]
    return "\n".join(lines) + "\n"


@strategy.command("create")
@click.option("--type", "kind", required=True, help="Registered strategy (see `ntrader strategy list`).")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="YAML file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def create(kind: str, output: str, force: bool) -> None:
    """Write a template YAML for a registered strategy, with every parameter at its default."""
    registry = _registry()
    if kind not in registry:
        raise click.BadParameter(f"{kind!r} is not registered; use one of {', '.join(registry)}", param_hint="--type")
    path = Path(output)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template(kind))
    click.echo(f"wrote {path}")


@strategy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check strategy YAML files: every problem of every file in one pass, one
    `file:line:column: key: reason` a line (warnings as `file:line:column: warning: key: reason`);
    exits 1 when any file has a problem."""
    from ntrader_pipeline.core.strategy_specs import StrategySpecError, check_spec, load_spec
    from ntrader_pipeline.settings import get_settings

    allowlist = get_settings().strategy_module_allowlist
    failed, problems = 0, 0
    for file in files:
        try:
            spec = load_spec(file)
            check_spec(spec, allowlist)
        except StrategySpecError as exc:
            failed += 1
            problems += sum(not p.warning for p in exc.problems)
            for line in str(exc).splitlines():
                click.echo(line, err=True)
            continue
        for line in spec.warnings:
            click.echo(line, err=True)
        click.echo(f"ok: {file} ({spec.strategy or spec.strategy_path})")
    if failed:
        click.echo(
            f"{problems} problem{'s' if problems != 1 else ''} in {failed} of {len(files)} "
            f"file{'s' if len(files) != 1 else ''}",
            err=True,
        )
        raise click.exceptions.Exit(1)

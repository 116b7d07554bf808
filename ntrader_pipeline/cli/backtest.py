"""``ntrader backtest``: run backtests through Dagster and find their results."""

from __future__ import annotations

from pathlib import Path

import click

from ntrader_pipeline.cli.common import console, open_pipeline, parse_date, symbol_param


@click.group()
def backtest() -> None:
    """Run backtests and look at their results."""


@backtest.command("run")
@click.option("--strategy", required=True, help="Strategy file name in strategy_configs/ (without .yaml).")
@click.option("--symbol", required=True, callback=symbol_param, help="Symbol whose imported bars to trade.")
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD.")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD.")
@click.option("--timeframe", default=None, help="Bar interval (default: the strategy file's, DAILY).")
def run(strategy: str, symbol: str, start, end, timeframe: str | None) -> None:
    """Run one strategy on one symbol; prints the run id."""
    metrics = open_pipeline().run_backtest(strategy, symbol, start, end, timeframe)
    console.print(
        f"run {metrics['run_id']}: total return {metrics['total_return']:.2%}, "
        f"{metrics['trade_count']} trades"
    )
    click.echo(metrics["run_id"])


@backtest.command("backfill")
@click.option("--strategy", "strategies", multiple=True, help="Strategy to run (repeatable; default: all).")
@click.option("--symbol", "symbols", multiple=True, callback=symbol_param, help="Symbol to run (repeatable; default: all imported).")
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD.")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD.")
def backfill(strategies: tuple[str, ...], symbols: tuple[str, ...], start, end) -> None:
    """Run many strategy × symbol partitions in this one process.

    The same runs a backfill from the UI makes (up to 50 partitions of a strategy per run), without
    a fresh interpreter per run. A failed partition is reported and the others still run; exit 1 if
    any failed.
    """
    from rich.table import Table

    pipeline = open_pipeline()
    strategies = strategies or tuple(pipeline.strategy_names())
    symbols = symbols or tuple(pipeline.symbols())
    if not symbols:
        raise click.ClickException("no symbols imported yet; run `ntrader data import-csv` first")
    table = Table("strategy", "symbol", "run id", "total return", "Sharpe", "trades", "error")
    failed = 0
    for strategy in strategies:
        for symbol, m in pipeline.run_backtests(strategy, list(symbols), start, end).items():
            if isinstance(m, str):
                failed += 1
                table.add_row(strategy, symbol, "", "", "", "", m.splitlines()[0][:80])
                continue
            sharpe = "n/a" if m["sharpe_ratio"] is None else f"{m['sharpe_ratio']:.2f}"
            table.add_row(strategy, symbol, m["run_id"], f"{m['total_return']:.2%}", sharpe, str(m["trade_count"]), "")
    console.print(table)
    if failed:
        raise click.ClickException(f"{failed} of {len(strategies) * len(symbols)} partitions failed")


@backtest.command("run-config")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--symbol", required=True, callback=symbol_param, help="Symbol whose imported bars to trade.")
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD (default: the file's).")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD (default: the file's).")
def run_config(file: str, symbol: str, start, end) -> None:
    """Run one backtest from a strategy YAML file; prints the run id.

    A file in strategy_configs/ runs on its own partition (as `backtest run` does); any other file
    runs on the `_file` strategy partition. Either way the run is stored like every other.
    """
    from ntrader_pipeline.core.strategy_specs import check_spec, load_spec
    from ntrader_pipeline.settings import get_settings

    settings = get_settings()
    spec = load_spec(file)
    check_spec(spec, settings.strategy_module_allowlist)  # refuse a bad file before starting a run
    path = Path(file).resolve()
    own_partition = path == (Path(settings.strategy_configs_dir) / f"{path.stem}.yaml").resolve()
    pipeline = open_pipeline()
    metrics = pipeline.run_backtest(spec.name, symbol, start, end, spec_path=None if own_partition else path)
    console.print(
        f"run {metrics['run_id']}: {spec.name} on {symbol.upper()}, total return {metrics['total_return']:.2%}, "
        f"{metrics['trade_count']} trades"
    )
    click.echo(metrics["run_id"])

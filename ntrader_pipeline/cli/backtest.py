"""``ntrader backtest``: run backtests through Dagster and find their results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ntrader_pipeline.cli.common import console, open_pipeline, parse_date, symbol_param
from ntrader_pipeline.core.metric_registry import RANKABLE_METRICS, display, label
from ntrader_pipeline.core.records import Failed, NotApplicable, PartitionOutcome

if TYPE_CHECKING:
    from ntrader_pipeline.pipeline import Pipeline


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
    """Run one strategy on one symbol; prints its headline figures beside the benchmark's, any
    risk control that fired, the tearsheet to open, and last the run id."""
    from ntrader_pipeline.cli.outcome import print_run

    pipeline = open_pipeline()
    metrics = pipeline.run_backtest(strategy, symbol, start, end, timeframe)
    print_run(metrics, pipeline.tearsheet_url(metrics["run_id"]), _file_warnings(pipeline, strategy))
    click.echo(metrics["run_id"])


def _file_warnings(pipeline, strategy: str) -> list[str]:
    """What the strategy file's checks warn about (a file that ran has no errors)."""
    from ntrader_pipeline.core.strategy_specs import load_spec

    try:
        return load_spec(pipeline.stores.strategy_file(strategy)).warnings
    except (OSError, ValueError):
        return []


@backtest.command("backfill")
@click.option("--strategy", "strategies", multiple=True, help="Strategy to run (repeatable; default: all).")
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    callback=symbol_param,
    help="Symbol to run (repeatable; default: all imported).",
)
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD.")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD.")
@click.option(
    "--jobs",
    type=click.IntRange(1),
    default=None,
    help="Processes to run partitions in at once (default: one per core).",
)
def backfill(strategies: tuple[str, ...], symbols: tuple[str, ...], start, end, jobs: int | None) -> None:
    """Run many strategy × symbol partitions on this machine's cores.

    The same runs a backfill from the UI makes (up to 50 partitions of a strategy per run), without
    a fresh interpreter per run: each of ``--jobs`` processes starts once and runs its share. A
    failed partition is reported and the others still run; exit 1 if any failed.
    """
    pipeline = open_pipeline()
    strategies = strategies or tuple(pipeline.strategy_names())
    symbols = symbols or tuple(pipeline.symbols())
    if not symbols:
        raise click.ClickException("no symbols imported yet; run `ntrader data import-csv` first")
    from ntrader_pipeline.cli.common import showing_progress
    from ntrader_pipeline.core.progress import progress

    jobs = jobs or os.cpu_count() or 1
    shares = pipeline.backfill_shares(list(strategies), list(symbols), jobs)
    results: dict[tuple[str, str], PartitionOutcome] = {}
    with showing_progress(), progress(len(strategies) * len(symbols), "backfill") as advance:
        for strategy, outcome in _backfill_shares(pipeline, shares, start, end, jobs):
            for symbol, done in outcome.items():
                results[strategy, symbol] = done
                advance(f"{strategy}|{symbol}" + (" failed" if isinstance(done, Failed) else ""))
    from ntrader_pipeline.cli.outcome import risk_notes, say, summary_table

    everything = [(strategy, symbol, results[strategy, symbol]) for strategy in strategies for symbol in symbols]
    ordered = [(s, y, done) for s, y, done in everything if not isinstance(done, NotApplicable)]
    rows = [
        ((strategy, symbol), None, done.reason.splitlines()[0])
        if isinstance(done, Failed)
        else ((strategy, symbol), done.metrics, "")
        for strategy, symbol, done in ordered
    ]
    if ordered:
        console.print(summary_table(f"{len(ordered)} partitions", ("strategy", "symbol"), rows))
    for strategy, symbol, done in everything:
        if isinstance(done, NotApplicable):  # no run was made: nothing failed, nothing to fix
            say(f"{strategy}|{symbol}: {done.reason} (not run)")
    failed = sum(isinstance(done, Failed) for _, _, done in ordered)
    ran = [(s, y, str(done.metrics["run_id"])) for s, y, done in ordered if not isinstance(done, Failed)]
    for strategy, symbol, run_id in ran:
        for line in risk_notes(run_id):
            say(f"{strategy}|{symbol} (run {run_id}): {line}")
    if ran:
        template = pipeline.tearsheet_url("<run id>", write=False)
        say(f"tearsheet of each run: {template} (e.g. {pipeline.tearsheet_url(ran[0][2])})")
    if failed:
        raise click.ClickException(f"{failed} of {len(ordered)} partitions failed")


def _backfill_shares(pipeline, shares: list[tuple[str, list[str]]], start, end, jobs: int):
    """Each share's ``(strategy, {symbol: PartitionOutcome})``, as shares finish.

    This process, already started, runs shares itself; the other ``jobs - 1`` are fresh processes
    (spawned: no forked locks) that each start once and keep one share queued, so they never wait
    for this one.
    """
    pending = list(shares)
    spawned = min(jobs, len(shares)) - 1
    if spawned == 0:
        for strategy, symbols in pending:
            yield strategy, pipeline.run_backtests(strategy, symbols, start, end)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(spawned, mp_context=context, initializer=_open_share_pipeline) as pool:
        running: dict = {}
        while pending or running:
            while pending and len(running) < 2 * spawned:
                strategy, symbols = share = pending.pop(0)
                running[pool.submit(_run_share, strategy, symbols, start, end)] = share
            if pending:
                strategy, symbols = pending.pop(0)
                yield strategy, pipeline.run_backtests(strategy, symbols, start, end)
            finished, _ = wait(running, timeout=None if not pending else 0, return_when=FIRST_COMPLETED)
            for future in finished:
                strategy, symbols = running.pop(future)
                try:
                    yield strategy, future.result()
                except Exception as exc:  # the process running it died: its partitions failed, the rest go on
                    yield strategy, {symbol: Failed(f"the backfill process failed: {exc!r}") for symbol in symbols}


_share_pipeline: Pipeline | None = None  # one per pool process, opened once by ``_open_share_pipeline``


def _open_share_pipeline() -> None:
    global _share_pipeline
    _share_pipeline = open_pipeline()


def _run_share(strategy: str, symbols: list[str], start, end) -> dict[str, PartitionOutcome]:
    if _share_pipeline is None:
        raise RuntimeError("the pool process was not initialized with _open_share_pipeline")
    return _share_pipeline.run_backtests(strategy, symbols, start, end)


@backtest.command("run-config")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--symbol", required=True, callback=symbol_param, help="Symbol whose imported bars to trade.")
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD (default: the file's).")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD (default: the file's).")
def run_config(file: str, symbol: str, start, end) -> None:
    """Run one backtest from a strategy YAML file; prints what ``backtest run`` prints.

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
    from ntrader_pipeline.cli.outcome import print_run

    print_run(metrics, pipeline.tearsheet_url(metrics["run_id"]), spec.warnings)
    click.echo(metrics["run_id"])


JOBS_HELP = (
    "Processes the parameter sets run on, this one included (default: NTRADER_RESEARCH_PROCESSES, else one "
    "per core); the results are the same on any number."
)


def _checked_spec(file: str, jobs: int | None = None):
    """The file's spec, refused before any run when bad; the workers' forkserver starts meanwhile."""
    from ntrader_pipeline.core.parallel import prestart
    from ntrader_pipeline.settings import get_settings

    settings = get_settings()
    prestart(jobs or settings.research_processes)  # it imports the engine while this process does
    from ntrader_pipeline.core.strategy_specs import check_spec, load_spec

    spec = load_spec(file)
    check_spec(spec, settings.strategy_module_allowlist)  # refuse a bad file before starting a run
    for line in spec.warnings:
        click.echo(line, err=True)
    return spec


@backtest.command("sweep")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--symbol", "symbols", required=True, multiple=True, callback=symbol_param, help="Symbol to sweep on (repeatable)."
)
@click.option(
    "--metric",
    type=click.Choice(RANKABLE_METRICS),
    default=None,
    help="Metric that ranks the sets (default: the file's sweep metric, sharpe_ratio).",
)
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD (default: the file's).")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD (default: the file's).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--jobs", type=click.IntRange(1), default=None, help=JOBS_HELP)
def sweep(file: str, symbols: tuple[str, ...], metric: str | None, start, end, fmt: str, jobs: int | None) -> None:
    """Run every parameter set of the file's sweep: block on each symbol and rank them.

    One Dagster run per symbol (the bars are read once); each set is stored as its own run and
    recorded as its own sweep_backtest partition. Prints the sets best first with the deflated
    Sharpe ratio and the probability of backtest overfitting (or why either is undefined). JSON is
    one object per symbol (a list of them for several symbols): the sweep-level figures, then
    ``results``, the sets with params, run_id and every headline metric (docs/research.md).
    """
    import json

    from ntrader_pipeline.cli.common import showing_progress
    from ntrader_pipeline.core.research_report import sweep_json

    spec = _checked_spec(file, jobs)
    if spec.sweep is None:
        raise click.ClickException(f"{file}: no sweep: block (see docs/research.md)")
    pipeline = open_pipeline()
    documents = []
    with showing_progress():
        for symbol in symbols:
            documents.append(pipeline.run_sweep(file, symbol, metric, start, end, jobs))
    if fmt == "json":
        sweeps = [sweep_json(doc) for doc in documents]
        click.echo(json.dumps(sweeps[0] if len(sweeps) == 1 else sweeps, indent=2))
        return
    _print_sweeps(pipeline, documents)


def _print_sweeps(pipeline, documents: list[dict]) -> None:
    from rich.table import Table

    from ntrader_pipeline.cli.outcome import risk_notes, say
    from ntrader_pipeline.core.metric_registry import SUMMARY_METRICS
    from ntrader_pipeline.core.overfitting import overfitting_lines

    for doc in documents:
        metric, summary = doc["metric"], doc["overfitting"]
        names = doc["parameters"]
        shown = [metric, *(n for n in SUMMARY_METRICS if n != metric)]
        table = Table(
            "#",
            *names,
            *map(label, shown),
            "run id",
            title=f"Sweep of {doc['strategy']} on {doc['symbol']}: {len(doc['sets'])} sets by {metric}",
        )
        for name in names:  # a parameter's value is never cut
            table.columns[1 + names.index(name)].overflow = "fold"
        for row in doc["sets"][:25]:
            table.add_row(
                str(row["rank"]),
                *[str(row["params"].get(n)) for n in names],
                *(display(n, row.get(n)) for n in shown),
                row["run_id"],
            )
        console.print(table)
        if len(doc["sets"]) > 25:
            console.print(f"(best 25 of {len(doc['sets'])} sets; all are in the sweep report)")
        for line in overfitting_lines(summary):
            console.print(line, highlight=False)
        best = doc["sets"][0]
        for line in risk_notes(best["run_id"]):
            say(f"best set (run {best['run_id']}): {line}")
        halted = sum(1 for row in doc["sets"][1:] if risk_notes(row["run_id"]))
        if halted:
            say(f"{halted} other sets had risk controls fire (`ntrader report summary RUN_ID` shows them)")
        say(f"report: {pipeline.research_report_url(doc['strategy'], doc['symbol'], 'sweep.html')}")


@backtest.command("walk-forward")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--symbol", required=True, callback=symbol_param, help="Symbol to run on.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--jobs", type=click.IntRange(1), default=None, help=JOBS_HELP)
def walk_forward(file: str, symbol: str, fmt: str, jobs: int | None) -> None:
    """Walk-forward validation of the file's sweep: pick the best set on each in-sample window,
    run it out of sample, and stitch the out-of-sample runs into one stored run."""
    from rich.table import Table

    from ntrader_pipeline.cli.common import showing_progress
    from ntrader_pipeline.core.research_report import walk_forward_json

    spec = _checked_spec(file, jobs)
    if spec.walk_forward is None:
        raise click.ClickException(f"{file}: no walk_forward: block (see docs/research.md)")
    pipeline = open_pipeline()
    with showing_progress():
        doc = pipeline.run_walk_forward(file, symbol, jobs)
    if fmt == "json":
        click.echo(walk_forward_json(doc), nl=False)
        return
    metric = doc["metric"]
    table = Table(
        "in sample",
        "out of sample",
        "chosen parameters",
        f"IS {metric}",
        f"OOS {metric}",
        "OOS return",
        title=f"Walk-forward of {doc['strategy']} on {doc['symbol']}",
    )
    for w in doc["windows"]:
        table.add_row(
            " → ".join(w["in_sample"]),
            " → ".join(w["out_of_sample"]),
            ", ".join(f"{k}={v}" for k, v in w["params"].items()),
            display(metric, w["in_sample_metrics"].get(metric)),
            display(metric, w["out_of_sample_metrics"].get(metric)),
            display("total_return", w["out_of_sample_metrics"].get("total_return")),
        )
    console.print(table)
    from ntrader_pipeline.cli.outcome import print_run, say

    say("stitched out of sample, stored as one run:")
    print_run(doc["stitched"], pipeline.tearsheet_url(doc["run_id"]))
    say(f"report: {pipeline.research_report_url(doc['strategy'], doc['symbol'], 'walk_forward.html')}")
    click.echo(doc["run_id"])

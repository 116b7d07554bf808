"""The Python API: stored runs as pandas objects, and new runs made by the pipeline's own jobs.

For notebooks. ``open()`` opens the state folder the ``ntrader`` command and the Dagster UI use;
its ``Home`` lists the stored results, reads a run's equity, daily returns, trades and metrics,
and runs backtests, sweeps and walk-forwards through the same Dagster jobs the CLI runs, so they
show in the UI and land in the same warehouse.

Importing this module costs little (the settings alone): pandas and the warehouse come with the
first call that reads, Dagster and NautilusTrader with the first that runs or reads bars.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ntrader_pipeline.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.core.metric_registry import Metrics
    from ntrader_pipeline.core.records import RunRecord
    from ntrader_pipeline.pipeline import Pipeline

__all__ = ["BenchmarkWarning", "Home", "Run", "Sweep", "WalkForward", "open"]

DateLike = date | datetime | str


class BenchmarkWarning(UserWarning):
    """A run's benchmark returns could not be rebuilt from the catalog as the run measured them."""


def open(home: str | Path | None = None) -> Home:  # read as api.open(), like tarfile.open
    """Open a state folder: the warehouse, catalog, reports and Dagster instance of ``ntrader``.

    Parameters
    ----------
    home
        The state folder. Default: the one the CLI uses, ``NTRADER_HOME`` or ``.ntrader`` in the
        working directory. Other settings (``NTRADER_WAREHOUSE_URL``, ``NTRADER_CATALOG_PATH``,
        ...) come from the environment and ``.env`` as for the CLI. With a folder given, its
        Dagster instance is ``<home>/dagster`` unless ``NTRADER_DAGSTER_HOME`` says otherwise
        (never a ``DAGSTER_HOME`` left by another folder opened earlier in the process).

    Returns
    -------
    Home
        Nothing is read or created until a method needs it.

    Raises
    ------
    FileNotFoundError
        ``home`` is given but is no folder (a mistyped path would otherwise become a new, empty
        state folder at the first call).

    Examples
    --------
    >>> from ntrader_pipeline import api
    >>> nt = api.open()  # doctest: +SKIP
    """
    if home is None:
        return Home(Settings())
    if not Path(home).expanduser().is_dir():
        raise FileNotFoundError(f"no state folder at {home} (`ntrader demo` or `ntrader data import-csv` makes one)")
    settings = Settings(home=Path(home))
    if settings.dagster_home is None:
        settings = Settings(home=Path(home), dagster_home=settings.home_dir / "dagster")
    return Home(settings)


class Home:
    """A state folder: its stored results, and runs made on its bars.

    Parameters
    ----------
    settings
        Where each part lives (``ntrader_pipeline.settings.Settings``); ``open()`` builds them.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stores = settings.stores()  # each store opened when first used, then kept
        self._pipeline: Pipeline | None = None

    @property
    def path(self) -> Path:
        """The state folder."""
        return self.settings.home_dir

    def __repr__(self) -> str:
        return f"Home({str(self.path)!r})"

    def warehouse(self) -> Warehouse:
        """The warehouse (SQLite under the folder, or ``NTRADER_WAREHOUSE_URL``)."""
        return self.stores.warehouse()

    def pipeline(self) -> Pipeline:
        """The Dagster jobs on this folder's instance, opened once (imports Dagster)."""
        if self._pipeline is None:
            from ntrader_pipeline.pipeline import Pipeline

            self._pipeline = Pipeline.open(self.settings)
        return self._pipeline

    @contextmanager
    def _running(self) -> Iterator[Pipeline]:
        """The pipeline, for one in-process run. Inside a notebook's kernel an event loop is
        already running, so Dagster's closing of its own loop leaves a coroutine un-awaited (on
        purpose, see ``context_creation_job``), and Python would warn about it after every run."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "coroutine '.*shutdown_asyncgens' was never awaited", RuntimeWarning)
            yield self.pipeline()

    # --- stored results -------------------------------------------------------------------------

    def results(self, strategy: str | None = None, symbol: str | None = None, sort: str = "sharpe") -> pd.DataFrame:
        """Stored runs with their headline metrics, best first, as ``ntrader backtest list-results``.

        Parameters
        ----------
        strategy
            Only runs of this strategy (a sweep set's strategy is its key, ``sma_crossover[...]``).
        symbol
            Only runs on this symbol.
        sort
            ``"sharpe"`` (highest first), ``"return"`` (highest first) or ``"drawdown"``
            (shallowest first); undefined values last.

        Returns
        -------
        pandas.DataFrame
            One row per run, indexed by ``run_id``: ``strategy``, ``symbol``, ``created_at``,
            ``start``, ``end`` (UTC timestamps), then every headline metric in its machine form
            (fractions, not percents; counts as ``Int64``; undefined as missing).
        """
        from ntrader_pipeline.core.metric_display import RESULT_COLUMNS, ranked_results
        from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS

        rows = ranked_results(self.warehouse().list_results(strategy, symbol), sort)
        frame = _metrics_frame(rows, list(RESULT_COLUMNS), HEADLINE_METRICS)
        for column in ("created_at", "start", "end"):
            frame[column] = _utc_times(frame[column])
        return frame.set_index("run_id")

    def run(self, run_id: str) -> Run:
        """A stored run by id (``results().index``, or the id ``ntrader`` printed).

        Raises
        ------
        LookupError
            No run has this id.
        """
        from ntrader_pipeline.adapters.warehouse.results import get_record

        return Run(self, get_record(self.warehouse(), run_id))

    # --- new runs -----------------------------------------------------------------------------

    def backtest(
        self,
        strategy: str | Path,
        symbol: str,
        start: DateLike | None = None,
        end: DateLike | None = None,
        timeframe: str | None = None,
    ) -> Run:
        """Backtest a strategy on a symbol through the ``backtest_job``, as ``ntrader backtest run``.

        The run materializes the strategy × symbol partition (backtest, ledger, metrics, reports)
        in this folder's Dagster instance, so it shows in the UI.

        Parameters
        ----------
        strategy
            A strategy file's name in ``strategy_configs/`` (``"sma_crossover"``), or the path of
            a strategy YAML file anywhere (it runs on the ``_file`` partition).
        symbol
            A symbol with imported bars.
        start
            The first exchange date to trade (``"2005-01-03"``, a ``date`` or a timestamp);
            default: the file's ``backtest: start``, else the first bar.
        end
            The last exchange date to trade; default: the file's ``backtest: end``, else the last bar.
        timeframe
            ``"DAILY"``, ``"1HOUR"``, ``"5MIN"`` or ``"1MIN"``; default: the file's.

        Returns
        -------
        Run
            The stored run.

        Raises
        ------
        ntrader_pipeline.pipeline.PipelineError
            The run could only fail (unknown strategy or symbol, no bars in the dates) and was
            refused before it started.
        """
        path, first, last = _yaml_path(strategy), _date(start), _date(end)
        with self._running() as pipeline:
            metrics = pipeline.run_backtest(str(strategy), symbol, first, last, timeframe, spec_path=path)
        return self.run(str(metrics["run_id"]))

    def sweep(
        self,
        strategy: str | Path,
        symbol: str,
        metric: str | None = None,
        start: DateLike | None = None,
        end: DateLike | None = None,
    ) -> Sweep:
        """Run every parameter set of a strategy file's ``sweep:`` on a symbol, ranked, with the
        deflated Sharpe ratio and the probability of backtest overfitting (``sweep_job``, as
        ``ntrader backtest sweep``).

        Parameters
        ----------
        strategy
            A strategy file's name in ``strategy_configs/``, or the path of a strategy YAML file.
        symbol
            A symbol with imported bars.
        metric
            The metric to rank by; default: the file's ``sweep: metric``.
        start
            The first exchange date to trade; default: the file's, else the first bar.
        end
            The last exchange date to trade; default: the file's, else the last bar.

        Returns
        -------
        Sweep
        """
        path, first, last = self._strategy_path(strategy), _date(start), _date(end)
        with self._running() as pipeline:
            document = pipeline.run_sweep(path, symbol, metric, first, last)
        return Sweep(self, document)

    def walk_forward(self, strategy: str | Path, symbol: str) -> WalkForward:
        """Run a strategy file's ``walk_forward:`` on a symbol (``walk_forward_job``, as
        ``ntrader backtest walk-forward``): the best set of each in-sample window runs on the next
        out-of-sample window, and those runs are stitched into one stored run.

        Parameters
        ----------
        strategy
            A strategy file's name in ``strategy_configs/``, or the path of a strategy YAML file.
        symbol
            A symbol with imported bars.

        Returns
        -------
        WalkForward
        """
        path = self._strategy_path(strategy)
        with self._running() as pipeline:
            document = pipeline.run_walk_forward(path, symbol)
        return WalkForward(self, document)

    def _strategy_path(self, strategy: str | Path) -> Path:
        path = _yaml_path(strategy)
        if path is not None:
            return path
        pipeline = self.pipeline()
        if str(strategy) not in pipeline.strategy_names():
            from ntrader_pipeline.pipeline import PipelineError

            known = ", ".join(pipeline.strategy_names())
            raise PipelineError(f"unknown strategy {str(strategy)!r}; strategy files: {known}")
        return pipeline.stores.strategy_file(str(strategy))


class Run:
    """One stored backtest run; its parts are read from the warehouse when first used.

    Attributes
    ----------
    run_id : str
        The id ``ntrader`` prints, and the name of the run's reports folder.
    strategy : str
        The strategy file's name (a sweep set's key, a walk-forward's ``<name>[walk-forward]``).
    symbol : str
        The symbol traded.
    record : ntrader_pipeline.core.records.RunRecord
        What ran on which data with which versions.
    """

    def __init__(self, home: Home, record: RunRecord):
        self.home = home
        self.record = record
        self.run_id = record.run_id
        self.strategy = record.strategy
        self.symbol = record.symbol

    def __repr__(self) -> str:
        from ntrader_pipeline.core.metric_registry import display

        m = self.metrics
        shown = ", ".join(
            f"{label} {display(name, m.get(name))}"
            for name, label in (
                ("total_return", "total return"),
                ("sharpe_ratio", "Sharpe"),
                ("max_drawdown", "max drawdown"),
                ("trade_count", "trades"),
            )
        )
        span = f"{_day(self.record.start)} → {_day(self.record.end)}"
        return f"<Run {self.run_id}: {self.strategy} on {self.symbol}, {span}: {shown}>"

    @property
    def report_dir(self) -> str | None:
        """Where the run's reports were written (a folder or an ``s3://`` URL); sweep sets have none.
        A backfill writes the folder when it is first asked for: here."""
        if self.record.report_dir is not None:
            from ntrader_pipeline.adapters.warehouse.results import write_stored_reports

            write_stored_reports(self.home.stores, self.run_id)
        return self.record.report_dir

    @cached_property
    def metrics(self) -> Metrics:
        """Every metric of the run by name, as ``core.metric_registry`` lists them: counts ``int``,
        figures ``float`` (fractions: 0.0123 is 1.23 %), timestamps ISO-8601 text, undefined
        ``None``. ``pandas.Series(run.metrics)`` shows them as a column."""
        return self.home.warehouse().get_metrics(self.run_id)

    @cached_property
    def _curve(self) -> pd.DataFrame:
        return self.home.warehouse().get_equity_curve(self.run_id)

    @property
    def equity(self) -> pd.Series:
        """Mark-to-market equity at every bar's close, indexed by the bar's UTC close time."""
        import pandas as pd

        curve = self._curve
        return pd.Series(curve["equity"].to_numpy(), index=pd.DatetimeIndex(curve["timestamp"]), name="equity")

    @property
    def drawdown(self) -> pd.Series:
        """Equity / its running high − 1 at every bar (0 at a new high, negative below it)."""
        import pandas as pd

        curve = self._curve
        return pd.Series(curve["drawdown"].to_numpy(), index=pd.DatetimeIndex(curve["timestamp"]), name="drawdown")

    @cached_property
    def returns(self) -> pd.DataFrame:
        """Daily returns of the strategy and of its benchmark: what quantstats, pyfolio and
        empyrical take, and exactly the returns the run's metrics were computed from.

        A ``date`` index (exchange session dates) and two columns: ``strategy`` (the change of
        each session's last equity) and ``benchmark`` (buy and hold of the run's symbol, or of
        its file's ``benchmark:``), as in ``returns.csv``. The benchmark's closes are read back
        from the catalog and checked against the stored benchmark figures; when they no longer
        match (bars re-imported or deleted since) the column is NaN and a ``BenchmarkWarning``
        says why. Reading the catalog imports NautilusTrader.
        """
        from ntrader_pipeline.adapters.warehouse.results import stored_market, symbol_and_venue
        from ntrader_pipeline.core.metrics import exchange_zone
        from ntrader_pipeline.core.reports import returns_table

        catalog = self.home.stores.catalog(symbol_and_venue(self.record)[1])
        market = stored_market(self.record, self.metrics, self._curve, catalog)
        if market.problem is not None:
            warnings.warn(f"run {self.run_id}: no benchmark returns: {market.problem}", BenchmarkWarning, stacklevel=2)
        return returns_table(self._curve, market.benchmark, exchange_zone(self.record.versions))

    @cached_property
    def trades(self) -> pd.DataFrame:
        """The trade ledger: one row per round trip, in entry order.

        ``position_id``, ``side``, ``entry_time``, ``exit_time`` (UTC), ``entry_price``,
        ``exit_price``, ``quantity``, ``commission``, ``realized_pnl`` (net of commissions),
        ``return_pct``, ``holding_seconds``. Numbers are ``float64`` for analysis; ``trades.csv``
        (and ``ntrader report generate --format csv``) keeps their exact decimals.
        """
        from ntrader_pipeline.adapters.warehouse.results import read_ledger

        ledger = read_ledger(self.home.warehouse(), self.run_id)
        for column in ("entry_price", "exit_price", "quantity", "commission", "realized_pnl", "return_pct"):
            ledger[column] = ledger[column].astype("float64")
        return ledger


class Sweep:
    """A sweep's outcome: every parameter set ranked, and how likely the best one is overfit.

    Attributes
    ----------
    strategy : str
        The strategy file's name.
    symbol : str
        The symbol the sets ran on.
    metric : str
        The metric the sets are ranked by.
    sets : pandas.DataFrame
        One row per set, best first (indexed by ``rank``, from 1): ``key`` (the set's strategy
        name in the warehouse), one column per swept parameter, ``run_id``, then the headline
        metrics in their machine form.
    overfitting : dict
        The sweep-level figures, as ``backtest sweep --format json`` gives them: ``trials`` (sets
        run), ``trials_used`` (sets with a defined Sharpe ratio), ``trials_left_out``,
        ``deflated_sharpe`` (of the best set), ``sharpe_threshold``, ``pbo`` (probability of
        backtest overfitting), ``pbo_blocks``, ``pbo_splits``; a figure that is undefined is None
        and ``undefined`` maps its name to the reason.
    """

    def __init__(self, home: Home, document: dict[str, Any]):
        from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS
        from ntrader_pipeline.core.overfitting import sweep_figures

        self.home = home
        self.strategy = document["strategy"]
        self.symbol = document["symbol"]
        self.metric = document["metric"]
        self.overfitting = sweep_figures(document["overfitting"])
        parameters = list(document["parameters"])
        rows = [{**row, **row["params"]} for row in document["sets"]]
        columns = ["rank", "key", *parameters, "run_id"]
        self.sets = _metrics_frame(rows, columns, HEADLINE_METRICS).set_index("rank")

    def __repr__(self) -> str:
        return f"<Sweep {self.strategy} on {self.symbol}: {len(self.sets)} sets by {self.metric}>"

    def run(self, rank: int = 1) -> Run:
        """The stored run of the set at ``rank`` (1 = the best)."""
        return self.home.run(str(self.sets.loc[rank, "run_id"]))

    @property
    def best(self) -> Run:
        """The best set's stored run."""
        return self.run(1)


class WalkForward:
    """A walk-forward's outcome: the chosen set per window, and the stitched out-of-sample run.

    Attributes
    ----------
    strategy : str
        The strategy file's name.
    symbol : str
        The symbol it ran on.
    metric : str
        The metric each in-sample window's sets were ranked by.
    windows : pandas.DataFrame
        One row per window: ``in_start``, ``in_end``, ``out_start``, ``out_end`` (session dates),
        ``key`` and the chosen parameters, ``in_sample_<metric>``, then the out-of-sample headline
        metrics.
    run : Run
        The out-of-sample runs stitched into one stored run (equity, returns, trades, metrics).
    """

    def __init__(self, home: Home, document: dict[str, Any]):
        import pandas as pd

        from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS

        self.home = home
        self.strategy = document["strategy"]
        self.symbol = document["symbol"]
        self.metric = document["metric"]
        chosen = f"in_sample_{self.metric}"
        rows, parameters = [], []
        for w in document["windows"]:
            parameters += [p for p in w["params"] if p not in parameters]
            rows.append(
                {
                    "in_start": w["in_sample"][0],
                    "in_end": w["in_sample"][1],
                    "out_start": w["out_of_sample"][0],
                    "out_end": w["out_of_sample"][1],
                    "key": w["key"],
                    **w["params"],
                    chosen: w["in_sample_metrics"].get(self.metric),
                    **w["out_of_sample_metrics"],
                }
            )
        columns = ["in_start", "in_end", "out_start", "out_end", "key", *parameters]
        frame = _metrics_frame(rows, columns + [chosen], HEADLINE_METRICS, {chosen: self.metric})
        for column in ("in_start", "in_end", "out_start", "out_end"):
            frame[column] = pd.to_datetime(frame[column])
        self.windows = frame
        self.run = home.run(str(document["run_id"]))

    def __repr__(self) -> str:
        return f"<WalkForward {self.strategy} on {self.symbol}: {len(self.windows)} windows, stitched {self.run!r}>"


# --- helpers ------------------------------------------------------------------------------------


def _metrics_frame(
    rows: list[dict[str, Any]], columns: list[str], metrics: tuple[str, ...], units: dict[str, str] | None = None
) -> pd.DataFrame:
    """``columns`` as given, then each metric in its machine form and a dtype that keeps it: counts
    ``Int64``, figures ``float64`` (undefined: missing). ``units`` names the metric whose unit a
    renamed column takes."""
    import pandas as pd

    from ntrader_pipeline.core.metric_registry import machine, spec

    frame = pd.DataFrame({c: [row.get(c) for row in rows] for c in columns})
    for column in [*[c for c in columns if c in (units or {})], *metrics]:
        name = (units or {}).get(column, column)
        values = [machine(name, row.get(column)) for row in rows]
        unit = spec(name).unit
        if unit == "count":
            frame[column] = pd.array(values, dtype="Int64")
        elif unit in ("timestamp", "text"):
            frame[column] = values
        else:
            frame[column] = pd.array([float(v) if v is not None else None for v in values], dtype="float64")
    return frame


def _utc_times(values: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(values, utc=True, format="ISO8601").dt.as_unit("ns")


def _day(stamp: datetime | None) -> str:
    return "?" if stamp is None else stamp.date().isoformat()


def _date(value: DateLike | None) -> date | None:
    """An exchange date from ``"2005-01-03"``, a ``date``, or a ``datetime``/``Timestamp`` (its date)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:32]!r} is not a date (YYYY-MM-DD)") from None
    raise TypeError(f"a date is a 'YYYY-MM-DD' string, a date or a timestamp, not {type(value).__name__}")


def _yaml_path(strategy: str | Path) -> Path | None:
    """The path when ``strategy`` names a YAML file (a ``Path``, or text ending in .yaml/.yml or
    holding a folder); None when it is the name of a file in strategy_configs."""
    text = str(strategy)
    if isinstance(strategy, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(strategy)
    return None

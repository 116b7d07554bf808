"""IBKR ingestion in Dagster: keep a symbol universe's bars up to date from IB Gateway.

One run fetches the whole universe over one gateway connection, so one pacer sees every request.
The ``ibkr`` pool (limit 1, see docs/ibkr.md) keeps a second run from talking to the gateway at the
same time; the retry policy retries a run that lost the gateway, with exponential backoff, while
errors that no retry can fix (unknown symbol, invalid bars) fail at once.
"""

from collections.abc import Iterator
from datetime import date, timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Config,
    ConfigurableResource,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    define_asset_job,
    multi_asset_check,
)
from pydantic import Field

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.core.symbols import SymbolError, parse_listings
from ntrader_pipeline.core.timeframes import Timeframe, bar_type_name
from ntrader_pipeline.defs.partitions import SYMBOLS
from ntrader_pipeline.defs.resources import PipelineStores

IBKR_JOB = "ibkr_ingest_job"
IBKR_POOL = "ibkr"
NO_RETRY_TAG = "ntrader/no_retry"  # runs started by the CLI: report a failure at once, no retry policy
IBKR_RETRY_POLICY = RetryPolicy(max_retries=3, delay=60, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

_GATEWAY_FIELDS = (
    "host",
    "client_id",
    "connect_timeout",
    "request_timeout",
    "retries",
    "retry_backoff",
    "use_rth",
    "adjusted",
    "market_data_type",
    "max_requests",
    "pacing_window",
    "identical_interval",
    "per_contract_requests",
    "per_contract_window",
)


class IbkrGateway(ConfigurableResource):
    """How to reach IB Gateway and how fast to ask it (from ``NTRADER_IB_*``; no credentials)."""

    host: str
    port: int
    client_id: int
    connect_timeout: float
    request_timeout: float
    retries: int
    retry_backoff: float
    use_rth: bool
    adjusted: bool
    market_data_type: str
    max_requests: int
    pacing_window: float
    identical_interval: float
    per_contract_requests: int
    per_contract_window: float
    universe: str = ""
    timeframe: str = "DAILY"
    lookback_days: int = 30

    @classmethod
    def from_settings(cls, settings: IbkrSettings) -> "IbkrGateway":
        return cls(**cls.config_from_settings(settings))

    @staticmethod
    def config_from_settings(settings: IbkrSettings) -> dict:
        """Every field, as run config can override the resource (Dagster wants all of them)."""
        values = {name: getattr(settings, name) for name in _GATEWAY_FIELDS}
        return {
            "port": settings.resolved_port,
            "universe": settings.universe,
            "timeframe": settings.timeframe,
            "lookback_days": settings.lookback_days,
            **values,
        }

    def settings(self) -> IbkrSettings:
        return IbkrSettings(port=self.port, **{name: getattr(self, name) for name in _GATEWAY_FIELDS})


class IbkrFetchConfig(Config):
    symbols: list[str] = Field(
        default_factory=list, description="SYMBOL or SYMBOL:EXCHANGE to fetch; default: the configured universe."
    )
    timeframe: str | None = Field(None, description="1MIN, 5MIN, 1HOUR or DAILY; default: NTRADER_IB_TIMEFRAME.")
    start: str | None = Field(None, description="First session (YYYY-MM-DD); default: lookback_days before end.")
    end: str | None = Field(None, description="Last session (YYYY-MM-DD); default: today.")


@asset(
    group_name="market_data",
    pool=IBKR_POOL,
    retry_policy=IBKR_RETRY_POLICY,
    description="Bars of the IBKR universe fetched from IB Gateway into the catalog and `market_data` "
    "(source ibkr, or ibkr-adjusted); only sessions the catalog lacks since the listing are requested.",
)
def ibkr_bars(
    context: AssetExecutionContext, config: IbkrFetchConfig, stores: PipelineStores, ibkr: IbkrGateway
) -> MaterializeResult:
    try:  # NTRADER_IB_UNIVERSE and run config alike: every symbol checked before any request
        symbols = parse_listings(config.symbols) or parse_listings(
            s.strip() for s in ibkr.universe.split(",") if s.strip()
        )
    except SymbolError as exc:
        raise Failure(f"{exc} (NTRADER_IB_UNIVERSE or the run config's symbols)", allow_retries=False) from None
    if not symbols:
        raise Failure("no symbols: set NTRADER_IB_UNIVERSE or pass `symbols` in the run config", allow_retries=False)
    timeframe = Timeframe.parse(config.timeframe or ibkr.timeframe)
    end = date.fromisoformat(config.end) if config.end else date.today()
    start = date.fromisoformat(config.start) if config.start else end - timedelta(days=ibkr.lookback_days)

    def log_progress(done: int, total: int, what: str) -> None:
        context.log.info(f"[{done}/{total}] {what}")

    # Imported here: NautilusTrader's IB adapter would cost every process that loads the code location.
    from ntrader_pipeline.adapters.ibkr.client import IbkrError
    from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher

    fetcher = IbkrFetcher(ibkr.settings(), stores.market_data(), progress=log_progress)
    try:
        results = fetcher.fetch(symbols, start, end, timeframe)
    except ValueError as exc:  # a malformed SYMBOL:EXCHANGE or date range
        raise Failure(str(exc), allow_retries=False) from None
    except IbkrError as exc:  # no gateway: worth retrying later (retry policy), unless a person waits
        if context.run.tags.get(NO_RETRY_TAG):
            raise Failure(str(exc), allow_retries=False) from None
        raise Exception(str(exc)) from None
    stored = [r.symbol for r in results if r.bars_stored]
    status = {True: "up to date", False: "fetched"}
    known = set(context.instance.get_dynamic_partitions(SYMBOLS))
    if new := [s for s in stored if s not in known]:
        context.instance.add_dynamic_partitions(SYMBOLS, new)
    summary = [
        {
            "symbol": r.symbol,
            "requests": r.requests,
            "bars_stored": r.bars_stored,
            "outside_regular_hours": r.outside_regular_hours,
            "listed": r.listed or "",
            "result": f"failed: {r.error}" if r.error else status[r.up_to_date],
            "note": r.note or "",
            "error": r.error or "",
        }
        for r in results
    ]
    for r in results:
        if r.note:
            context.log.warning(f"{r.symbol}: {r.note}")
    failed = [r for r in results if r.error]
    if failed:
        reasons = "; ".join(f"{r.symbol}: {r.error}" for r in failed)
        raise Failure(
            f"{len(failed)} of {len(results)} symbols failed: {reasons}",
            metadata={"symbols": MetadataValue.json(summary)},
            # an unknown symbol stays unknown; a person waiting on the CLI gets the answer now
            allow_retries=any(r.retryable for r in failed) and not context.run.tags.get(NO_RETRY_TAG),
        )
    return MaterializeResult(
        metadata={
            "symbols": MetadataValue.json(summary),
            "timeframe": timeframe.value,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "requests": sum(r.requests for r in results),
            "bars_written": sum(r.bars_stored for r in results),
            "bars_outside_regular_hours": sum(r.outside_regular_hours for r in results),
            "source": fetcher.source,
        }
    )


IBKR_CHECKS = [
    AssetCheckSpec(
        "ohlc_consistent",
        asset=ibkr_bars,
        blocking=True,
        description="Every stored bar of the universe: positive prices, low <= open/close <= high, volume >= 0.",
    ),
    AssetCheckSpec("no_duplicate_bars", asset=ibkr_bars, blocking=True, description="No two bars share a timestamp."),
    AssetCheckSpec(
        "row_count_matches_source",
        asset=ibkr_bars,
        blocking=True,
        description="The catalog and `market_data` hold the same number of bars per symbol.",
    ),
    AssetCheckSpec(
        "calendar_gaps",
        asset=ibkr_bars,
        blocking=True,
        description="Against the series' exchange calendar (IB series are stored on XNYS): daily series "
        "miss no session (ERROR); intraday series miss no slot inside sessions (WARN).",
    ),
    AssetCheckSpec(
        "fresh",
        asset=ibkr_bars,
        description="A schedule feeds these series: the last bar reaches the latest completed session (WARN).",
    ),
]


@multi_asset_check(specs=IBKR_CHECKS, name="ibkr_bars_checks")
def ibkr_bars_checks(
    context: AssetCheckExecutionContext, stores: PipelineStores, ibkr: IbkrGateway
) -> Iterator[AssetCheckResult]:
    """The rules CSV bars are checked by (``core.quality``), over every symbol of the last fetch."""
    import pandas as pd  # in the run only: the code location loads without pandas

    from ntrader_pipeline.core import quality  # pandas: in the run only

    materialization = context.instance.get_latest_materialization_event(ibkr_bars.key)
    metadata = materialization.asset_materialization.metadata if materialization else {}
    timeframe = (
        Timeframe.parse(str(metadata["timeframe"].value))
        if "timeframe" in metadata
        else Timeframe.parse(ibkr.timeframe)
    )
    symbols = [row["symbol"] for row in metadata["symbols"].value] if "symbols" in metadata else []
    table_rows: dict[tuple[str, str], int] = {}
    for row in stores.warehouse().bar_inventory():
        key = (row["symbol"], row["bar_type"])
        table_rows[key] = table_rows.get(key, 0) + int(row["bars"])
    findings: dict[str, dict[str, quality.Finding]] = {spec.name: {} for spec in IBKR_CHECKS}
    now = pd.Timestamp.now(tz="UTC")
    for symbol in symbols:
        series = stores.catalog().read(symbol, timeframe)
        frame = series.frame if series is not None else pd.DataFrame({"ts_event": []}, dtype="int64")
        ts = frame["ts_event"].to_numpy(dtype="int64")
        in_table = table_rows.get((symbol, bar_type_name(symbol, stores.venue, timeframe)), 0)
        findings["row_count_matches_source"][symbol] = quality.Finding(
            len(ts) == in_table, f"{len(ts)} bars in the catalog, {in_table} in market_data"
        )
        if series is None:
            continue
        findings["ohlc_consistent"][symbol] = quality.ohlc_consistency(frame)
        findings["no_duplicate_bars"][symbol] = quality.duplicate_bars(ts)
        findings["calendar_gaps"][symbol] = quality.calendar_gaps(ts, timeframe, series.calendar)
        findings["fresh"][symbol] = quality.staleness(int(ts.max()), now, series.calendar)
    gaps_severity = AssetCheckSeverity.ERROR if timeframe is Timeframe.DAILY else AssetCheckSeverity.WARN
    severities = {"calendar_gaps": gaps_severity, "fresh": AssetCheckSeverity.WARN}
    for spec in IBKR_CHECKS:
        by_symbol = findings[spec.name]
        failed = {symbol: f.summary for symbol, f in by_symbol.items() if not f.passed}
        yield AssetCheckResult(
            check_name=spec.name,
            passed=not failed,
            severity=severities.get(spec.name, AssetCheckSeverity.ERROR),
            metadata={
                "symbols": MetadataValue.json({symbol: f.summary for symbol, f in by_symbol.items()}),
                "problems": MetadataValue.json([f"{symbol}: {summary}" for symbol, summary in failed.items()]),
            },
        )


ibkr_job = define_asset_job(IBKR_JOB, selection=[ibkr_bars])

"""Data-quality checks on a symbol's stored bars, run in every ingestion run right after the write.

One op reads the series once from the catalog and from the table (as counts, then as integer
ticks for the content comparison), then reports each rule of ``core.quality`` as its own check,
per symbol partition. ERROR checks are blocking:
a failure stops the backtests of that symbol from running on the bad data (in the same run, and
through the backtests' automation condition in later ones).
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    multi_asset_check,
)

from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.partitions import symbol_partitions
from ntrader_pipeline.defs.resources import PipelineStores

if TYPE_CHECKING:
    from ntrader_pipeline.core import quality

BAR_CATALOG = AssetKey("bar_catalog")
MARKET_DATA = AssetKey("market_data")


def _spec(asset: AssetKey, name: str, description: str, blocking: bool) -> AssetCheckSpec:
    return AssetCheckSpec(
        name, asset=asset, description=description, blocking=blocking, partitions_def=symbol_partitions
    )


BAR_CHECKS = [
    _spec(BAR_CATALOG, "ohlc_consistent", "Every bar: positive prices, low <= open/close <= high, volume >= 0.", True),
    _spec(BAR_CATALOG, "no_duplicate_bars", "No two bars share a timestamp.", True),
    _spec(
        BAR_CATALOG,
        "row_count_matches_source",
        "Catalog bars == market_data rows, and the imported range holds exactly the bars written.",
        True,
    ),
    _spec(
        BAR_CATALOG,
        "calendar_gaps",
        "Against the series' own exchange calendar (XNYS unless imported with another): daily series "
        "miss no session (ERROR); intraday series miss no minute slot inside sessions (WARN: thin "
        "names legitimately have minutes without trades).",
        True,
    ),
    _spec(
        BAR_CATALOG,
        "fresh",
        "Series fed by a schedule (IB) reach the latest completed session (WARN); a historical CSV "
        "import passes as not applicable.",
        False,
    ),
    _spec(MARKET_DATA, "ohlc_consistent", "Every row: positive prices, low <= open/close <= high, volume >= 0.", True),
    _spec(
        MARKET_DATA,
        "row_count_matches_source",
        "market_data rows == catalog bars, and the imported range holds exactly the bars written.",
        True,
    ),
    *(
        _spec(
            asset,
            "content_matches",
            "Catalog and market_data hold the same bars: a hash over every bar's time and OHLCV ticks.",
            True,
        )
        for asset in (BAR_CATALOG, MARKET_DATA)
    ),
]


@multi_asset_check(specs=BAR_CHECKS, name="stored_bar_checks")
def stored_bar_checks(context: AssetCheckExecutionContext, stores: PipelineStores) -> Iterator[AssetCheckResult]:
    """Check the series the latest import of this symbol wrote, in both stores."""
    import pandas as pd  # in the run only: the code location loads without pandas

    from ntrader_pipeline.core import quality  # pandas: in the run only

    symbol = context.partition_key
    last_import = latest_import(context, symbol)
    bar_type = str(last_import["bar_type"])
    timeframe = timeframe_of(bar_type)
    first_ns = pd.Timestamp(str(last_import["first"])).value
    last_ns = pd.Timestamp(str(last_import["last"])).value
    written = int(last_import["bars_written"])

    series = stores.catalog().read(symbol, timeframe)
    frame = series.frame if series is not None else pd.DataFrame({"ts_event": []}, dtype="int64")
    ts = frame["ts_event"].to_numpy(dtype="int64")
    from ntrader_pipeline.adapters.warehouse.bar_stats import table_bar_stats  # SQLAlchemy: only in a run

    table = table_bar_stats(stores.warehouse(), symbol, bar_type, first_ns, last_ns)
    counts = quality.row_counts(
        written=written,
        catalog_in_range=int(((ts >= first_ns) & (ts <= last_ns)).sum()),
        table_in_range=table.rows_in_range,
        catalog_total=len(ts),
        table_total=table.rows,
    )
    for key in ("source_rows", "bars_skipped"):  # how the written bars relate to the file's rows
        if key in last_import:
            counts.details[key] = int(last_import[key])
    if series is None:
        yield _result(BAR_CATALOG, "ohlc_consistent", quality.Finding(False, f"no {bar_type} bars in the catalog"))
        yield _result(BAR_CATALOG, "no_duplicate_bars", quality.Finding(False, f"no {bar_type} bars in the catalog"))
    else:
        yield _result(BAR_CATALOG, "ohlc_consistent", quality.ohlc_consistency(frame))
        yield _result(BAR_CATALOG, "no_duplicate_bars", quality.duplicate_bars(ts))
    yield _result(BAR_CATALOG, "row_count_matches_source", counts)
    gaps_severity = AssetCheckSeverity.ERROR if timeframe is Timeframe.DAILY else AssetCheckSeverity.WARN
    calendar = series.calendar if series is not None else str(last_import.get("calendar", "XNYS"))
    yield _result(BAR_CATALOG, "calendar_gaps", quality.calendar_gaps(ts, timeframe, calendar), gaps_severity)
    yield _result(BAR_CATALOG, "fresh", historical_freshness(symbol, last_import), AssetCheckSeverity.WARN)
    table_ohlc = quality.Finding(
        table.ohlc_violations == 0,
        f"{table.ohlc_violations} of {table.rows} rows break an OHLC rule",
        {"rows": table.rows, "bad_rows": table.ohlc_violations},
    )
    yield _result(MARKET_DATA, "ohlc_consistent", table_ohlc)
    yield _result(MARKET_DATA, "row_count_matches_source", counts)
    content = content_check(stores, series, symbol, bar_type)
    yield _result(BAR_CATALOG, "content_matches", content)
    yield _result(MARKET_DATA, "content_matches", content)


def historical_freshness(symbol: str, last_import: dict) -> "quality.Finding":
    """``fresh`` of a CSV import: a file is history as of when it was written, and no schedule
    tops it up, so how far behind today it ends says nothing about the data. Freshness is checked
    where a schedule feeds the series: the IB fetch's own ``fresh`` check."""
    from ntrader_pipeline.core import quality  # pandas: in the run only

    source = str(last_import.get("source", "csv"))
    return quality.Finding(
        True,
        f"not applicable: {symbol}'s bars come from a historical {source} import, not a schedule "
        "(freshness is checked for IB-fed series)",
        {"source": source, "import_last_bar": str(last_import.get("last", ""))},
    )


def content_check(stores: PipelineStores, series, symbol: str, bar_type: str) -> "quality.Finding":
    """Both stores' bars compared by content (equal counts with different prices fail)."""
    from ntrader_pipeline.core import quality  # pandas: in the run only

    if series is None:
        return quality.Finding(False, f"no {bar_type} bars in the catalog")
    from ntrader_pipeline.adapters.warehouse.bar_stats import table_bar_ticks  # SQLAlchemy: only in a run

    table = table_bar_ticks(stores.warehouse(), symbol, bar_type, series.price_precision)
    return quality.same_content(quality.bar_ticks(series.frame, series.price_precision), table, series.price_precision)


def latest_import(context: AssetCheckExecutionContext, symbol: str) -> dict:
    """Metadata of the newest ``bar_catalog`` materialization of ``symbol``: what was written."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=BAR_CATALOG, asset_partitions=[symbol]), limit=1
    ).records
    if not records:
        raise ValueError(f"{symbol} has never been imported; there are no stored bars to check")
    materialization = records[0].asset_materialization
    return {key: value.value for key, value in materialization.metadata.items()}


def timeframe_of(bar_type: str) -> Timeframe:
    """``AAPL.XNAS-1-MINUTE-LAST-EXTERNAL`` → ``Timeframe.MIN1``."""
    from nautilus_trader.model.data import BarType  # in the check's body: the code location must load fast

    spec = str(BarType.from_str(bar_type).spec).rsplit("-", 1)[0]
    return next(t for t in Timeframe if t.nautilus_spec == spec)


def _result(
    asset: AssetKey,
    name: str,
    finding: "quality.Finding",
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
) -> AssetCheckResult:
    metadata: dict[str, Any] = {"summary": MetadataValue.text(finding.summary)}
    for key, value in finding.details.items():
        metadata[key] = MetadataValue.json(value) if isinstance(value, list) else value
    return AssetCheckResult(
        asset_key=asset, check_name=name, passed=finding.passed, severity=severity, metadata=metadata
    )

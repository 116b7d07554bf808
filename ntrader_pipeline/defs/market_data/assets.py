"""Market data: CSV files → validated bars → the Parquet catalog and the ``market_data`` table."""

from pathlib import Path
from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.partitions import symbol_of, symbol_partitions
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import SAMPLE_DATA_DIR

raw_bar_files = AssetSpec(
    "raw_bar_files",
    group_name="market_data",
    partitions_def=symbol_partitions,
    description="OHLCV CSV files per symbol, as dropped in the inbox or named on the command line.",
)


class CsvImportConfig(Config):
    file: str | None = Field(None, description="CSV to import; default: the bundled sample file of the symbol.")
    timeframe: str | None = Field(None, description="1MIN, 5MIN, 1HOUR or DAILY; inferred when empty.")
    timezone: str | None = Field(
        None, description="Timezone of naive timestamps in the file; default: the calendar's (XNYS: America/New_York)."
    )
    on_invalid: Literal["reject", "skip"] = Field(
        "reject", description="reject: import nothing when any row is bad; skip: drop bad rows and list them."
    )
    adjusted: bool = Field(False, description="Scale OHLC by Adj Close / Close (Yahoo exports).")
    calendar: str | None = Field(
        None,
        description="Exchange calendar of the series (exchange-calendars code: XNYS, XLON, XTKS...); "
        "default: the calendar the symbol is stored with, else XNYS.",
    )


SKIP_REPORT_LIMIT = 1000  # problems listed in the skip report's metadata; the rest are counted


def bundled_file(symbol: str) -> Path | None:
    matches = sorted(SAMPLE_DATA_DIR.glob(f"{symbol.upper()}_*.csv"))
    return matches[0] if matches else None


@multi_asset(
    specs=[
        AssetSpec(
            "bar_catalog",
            group_name="market_data",
            deps=[raw_bar_files],
            description="Bars and instruments in the NautilusTrader Parquet catalog.",
        ),
        AssetSpec(
            "market_data",
            group_name="market_data",
            deps=[raw_bar_files],
            description="The same bars in the warehouse table `market_data`.",
        ),
    ],
    partitions_def=symbol_partitions,
)
def csv_bars(context: AssetExecutionContext, config: CsvImportConfig, stores: PipelineStores):
    """Import one symbol's CSV into both stores at once (all or nothing)."""
    import pandas as pd  # in the run only: the code location loads without pandas

    symbol = symbol_of(context.partition_key)
    path = Path(config.file) if config.file else bundled_file(symbol)
    if path is None:
        raise FileNotFoundError(
            f"no CSV configured for {symbol}: pass `file` in the run config or drop it in the inbox"
        )
    timeframe = Timeframe.parse(config.timeframe) if config.timeframe else None
    from ntrader_pipeline.core.calendar import calendar_timezone
    from ntrader_pipeline.core.csv_bars import read_bar_csv  # pyarrow: only when a file is imported
    from ntrader_pipeline.core.validation import describe_problems

    calendar = series_calendar(stores, symbol, config.calendar)
    series = read_bar_csv(
        path,
        symbol,
        timeframe,
        config.timezone or calendar_timezone(calendar),
        on_invalid=config.on_invalid,
        adjusted=config.adjusted,
        max_bytes=stores.max_csv_bytes,
        calendar=calendar,
    )
    skipped = series.notes.skipped
    stored = stores.market_data().replace(series)
    metadata = {
        "file": str(path),
        "bar_type": stored.bar_type,
        "bars_written": stored.written,
        "bars_stored": stored.stored,
        # The import range is the file's, not the merged series': the row-count check expects
        # exactly ``bars_written`` bars inside it, so an append of the newest sessions passes.
        "first": pd.Timestamp(series.first_ns, tz="UTC").isoformat(),
        "last": pd.Timestamp(series.last_ns, tz="UTC").isoformat(),
        "price_precision": series.price_precision,
        "source": MetadataValue.text(series.source),
        "source_rows": series.notes.source_rows,
        "bars_skipped": len(series.notes.skipped_lines),
        "skipped_report": MetadataValue.text("\n".join(describe_problems(str(path), skipped, SKIP_REPORT_LIMIT))),
        "adjusted": series.notes.adjusted,
        "calendar": series.calendar,
    }
    if skipped:
        context.log.warning(f"{path}: skipped {len(series.notes.skipped_lines)} bad rows")
    yield MaterializeResult(asset_key="bar_catalog", metadata={**metadata, "catalog_files": stored.catalog_files})
    yield MaterializeResult(asset_key="market_data", metadata=metadata)


def series_calendar(stores: PipelineStores, symbol: str, asked: str | None) -> str:
    """The calendar an import of ``symbol`` uses: the one asked for, else the one its stored series
    follow, else XNYS. Asking for another than the stored one is refused: a symbol's sessions (its
    bars' stamps, its checks) do not change between imports."""
    from ntrader_pipeline.adapters.catalog import CalendarMismatchError
    from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, check_calendar

    wanted = check_calendar(asked) if asked else None
    stored = stores.catalog().calendar_of(symbol)
    if wanted and stored and wanted != stored:
        raise CalendarMismatchError(
            f"{symbol} is stored on the {stored} calendar; refusing bars on {wanted}. Import with "
            f"--calendar {stored} (or leave it out), or under another symbol"
        )
    return wanted or stored or DEFAULT_CALENDAR

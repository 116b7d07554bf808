"""Metrics as the Dagster UI shows them, in the metric registry's forms: numbers for the metrics
panel (which plots them across materializations) and display text in tables.

Dagster and the registry alone: asset modules import this when the code location loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from ntrader_pipeline.core.metric_registry import (
    BY_NAME,
    PANEL_METRICS,
    label,
    panel_label,
    panel_number,
    spec,
    table_cell,
    table_column_type,
)


def metric_metadata(metrics: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """The headline and panel metrics as numbers the UI plots across materializations, in the
    registry's units: percents as percent to 2 decimals under a ``<name> %`` label (383.95, not
    3.8395000000000001), ratios to 4 decimals, counts as integers; undefined is null."""
    out: dict[str, MetadataValue] = {}
    for name in PANEL_METRICS:
        number = panel_number(name, metrics.get(name))
        out[panel_label(name)] = (
            MetadataValue.null()
            if number is None
            else MetadataValue.int(number)
            if isinstance(number, int)
            else MetadataValue.float(number)
        )
    return out


def metric_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> MetadataValue:
    """A UI table: metrics as their display text (a count as an int), other columns as they are,
    every record with every column and undefined as null, which the UI shows as a blank cell
    (Dagster refuses a table whose records have different fields)."""

    def cell(column: str, value: Any) -> Any:
        if column in BY_NAME:
            return table_cell(column, value)
        return value if value is None or isinstance(value, int | float | str | bool) else str(value)

    def column(name: str) -> TableColumn:
        if name not in BY_NAME:
            kind = "int" if all(isinstance(r.get(name), int) for r in rows) else "string"
            return TableColumn(name, kind)
        row = spec(name)
        return TableColumn(name, table_column_type(name), description=f"{label(name)} ({row.unit}): {row.definition}")

    records = [TableRecord({c: cell(c, r.get(c)) for c in columns}) for r in rows]
    return MetadataValue.table(records, schema=TableSchema([column(c) for c in columns]))

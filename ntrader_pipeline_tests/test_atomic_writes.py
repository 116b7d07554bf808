"""Both stores change or neither does: real failures injected into real writes.

The database is made to refuse the new bars with a trigger the test installs, either while the
rows are inserted (before the catalog swap) or only at COMMIT through a deferred foreign key
(after the staged catalog folders were already swapped in). Either way the catalog files, the
bars read back from them and every table row must be exactly what they were before.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import NVDA_DAILY

MARKER_VOLUME = 424242  # the bar the test database refuses

REJECT_NOW = {
    "sqlite": [
        "CREATE TRIGGER reject_marked_bar BEFORE INSERT ON market_data"
        f" WHEN CAST(NEW.volume AS REAL) = {MARKER_VOLUME}"
        " BEGIN SELECT RAISE(ABORT, 'test trigger refuses the marked bar'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION reject_marked_bar() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.volume = {MARKER_VOLUME} THEN RAISE EXCEPTION 'test trigger refuses the marked bar'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER reject_marked_bar BEFORE INSERT ON market_data"
        " FOR EACH ROW EXECUTE FUNCTION reject_marked_bar()",
    ],
}
REJECT_AT_COMMIT = {  # a row in guard_child pointing nowhere, checked only at COMMIT
    "sqlite": [
        "CREATE TABLE guard_parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE guard_child (parent_id INTEGER REFERENCES guard_parent(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER guard_marked_bar AFTER INSERT ON market_data"
        f" WHEN CAST(NEW.volume AS REAL) = {MARKER_VOLUME}"
        " BEGIN INSERT INTO guard_child VALUES (1); END",
    ],
    "postgresql": [
        "CREATE TABLE guard_parent (id integer PRIMARY KEY)",
        "CREATE TABLE guard_child (parent_id integer REFERENCES guard_parent(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE FUNCTION guard_marked_bar() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.volume = {MARKER_VOLUME} THEN INSERT INTO guard_child VALUES (1); END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER guard_marked_bar AFTER INSERT ON market_data FOR EACH ROW EXECUTE FUNCTION guard_marked_bar()",
    ],
}
DROP = {
    "sqlite": ["DROP TRIGGER IF EXISTS reject_marked_bar", "DROP TRIGGER IF EXISTS guard_marked_bar"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS reject_marked_bar ON market_data",
        "DROP TRIGGER IF EXISTS guard_marked_bar ON market_data",
    ],
}


def nvda_rows(tmp_path: Path, name: str, first: int, last: int, marked: bool = False) -> Path:
    """Bars ``first``..``last`` (1-based) of the NVDA sample; ``marked`` gives the last one the marker volume."""
    header, *rows = NVDA_DAILY.read_text().splitlines()
    chosen = rows[first - 1 : last]
    if marked:
        fields = chosen[-1].split(",")
        chosen[-1] = ",".join([*fields[:-1], str(MARKER_VOLUME)])
    path = tmp_path / name
    path.write_text("\n".join([header, *chosen]) + "\n")
    return path


def catalog_files(root: Path) -> dict[str, str]:
    """Every file of the live catalog (staging excluded) with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".staging" not in p.relative_to(root).parts
    }


def table_rows(warehouse: Warehouse) -> list[tuple]:
    with warehouse.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(market_data).order_by(market_data.c.timestamp))]


def state(catalog: BarCatalog, warehouse: Warehouse) -> tuple:
    series = catalog.read("NVDA", Timeframe.DAILY)
    return catalog_files(catalog.path), series.frame.to_dict("list"), series.price_precision, table_rows(warehouse)


def run_sql(warehouse: Warehouse, statements: list[str]) -> None:
    with warehouse.transaction() as connection:
        for statement in statements:
            connection.execute(text(statement))


@pytest.fixture
def stores(tmp_path: Path, warehouse_url: str) -> MarketDataStore:
    """Stores holding NVDA bars 1..60, written through the normal path."""
    store = MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), Warehouse.open(warehouse_url))
    store.replace(read_bar_csv(nvda_rows(tmp_path, "v1.csv", 1, 60), "NVDA"))
    return store


@pytest.mark.parametrize("refusal", ["while inserting", "at commit"])
def test_a_refused_table_write_leaves_both_stores_as_they_were(tmp_path, stores, refusal) -> None:
    dialect = stores.warehouse.dialect
    before = state(stores.catalog, stores.warehouse)
    assert len(before[3]) == 60
    update = read_bar_csv(nvda_rows(tmp_path, "v2.csv", 31, 90, marked=True), "NVDA")
    run_sql(stores.warehouse, (REJECT_NOW if refusal == "while inserting" else REJECT_AT_COMMIT)[dialect])

    with pytest.raises(Exception, match="marked bar" if refusal == "while inserting" else "(?i)foreign key") as error:
        stores.replace(update)
    if refusal == "at commit":  # raised by COMMIT, after the catalog swap, not by a statement
        assert error.value.__cause__.statement is None
    assert str(error.value).startswith("storing NVDA.XNAS-1-DAY-LAST-EXTERNAL bars failed on ")
    assert "[SQL" not in str(error.value) and "INSERT" not in str(error.value)  # the operation, not the SQL

    assert state(stores.catalog, stores.warehouse) == before
    assert not any((stores.catalog.path / ".staging").glob("*"))  # nothing staged is left behind

    run_sql(stores.warehouse, DROP[dialect])  # the same write, once the database accepts it
    stored = stores.replace(update)
    assert (stored.written, stored.stored) == (60, 90)
    assert len(table_rows(stores.warehouse)) == 90
    assert state(stores.catalog, stores.warehouse)[1]["ts_event"][:30] == before[1]["ts_event"][:30]


def test_a_swap_that_fails_half_way_puts_the_earlier_catalog_back(tmp_path, sqlite_url) -> None:
    """The swap places the symbol's instrument file, then swaps the bars folder; the placement fails
    for real (a file stands where the ``equity`` folder must be created). The earlier bars stay."""
    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    store = MarketDataStore(catalog, Warehouse.open(sqlite_url))
    store.replace(read_bar_csv(nvda_rows(tmp_path, "v1.csv", 1, 60), "NVDA"))
    equity = catalog.path / "data" / "equity"
    shutil.rmtree(equity)  # the instrument is rebuilt on every write; the bars are what must survive
    equity.write_text("not a folder")
    bars_before = catalog_files(catalog.path / "data" / "bar")
    rows_before = table_rows(store.warehouse)

    with pytest.raises(OSError):
        store.replace(read_bar_csv(nvda_rows(tmp_path, "v2.csv", 31, 90), "NVDA"))

    assert catalog_files(catalog.path / "data" / "bar") == bars_before
    assert table_rows(store.warehouse) == rows_before
    assert not any((catalog.path / ".staging").glob("*"))

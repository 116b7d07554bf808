"""The same metric of the same run reads the same on every surface a user sees it on.

One home, driven as a user drives it: ORCL imported, the shipped SMA crossover run with
``ntrader backtest run``, a two-set sweep whose first set is that same configuration, and a
walk-forward, all through the CLI (Dagster runs in-process, as the UI's would), then the
leaderboard materialized. Each metric is then read back from every surface:

- human surfaces (CLI tables and lines, ``report.txt``, every HTML page, the UI's tables and
  JSON/Markdown metadata) show the display form: a percent as ``383.95%``, a ratio to 4 decimals,
  money to the cent, a count as an integer, undefined as ``n/a`` (text) or blank (UI tables);
- the UI's metrics panel shows numbers in the same units (``total_return %`` = 383.95);
- machine surfaces (JSON, CSV) carry the value, counts as integers, undefined as null / blank.

``UNITS`` is this test's own statement of docs/conventions.md's rule for the metrics it follows, so a
change of the registry shows up here as a difference, not as a silent new format.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, materialize

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.defs.analytics.assets import LEADERBOARD_FILE, leaderboard
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, point_settings_at

UNITS = {
    "total_return": "percent",
    "max_drawdown": "percent",
    "benchmark_return": "percent",
    "sharpe_ratio": "ratio",
    "profit_factor": "ratio",
    "trade_count": "count",
}
RESEARCH_FILE = """\
strategy: sma_crossover
config: {fast_period: 10, slow_period: 30, sizing: percent_equity, equity_percent: 95, allow_short: false}
backtest: {starting_balance: 100000}
sweep:
  grid: {fast_period: [10], slow_period: [30, 50]}
  metric: sharpe_ratio
walk_forward: {in_sample: 1000, out_of_sample: 1000}
"""
SET_KEY = "surfaces[fast_period=10,slow_period=30]"


def shown(name: str, value) -> str:
    """The display form of docs/conventions.md's rule."""
    if value is None:
        return "n/a"
    unit = UNITS[name]
    if unit == "percent":
        return f"{value:.2%}"
    if unit == "count":
        assert float(value) == int(value), (name, value)
        return str(int(value))
    if unit == "money":
        return f"{value:,.2f}"
    return f"{value:,.4f}"


def panel(name: str, value):
    """The metrics panel's number: a percent times 100 to 2 decimals, a ratio to 4, a count as int."""
    if value is None:
        return None
    unit = UNITS[name]
    return round(value * 100, 2) if unit == "percent" else int(value) if unit == "count" else round(value, 4)


def exact(name: str, value):
    """The machine form: counts as integers, money to the cent, other figures to 10 decimals."""
    if value is None:
        return None
    unit = UNITS[name]
    if unit == "count":
        return int(value)
    if unit == "money":
        return str(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return round(value, 10)


def ntrader(*args: str):
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return done


class Page(HTMLParser):
    """The cards (label → value) and tables (rows of cell texts) of one report page."""

    def __init__(self, text: str):
        super().__init__()
        self.cards: dict[str, str] = {}
        self.tables: list[list[list[str]]] = []
        self._label: str | None = None
        self._in: str | None = None
        self._text = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        css = dict(attrs).get("class") or ""
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") or (tag == "div" and css.split()[:1] in (["label"], ["value"])):
            self._in, self._text = (tag if tag != "div" else css.split()[0]), ""

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if self._in in ("td", "th") and tag == self._in:
            self.tables[-1][-1].append(html.unescape(self._text).strip())
            self._in = None
        elif self._in == "label" and tag == "div":
            self._label, self._in = self._text.strip(), None
        elif self._in == "value" and tag == "div":
            self.cards[self._label] = self._text.strip()
            self._in = None

    def metric_rows(self, column: int = 1) -> dict[str, str]:
        """``metric → value`` of the metrics tables (header ``metric``, ``value`` or ``strategy``);
        ``column`` 2 is the tearsheet's benchmark column."""
        return {
            row[0]: row[column]
            for table in self.tables
            if table and table[0][:2] in (["metric", "value"], ["metric", "strategy"])
            for row in table[1:]
            if len(row) > column
        }

    def table_with(self, column: str) -> list[dict[str, str]]:
        table = next(t for t in self.tables if t and column in t[0])
        return [dict(zip(table[0], row, strict=True)) for row in table[1:]]


def rich_rows(text: str) -> list[list[str]]:
    """The data rows of the Rich tables in ``text``, as lists of cell texts."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in text.splitlines() if "│" in line]


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("surfaces")
    research = home / "surfaces.yaml"
    research.write_text(RESEARCH_FILE)
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_settings_at(monkeypatch, home / "state")
        monkeypatch.setenv("DAGSTER_HOME", str(home / "state" / "dagster"))
        ntrader("data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL")
        ran = ntrader("backtest", "run", "--strategy", "sma_crossover", "--symbol", "ORCL")
        run_id = ran.stdout.strip().splitlines()[-1]
        sweep_table = ntrader("backtest", "sweep", str(research), "--symbol", "ORCL").stdout
        sweep_json = json.loads(
            ntrader("backtest", "sweep", str(research), "--symbol", "ORCL", "--format", "json").stdout
        )["results"]
        wf_table = ntrader("backtest", "walk-forward", str(research), "--symbol", "ORCL").stdout
        wf_json = json.loads(
            ntrader("backtest", "walk-forward", str(research), "--symbol", "ORCL", "--format", "json").stdout
        )
        settings = get_settings()
        stores = PipelineStores.from_settings(settings)
        instance = DagsterInstance.get()
        assert materialize([leaderboard], resources={"stores": stores}, instance=instance).success
        warehouse = Warehouse.open(settings.resolved_warehouse_url)
        set_id = next(r["run_id"] for r in sweep_json if r["key"] == SET_KEY)
        reports = settings.resolved_reports_dir
        research_dir = next((reports / "research").iterdir())
        yield {
            "home": home,
            "run_id": run_id,
            "set_id": set_id,
            "wf_id": wf_json["run_id"],
            "ran": ran.stdout,
            "list_table": ntrader("backtest", "list-results").stdout,
            "list_json": {
                r["run_id"]: r for r in json.loads(ntrader("backtest", "list-results", "--format", "json").stdout)
            },
            "compare": ntrader("backtest", "compare", run_id, set_id, wf_json["run_id"]).stdout,
            "summary": {i: ntrader("report", "summary", i).stdout for i in (run_id, set_id, wf_json["run_id"])},
            "generated_json": {
                i: json.loads(ntrader("report", "generate", "--backtest-id", i, "--format", "json").stdout)
                for i in (run_id, set_id, wf_json["run_id"])
            },
            "generated_html": {
                i: ntrader("report", "generate", "--backtest-id", i, "--format", "html").stdout
                for i in (run_id, set_id, wf_json["run_id"])
            },
            "sweep_table": sweep_table,
            "sweep_json": sweep_json,
            "wf_table": wf_table,
            "wf_json": wf_json,
            "reports": reports,
            "research_dir": research_dir,
            "instance": instance,
            "stored": {i: warehouse.get_metrics(i) for i in (run_id, set_id, wf_json["run_id"])},
            "best_sharpe": warehouse.get_metrics(next(r["run_id"] for r in sweep_json if r["rank"] == 1))[
                "sharpe_ratio"
            ],
        }
    Warehouse.open.cache_clear()


def latest_metadata(instance: DagsterInstance, asset: str, partition: str | None = None):
    if partition is None:
        event = instance.get_latest_materialization_event(AssetKey(asset))
        return event.asset_materialization.metadata
    records = instance.fetch_materializations(AssetKey(asset), limit=1000).records
    return next(r for r in reversed(records) if r.partition_key == partition).asset_materialization.metadata


def test_the_sweep_set_is_the_backtest_run_again(surfaces):
    """The rest compares one run across surfaces; this ties the backtest, the sweep set and their numbers."""
    a, b = surfaces["stored"][surfaces["run_id"]], surfaces["stored"][surfaces["set_id"]]
    for name in UNITS:
        assert a[name] == b[name], name
    assert float(a["trade_count"]) == 97  # docs/research.md's figure for the shipped configuration


def test_cli_tables_and_lines_show_the_display_form(surfaces):
    run_id, set_id, wf_id = surfaces["run_id"], surfaces["set_id"], surfaces["wf_id"]
    stored = surfaces["stored"]
    m = stored[run_id]
    assert f"total return {shown('total_return', m['total_return'])}, 97 trades" in surfaces["ran"]

    listed = {row[0]: row for row in rich_rows(surfaces["list_table"])}
    for run in (run_id, set_id, wf_id):
        for name in ("total_return", "sharpe_ratio", "max_drawdown", "trade_count"):
            assert shown(name, stored[run][name]) in listed[run], (run, name, listed[run])

    compared = {row[0]: row[1:] for row in rich_rows(surfaces["compare"])}
    for name in UNITS:
        assert compared[name] == [shown(name, stored[r][name]) for r in (run_id, set_id, wf_id)], name

    for run, text in surfaces["summary"].items():
        rows = {row[0]: row[1] for row in rich_rows(text) if len(row) == 2}
        for name in UNITS:
            assert rows[name] == shown(name, stored[run][name]), (run, name)

    # the table's sweep ran apart from the JSON's: the same set, another run id, the same numbers
    swept = next(row for row in rich_rows(surfaces["sweep_table"]) if row[1:3] == ["10", "30"])
    for name in ("sharpe_ratio", "total_return", "max_drawdown", "trade_count"):
        assert shown(name, stored[set_id][name]) in swept, (name, swept)

    w = stored[wf_id]
    line = " ".join(surfaces["wf_table"].split())
    for name in ("total_return", "benchmark_return", "sharpe_ratio", "max_drawdown"):
        assert shown(name, w[name]) in line, name
    assert f"{shown('trade_count', w['trade_count'])} trades" in line
    rows = [row for row in rich_rows(surfaces["wf_table"]) if row[3]]  # without the lines of wrapped dates
    for window, row in zip(surfaces["wf_json"]["windows"], rows, strict=True):
        assert row[3:] == [
            shown("sharpe_ratio", window["in_sample_metrics"]["sharpe_ratio"]),
            shown("sharpe_ratio", window["out_of_sample_metrics"]["sharpe_ratio"]),
            shown("total_return", window["out_of_sample_metrics"]["total_return"]),
        ]


def test_text_reports_show_the_display_form(surfaces):
    for run in (surfaces["run_id"], surfaces["wf_id"]):
        written = (surfaces["reports"] / run / "report.txt").read_text()
        assert written == surfaces["summary"][run]


def test_every_html_page_shows_the_display_form(surfaces):
    stored, reports = surfaces["stored"], surfaces["reports"]
    for run in (surfaces["run_id"], surfaces["wf_id"]):
        written = Page((reports / run / "tearsheet.html").read_text())
        rebuilt = Page(surfaces["generated_html"][run])
        for page in (written, rebuilt):
            rows = page.metric_rows()
            rows["benchmark_return"] = page.metric_rows(column=2)["total_return"]  # the benchmark's column
            for name in UNITS:
                assert rows[name] == shown(name, stored[run][name]), (run, name)
            assert {shown(n, stored[run][n]) for n in ("total_return", "sharpe_ratio", "trade_count")} <= set(
                page.cards.values()
            )
        # the trades as the run wrote them and as the warehouse gives them back: quantities in plain digits
        assert written.table_with("quantity") == rebuilt.table_with("quantity")
        for row in rebuilt.table_with("quantity"):
            assert re.fullmatch(r"\d{1,3}(,\d{3})*", row["quantity"]), row["quantity"]

    sweep = Page((surfaces["research_dir"] / "sweep.html").read_text())
    row = next(r for r in sweep.table_with("run_id") if r["run_id"] == surfaces["set_id"])
    for name in ("sharpe_ratio", "total_return", "max_drawdown", "trade_count"):
        assert row[name] == shown(name, stored[surfaces["set_id"]][name]), name

    wf = Page((surfaces["research_dir"] / "walk_forward.html").read_text())
    w = stored[surfaces["wf_id"]]
    for name in ("total_return", "benchmark_return", "sharpe_ratio", "max_drawdown", "trade_count"):
        assert shown(name, w[name]) in wf.cards.values(), name


def test_the_walk_forward_run_has_the_same_tearsheet_as_a_backtest(surfaces):
    """Price with entries and exits, and the benchmark: the inputs a backtest's tearsheet gets."""
    page = (surfaces["reports"] / surfaces["wf_id"] / "tearsheet.html").read_text()
    assert 'id="price-trades"' in page and "buy and hold ORCL" in page
    assert "not at hand" not in page


def test_the_ui_shows_the_display_form_in_tables_and_numbers_in_the_metrics_panel(surfaces):
    instance, stored = surfaces["instance"], surfaces["stored"]
    run_id, set_id, wf_id = surfaces["run_id"], surfaces["set_id"], surfaces["wf_id"]

    board = {r.data["run_id"]: r.data for r in latest_metadata(instance, "leaderboard")["leaderboard"].records}
    sweep = {r.data["run_id"]: r.data for r in latest_metadata(instance, "sweep_results")["sweep"].records}
    wrong = [
        (table, name, row[name], shown(name, stored[run][name]))
        for table, run, row in (("leaderboard", run_id, board[run_id]), ("sweep", set_id, sweep[set_id]))
        for name in UNITS
        if (str(row[name]) if UNITS[name] == "count" else row[name]) != shown(name, stored[run][name])
    ]
    assert not wrong  # (table, metric, cell, what the CLI shows)
    assert all(type(row["trade_count"]) is int for row in (board[run_id], sweep[set_id]))

    best = latest_metadata(instance, "sweep_results")["best"].value
    first = next(r for r in surfaces["sweep_json"] if r["rank"] == 1)
    assert best["key"] == first["key"]
    assert best["sharpe_ratio"] == shown("sharpe_ratio", surfaces["best_sharpe"])

    for asset, partition, run in (
        ("backtest_metrics", None, run_id),
        ("sweep_backtest", f"{SET_KEY}|ORCL", set_id),
        ("walk_forward", None, wf_id),
    ):
        metadata = latest_metadata(instance, asset, partition)
        for name in UNITS:
            label = f"{name} %" if UNITS[name] == "percent" else name
            assert metadata[label].value == panel(name, stored[run][name]), (asset, name)


def test_machine_surfaces_carry_the_values_with_counts_as_integers(surfaces):
    stored, run_id, set_id, wf_id = surfaces["stored"], surfaces["run_id"], surfaces["set_id"], surfaces["wf_id"]
    documents = {
        run_id: [
            json.loads((surfaces["reports"] / run_id / "metrics.json").read_text()),
            surfaces["generated_json"][run_id],
            surfaces["list_json"][run_id],
        ],
        set_id: [
            surfaces["generated_json"][set_id],
            surfaces["list_json"][set_id],
            next(r for r in surfaces["sweep_json"] if r["run_id"] == set_id),
            next(
                r
                for r in json.loads((surfaces["research_dir"] / "sweep.json").read_text())["results"]
                if r["run_id"] == set_id
            ),
        ],
        wf_id: [
            json.loads((surfaces["reports"] / wf_id / "metrics.json").read_text()),
            surfaces["generated_json"][wf_id],
            surfaces["list_json"][wf_id],
            surfaces["wf_json"]["stitched"],
            json.loads((surfaces["research_dir"] / "walk_forward.json").read_text())["stitched"],
        ],
    }
    for run, docs in documents.items():
        for doc in docs:
            for name in UNITS:
                assert doc[name] == exact(name, stored[run][name]), (run, name, doc[name])
            assert type(doc["trade_count"]) is int

    with (surfaces["reports"] / LEADERBOARD_FILE).open() as file:
        board = {r["run_id"]: r for r in csv.DictReader(file)}
    with (surfaces["research_dir"] / "sweep.csv").open() as file:
        sweep = {r["run_id"]: r for r in csv.DictReader(file)}
    for run, row in ((run_id, board[run_id]), (set_id, sweep[set_id])):
        for name in UNITS:
            assert row[name] == str(exact(name, stored[run][name])), (run, name, row[name])


def test_a_csv_reads_back_the_same_in_a_spreadsheet_tool(surfaces):
    """Counts are whole numbers in the file (``97``, not ``97.0``)."""
    text = (surfaces["reports"] / LEADERBOARD_FILE).read_text()
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["run_id"] == surfaces["run_id"])
    assert row["trade_count"] == "97"

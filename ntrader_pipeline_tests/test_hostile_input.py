"""Hostile input, end to end: the adversarial corpus, symbols, paths and things that are not files.

Every case runs against one home that already holds good ORCL bars, through the same Dagster
import job the CLI and the UI run, and asserts its exact error and that the stores did not change:
a content hash of the catalog tree (every file's bytes), the ``market_data`` rows and the symbol
partitions, taken before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, instance_for_test
from sqlalchemy import select

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import series_lock
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.paths import PathEscapeError, confined
from ntrader_pipeline.core.quoting import EXCERPT_CHARS, shown_path
from ntrader_pipeline.core.strategy_specs import StrategySpecError, check_spec, load_spec
from ntrader_pipeline.core.symbols import SYMBOL_RULE, SymbolError, is_symbol
from ntrader_pipeline.core.validation import BarFileError, BarProblem
from ntrader_pipeline.definitions import INGEST_JOB
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.processes import wait_for_lock_waiter
from ntrader_pipeline_tests.support import ORCL_DAILY, REPO_ROOT, STRATEGY_CONFIGS, point_settings_at

CORPUS = Path(__file__).parent / "corpus"
CSV_EXPECTED: dict[str, list[list]] = json.loads((CORPUS / "csv" / "expected.json").read_text())
YAML_EXPECTED: dict[str, str] = json.loads((CORPUS / "yaml" / "expected.json").read_text())
GROWING_EXPECTED: dict[str, dict] = json.loads((CORPUS / "csv" / "growing" / "expected.json").read_text())

HOSTILE_SYMBOLS = [
    "A;DROP TABLE market_data",
    "A'); DROP TABLE market_data;--",
    "🚀",
    "A|B",
    "..\\..\\x",
    "../../../../ESCAPE/E",
    "A,B",
    "A\nB",
    "",
    " AAPL",
    "ORCL/../../x",
    "A" * 11,
    "Ä",
]


@pytest.fixture(scope="module")
def orcl_home(tmp_path_factory) -> Iterator[tuple[Pipeline, DagsterInstance]]:
    """A home holding the real ORCL daily bars, imported through the Dagster job."""
    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as monkeypatch, instance_for_test() as instance:
        point_settings_at(monkeypatch, root / "home")
        monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
        pipeline = Pipeline.open(get_settings(), instance)
        pipeline.import_csv(ORCL_DAILY, "ORCL")
        yield pipeline, instance
    Warehouse.open.cache_clear()


@pytest.fixture
def pipeline(orcl_home, monkeypatch) -> Iterator[Pipeline]:
    """The ORCL home, with a check afterwards that nothing in it (or beside it) changed."""
    pipeline, instance = orcl_home
    point_settings_at(monkeypatch, pipeline.settings.home_dir)
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    before = store_digest(pipeline)
    yield pipeline
    assert store_digest(pipeline) == before, "the stores changed"
    outside = pipeline.settings.home_dir.parent
    assert sorted(p.name for p in outside.iterdir()) == ["home"], "something was written beside the home"


def store_digest(pipeline: Pipeline) -> str:
    """Content hash of both stores and the symbol partitions."""
    digest = hashlib.sha256()
    catalog = pipeline.settings.resolved_catalog_path
    for path in sorted(catalog.rglob("*")):
        digest.update(str(path.relative_to(catalog)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    warehouse = Warehouse.open(pipeline.settings.resolved_warehouse_url)
    with warehouse.engine.connect() as connection:
        rows = connection.execute(select(market_data).order_by(market_data.c.bar_type, market_data.c.timestamp)).all()
    assert rows, "the home lost its ORCL bars"
    digest.update(repr(rows).encode())
    digest.update(repr(pipeline.symbols()).encode())
    return digest.hexdigest()


# --- the corpus --------------------------------------------------------------------------------


def test_corpus_is_complete():
    csv_files = sorted(p.name for p in (CORPUS / "csv").glob("*.csv"))
    yaml_files = sorted(p.name for p in (CORPUS / "yaml").glob("*.yaml"))
    assert csv_files == sorted(CSV_EXPECTED)
    assert yaml_files == sorted(YAML_EXPECTED)
    assert len(csv_files) + len(yaml_files) >= 80


@pytest.mark.parametrize("name", sorted(CSV_EXPECTED))
def test_corpus_csv_is_refused_by_the_import_job_and_nothing_changes(pipeline, name):
    path = CORPUS / "csv" / name
    with pytest.raises(BarFileError) as caught:
        pipeline.import_csv(path, "ORCL")
    assert caught.value.problems == [BarProblem(*p) for p in CSV_EXPECTED[name]]
    assert caught.value.file == str(path.resolve())


@pytest.mark.parametrize("name", sorted(GROWING_EXPECTED))
def test_corpus_file_growing_during_the_import_is_refused_and_nothing_changes(pipeline, tmp_path_factory, name):
    """`ntrader data import-csv` reads a file whose writer has not finished its last row (cut mid-number)
    and, while the import waits for the series' lock, the writer appends the rest. The import must not
    store the cut number (15721 for 15721600): it is refused naming the line, and nothing is written."""
    case = GROWING_EXPECTED[name]
    path = tmp_path_factory.mktemp("growing") / name
    shutil.copyfile(CORPUS / "csv" / "growing" / name, path)
    catalog = BarCatalog(pipeline.settings.resolved_catalog_path, "XNAS")
    bar_type = "ORCL.XNAS-1-DAY-LAST-EXTERNAL"
    with series_lock(catalog, bar_type):  # another import of the series holds it, so this one waits
        importer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ntrader_pipeline.cli",
                "data",
                "import-csv",
                "--file",
                str(path),
                "--symbol",
                "ORCL",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            waiting = wait_for_lock_waiter(catalog.path / ".locks" / f"{bar_type}.lock", importer)
            assert waiting, importer.communicate()
            with path.open("ab") as writer:  # the file was read; its writer finishes the last row
                writer.write(case["appended"].encode())
        except BaseException:
            importer.kill()
            raise
    _, errors = importer.communicate(timeout=600)

    assert importer.returncode == 1, errors
    for line, _, _, rule in case["problems"]:
        assert f"{path}:{line}" in errors and rule in errors, errors
    assert "Traceback" not in errors


@pytest.mark.parametrize("name", sorted(YAML_EXPECTED))
def test_corpus_yaml_is_refused_naming_the_file(name):
    path = CORPUS / "yaml" / name
    with pytest.raises(StrategySpecError) as caught:
        check_spec(load_spec(path), ())
    assert str(caught.value) == YAML_EXPECTED[name].replace("{file}", str(path))


def test_corpus_yaml_through_validate_and_run_config(pipeline):
    """The CLI's two readers of strategy files refuse them with the same reasons, one line each."""
    files = sorted((CORPUS / "yaml").glob("*.yaml"))
    result = CliRunner().invoke(cli, ["strategy", "validate", *map(str, files)])
    assert result.exit_code == 1
    lines = [line for f in files for line in YAML_EXPECTED[f.name].replace("{file}", str(f)).splitlines()]
    assert result.stderr.splitlines() == [*lines, f"{len(lines)} problems in {len(files)} of {len(files)} files"]
    for line in lines:  # every problem at its line and column, printable, short
        assert re.match(r"^\S+\.yaml:\d+:\d+: ", line) and line.isprintable() and len(line) < 400, line
    deep = CORPUS / "yaml" / "01_deep_list.yaml"
    result = CliRunner().invoke(cli, ["backtest", "run-config", str(deep), "--symbol", "ORCL"])
    assert result.exit_code == 1
    assert result.stderr == f"error: {YAML_EXPECTED[deep.name].replace('{file}', str(deep))}\n"


def test_csv_problems_quote_no_line_and_no_more_than_an_excerpt_of_a_cell():
    """What the corpus files hold reaches no message: a line is never quoted, a cell only in part."""
    values = [(name, problem[2]) for name, problems in CSV_EXPECTED.items() for problem in problems]
    for name, value in values:
        assert value is None or (len(value) <= EXCERPT_CHARS and value.isprintable()), (name, value)
    environment = CORPUS / "csv" / "86_environment_block.csv"
    with pytest.raises(BarFileError) as caught:
        read_bar_csv(environment, "ORCL")
    for variable in filter(None, environment.read_bytes().split(b"\0")):
        assert variable.decode() not in str(caught.value)


def test_a_symlink_to_a_private_file_is_refused_without_its_contents(pipeline, tmp_path_factory):
    folder = tmp_path_factory.mktemp("private")
    secret = folder / "credentials"
    secret.write_text("PGPASSWORD=never-printed-4c2f9\nDB_USER=admin\n")
    secret.chmod(0o600)
    link = folder / "bars.csv"
    link.symlink_to(secret)
    with pytest.raises(BarFileError) as caught:
        pipeline.import_csv(link, "ORCL")
    assert caught.value.problems == [
        BarProblem(1, None, None, "no timestamp column (looked for timestamp, datetime, date, time and aliases)"),
        BarProblem(1, None, None, "no column for open, high, low, close, volume"),
    ]
    assert "never-printed" not in str(caught.value) and "DB_USER" not in str(caught.value)


def test_a_file_name_with_a_newline_keeps_each_problem_on_one_line(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / "ORCL\n2024.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-02,abc,186.5,184.75,185.95,100\n")
    with pytest.raises(BarFileError) as caught:
        pipeline.import_csv(path, "ORCL")
    assert str(caught.value).splitlines() == [
        f"{shown_path(path)}: no valid bars (1 problem); nothing was imported",
        f"{shown_path(path)}:2 column 'open': value 'abc': not a number",
    ]


# --- symbols and paths -------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", HOSTILE_SYMBOLS)
def test_hostile_symbol_is_refused_by_every_command(pipeline, symbol):
    runner = CliRunner()
    commands = [
        ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", symbol],
        ["backtest", "run", "--strategy", "sma_crossover", "--symbol", symbol],
        ["backtest", "run-config", str(STRATEGY_CONFIGS / "sma_crossover.yaml"), "--symbol", symbol],
        ["backtest", "backfill", "--symbol", "ORCL", "--symbol", symbol],
    ]
    instruments = f"AAPL,{symbol}"  # a list: blanks around commas are allowed, so " AAPL" and "A,B" pass
    if not all(is_symbol(s.strip()) for s in instruments.split(",") if s.strip()):
        commands.append(["data", "fetch", "--instruments", instruments, "--start", "2024-01-02"])
    for args in commands:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "is not a symbol" in result.stderr and SYMBOL_RULE.split(",")[0] in result.stderr, result.stderr
        assert "Traceback" not in result.output
    with pytest.raises(SymbolError, match="is not a symbol"):
        pipeline.import_csv(ORCL_DAILY, symbol)
    with pytest.raises(SymbolError, match="is not a symbol"):
        pipeline.add_symbols(["MSFT", symbol])


def test_us_share_classes_are_symbols(tmp_path, ntrader_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    runner = CliRunner()
    for given, stored in [("BRK.B", "BRK.B"), ("bf-b", "BF-B")]:
        result = runner.invoke(cli, ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", given])
        assert result.exit_code == 0, result.output
        assert f"of {stored}.XNAS-1-DAY-LAST-EXTERNAL" in result.stdout
    listed = runner.invoke(cli, ["data", "list", "--format", "json"])
    assert sorted(row["symbol"] for row in json.loads(listed.stdout)) == ["BF-B", "BRK.B"]


@pytest.mark.parametrize("key", ["../../../../ESCAPE/E", "A;DROP TABLE market_data", "orcl"])
def test_a_partition_key_added_by_hand_in_the_ui_is_refused_by_the_asset(pipeline, key):
    """The UI lets an operator add any dynamic partition key and materialize it with any file."""
    instance = pipeline.instance
    instance.add_dynamic_partitions("symbol", [key])
    try:
        job = pipeline.defs.resolve_job_def(INGEST_JOB)
        config = {"ops": {"csv_bars": {"config": {"file": str(ORCL_DAILY)}}}}
        result = job.execute_in_process(instance=instance, partition_key=key, run_config=config, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.error.to_string()  # the cause: the asset's own error
        assert ("is not a symbol" in message) or ("add and use 'ORCL' instead" in message), message
    finally:
        instance.delete_dynamic_partition("symbol", key)


def test_confined_refuses_every_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert confined(root, "a", "b.lock") == (root / "a" / "b.lock").resolve()
    for parts in [("..", "x"), ("../../../../ESCAPE/E.lock",), ("/etc/passwd",), ("link", "x"), ("a/../../x",)]:
        with pytest.raises(PathEscapeError, match="would lie outside"):
            confined(root, *parts)


def test_a_lock_for_a_hostile_series_name_is_never_created_outside_the_catalog(tmp_path):
    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.adapters.market_data_store import series_lock

    catalog = BarCatalog(tmp_path / "catalog", "XNAS")
    with pytest.raises(PathEscapeError):
        with series_lock(catalog, "../../../../ESCAPE/E.XNAS-1-DAY-LAST-EXTERNAL"):
            pass
    assert {p.name for p in tmp_path.iterdir()} <= {"catalog"}


# --- things that are not files, and files too large -------------------------------------------


def _refused(pipeline: Pipeline, path: Path, reason: str) -> None:
    with pytest.raises(BarFileError) as caught:
        pipeline.import_csv(path, "ORCL")
    assert caught.value.problems == [BarProblem(0, None, None, reason)]
    assert str(caught.value).splitlines()[0] == f"{path.resolve()}: {reason}; nothing was imported"


def test_directory_device_socket_and_missing_file_are_refused_at_once(pipeline, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("not_files")
    _refused(pipeline, scratch, "is a directory, not a regular file")
    _refused(pipeline, Path("/dev/zero"), "is a character device, not a regular file")
    _refused(pipeline, scratch / "missing.csv", "no such file")
    link = scratch / "zero.csv"
    link.symlink_to("/dev/zero")
    _refused(pipeline, link, "is a character device, not a regular file")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(scratch / "bars.sock"))
        _refused(pipeline, scratch / "bars.sock", "is a socket, not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_refused(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("unreadable") / "bars.csv"
    path.write_bytes(ORCL_DAILY.read_bytes())
    path.chmod(0)
    _refused(pipeline, path, "cannot be read (permission denied)")


def test_fifo_without_a_writer_is_refused_from_the_command_line_without_waiting(tmp_path):
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env["NTRADER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", "data", "import-csv", "--file", str(fifo), "--symbol", "ORCL"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a hang, not a speed limit
    )
    assert done.returncode == 1
    assert f"{fifo}: is a named pipe (FIFO), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_file_over_the_size_limit_is_refused_before_reading(pipeline, monkeypatch):
    monkeypatch.setenv("NTRADER_MAX_CSV_BYTES", "1000")
    limited = Pipeline.open(get_settings(), pipeline.instance)
    size = ORCL_DAILY.stat().st_size
    with pytest.raises(BarFileError) as caught:
        limited.import_csv(ORCL_DAILY, "ORCL")
    rule = f"{size:,} bytes is more than the 1,000 allowed for a CSV file (NTRADER_MAX_CSV_BYTES)"
    assert caught.value.problems == [BarProblem(0, None, None, rule)]


def test_a_line_longer_than_a_mebibyte_is_refused_by_line(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("huge") / "huge_field.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 09:30:00,185.25,186.50,184.75,185.95,2847300\n"
        f"2024-01-02 09:31:00,185.95,{'9' * (1 << 20)},185.50,186.10,1254800\n"
    )
    with pytest.raises(BarFileError) as caught:
        pipeline.import_csv(path, "ORCL")
    assert caught.value.problems == [
        BarProblem(3, None, None, "line is longer than 1,048,576 bytes (no bar needs that many)")
    ]


def test_strategy_file_that_is_not_a_file_or_too_large_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    cases = {
        big: f"{big}: 2,000,000 bytes is more than the 1,048,576 allowed for a strategy file",
        fifo: f"{fifo}: is a named pipe (FIFO), not a regular file",
        tmp_path: f"{tmp_path}: is a directory, not a regular file",
        tmp_path / "missing.yaml": f"{tmp_path / 'missing.yaml'}: no such file",
    }
    for path, message in cases.items():
        with pytest.raises(StrategySpecError) as caught:
            load_spec(path)
        assert str(caught.value) == message

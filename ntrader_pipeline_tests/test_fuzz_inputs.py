"""Fuzzing the two readers of user files: a CSV of bars and a strategy YAML.

Mutations of a real file (bytes inserted, replaced or deleted, drawn from tokens that broke
readers before: quotes, delimiters, BOMs, NULs, huge numbers, dates at the edges of the
nanosecond range) and plain random bytes. Whatever the input, the reader either returns a result
or raises the project's own error naming the file (and, for CSV, lines that exist); never another
exception. Bars the reader accepts must also encode for both stores, since that is where values
out of the engine's range used to crash. The profile is derandomized (conftest), so CI sees the
same examples every run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntrader_pipeline.adapters.catalog import bars_table
from ntrader_pipeline.adapters.warehouse.bulk import bar_text_columns
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.strategy_specs import StrategySpecError, check_spec, load_spec
from ntrader_pipeline.core.validation import BarFileError
from ntrader_pipeline_tests.support import STRATEGY_CONFIGS

CSV_SEED = (
    b"timestamp,open,high,low,close,volume\n"
    b"2024-01-02 09:30:00,185.25,186.50,184.75,185.95,2847300\n"
    b"2024-01-02 09:31:00,185.95,186.25,185.50,186.10,1254800\n"
    b"2024-01-02 09:32:00,186.10,186.75,185.80,186.45,982100\n"
    b"2024-01-02 09:33:00,186.45,187.20,186.20,186.80,1134500\n"
)
CSV_TOKENS = [
    b'"',
    b",",
    b";",
    b"\t",
    b"|",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xe9",
    "🚀".encode(),
    b" ",
    b".",
    b"-",
    b"+",
    b"e",
    b"1e308",
    b"-0",
    b"nan",
    b"inf",
    b"1e-400",
    b"0x10",
    b"9999-12-31",
    b"1677-01-01",
    b"2262-04-12",
    b"1969-12-31",
    b"99999999999999999999",
    b"20240230",
    b"17014118346047",
    b"12345678901.123456",
    b"1e19",
    b"00:00:60",
    b"Z",
    b"+05:00",
]
YAML_SEED = (STRATEGY_CONFIGS / "momentum.yaml").read_bytes()
YAML_TOKENS = [
    b"&a ",
    b"*a",
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"- ",
    b"!!python/object:os.system ",
    b"!!binary ",
    b"!!set ",
    b"\t",
    b"\n  ",
    b"---\n",
    b"\x00",
    b"\xe9",
    b"<<: *a\n",
    b"? ",
    b"|\n",
    b'"',
    b"'",
    b"%YAML 1.1\n",
    b".inf",
    b"1e999",
    b"2024-02-30",
    b"9" * 50,
    b"null",
    b"~",
    b"#",
    b"strategy_path: 'os:system'\n",
]
FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
SCRATCH = Path(tempfile.mkdtemp(prefix="ntrader-fuzz-"))


def mutated(seed: bytes, tokens: list[bytes]) -> st.SearchStrategy[bytes]:
    """The seed with up to six edits: a token or random bytes inserted or written over, or a cut."""
    edit = st.tuples(
        st.sampled_from(["insert", "replace", "delete"]),
        st.integers(0, len(seed)),
        st.one_of(st.sampled_from(tokens), st.binary(min_size=1, max_size=4)),
    )

    def apply(edits) -> bytes:
        data = bytearray(seed)
        for kind, at, chunk in edits:
            at = min(at, len(data))
            if kind == "insert":
                data[at:at] = chunk
            elif kind == "replace":
                data[at : at + len(chunk)] = chunk
            else:
                del data[at : at + len(chunk)]
        return bytes(data)

    return st.one_of(st.lists(edit, min_size=1, max_size=6).map(apply), st.binary(max_size=300))


@FUZZ
@given(mutated(CSV_SEED, CSV_TOKENS))
def test_csv_reader_reads_or_names_file_and_line(data: bytes):
    path = SCRATCH / "fuzz.csv"
    path.write_bytes(data)
    try:
        series = read_bar_csv(path, "FUZZ")
    except BarFileError as error:
        assert error.problems, "an error without a problem"
        assert str(error).startswith(f"{path}:")
        last_line = data.count(b"\n") + data.count(b"\r") + 2
        assert all(0 <= p.line <= last_line for p in error.problems), error.problems
        return
    assert len(series) > 0
    bars_table(series, "XNAS")  # what the catalog writes: the fixed-point encoding must not fail
    bar_text_columns(series)  # what the table gets


@FUZZ
@given(mutated(YAML_SEED, YAML_TOKENS))
def test_strategy_loader_loads_or_names_the_file(data: bytes):
    path = SCRATCH / "fuzz.yaml"
    path.write_bytes(data)
    try:
        check_spec(load_spec(path), ())
    except StrategySpecError as error:
        assert str(error).startswith(str(path)), str(error)

"""The malformed-file corpus: each file must fail with exactly the problems listed for it.

``corpus/csv/expected.json`` maps each file to its problems as [line, column, value, rule]; the
reader must report those and nothing else, so a message that drifts (wrong line after a BOM or a
blank line, a second message for one bad cell) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.validation import BarFileError, BarProblem

CORPUS = Path(__file__).parent / "corpus" / "csv"
EXPECTED: dict[str, list[list]] = json.loads((CORPUS / "expected.json").read_text())


def test_corpus_is_complete():
    files = sorted(p.name for p in CORPUS.glob("*.csv"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_reports_exact_problems(name: str):
    path = CORPUS / name
    with pytest.raises(BarFileError) as caught:
        read_bar_csv(path, "TEST")
    error = caught.value
    assert [BarProblem(*p) for p in EXPECTED[name]] == error.problems
    first = error.problems[0]
    assert f"{path}:{first.line}" in str(error)
    assert first.rule in str(error)


@pytest.mark.parametrize("name", ["14_negative_open.csv", "29_nan_price.csv", "37_blank_lines_count.csv"])
def test_skip_drops_exactly_the_listed_rows(name: str):
    series = read_bar_csv(CORPUS / name, "TEST", on_invalid="skip")
    bad_lines = sorted({p[0] for p in EXPECTED[name]})
    assert series.notes["skipped_lines"] == bad_lines
    assert len(series) == series.notes["source_rows"] - len(bad_lines)

"""The malformed-file corpus: each file must fail with exactly the problems listed for it.

``corpus/csv/expected.json`` maps each file to its problems as [line, column, value, rule]; the
reader must report those and nothing else, so a message that drifts (wrong line after a BOM or a
blank line, a second message for one bad cell) fails here.
"""

from __future__ import annotations

import json
import shutil
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
    assert series.notes.skipped_lines == bad_lines
    assert len(series) == series.notes.source_rows - len(bad_lines)


# Files read while a writer still appends to them: each holds what a reader saw, its last row cut
# mid-number; "appended" is what the writer adds after the read (see test_hostile_input for the
# same cases through the import command).
GROWING = CORPUS / "growing"
GROWING_EXPECTED: dict[str, dict] = json.loads((GROWING / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(GROWING_EXPECTED))
def test_a_last_line_cut_by_a_writer_is_refused_once_the_file_is_seen_to_grow(tmp_path: Path, name: str):
    case = GROWING_EXPECTED[name]
    path = tmp_path / name
    shutil.copyfile(GROWING / name, path)
    as_read = read_bar_csv(path, "TEST")  # nothing tells yet: a complete last line may lack a newline
    with path.open("ab") as writer:
        writer.write(case["appended"].encode())

    with pytest.raises(BarFileError) as caught:
        as_read.recheck()  # what the store asks just before it publishes

    assert caught.value.problems == [BarProblem(*p) for p in case["problems"]]
    complete = read_bar_csv(path, "TEST")  # read again once written: the whole last row
    assert len(complete) == len(as_read) and complete.recheck is None
    assert not complete.frame.iloc[-1].equals(as_read.frame.iloc[-1])

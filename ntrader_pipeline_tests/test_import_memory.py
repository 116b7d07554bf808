"""A big CSV import must stay in bounded memory: columns and batches, never a Python object per bar.

The import (``Pipeline.import_csv``: read, validate, stage, warehouse, checks) runs in a child
process, which resets its peak resident memory after start-up and reports how far the import
raised it. Before the import was made column-wise and batched, 200,000 one-minute bars raised it by
about 360 MB (Python strings per cell for messages, a dict per row for SQLite); now by about
145 MB. No time is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

pytestmark = pytest.mark.slow  # a big import in a child process

ROWS = 200_000
GROWTH_LIMIT_MB = 250  # between what the import needs now (~145) and what it needed before (~360)

CHILD = """
import json, os, sys, warnings
warnings.filterwarnings("ignore")
from ntrader_pipeline.pipeline import Pipeline

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

pipeline = Pipeline.open()
pipeline.import_csv(sys.argv[1], "BIG", "1MIN")  # a first small import: every lazy import is done
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident set
before = status("VmRSS:")
stored = pipeline.import_csv(sys.argv[2], "BIG", "1MIN")
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM:"), "bars": stored["bars_written"]}))
"""


def minute_csv(path: Path, rows: int) -> Path:
    """Valid one-minute bars, 09:30-15:59 New York time on consecutive weekdays."""
    rng = np.random.default_rng(3)
    days = np.busday_offset("2001-01-02", np.arange(rows // 390 + 1), roll="forward").astype("datetime64[m]")
    minutes = (days[:, None] + np.timedelta64(570, "m") + np.arange(390).astype("timedelta64[m]")).ravel()[:rows]
    close = np.round(50 + np.cumsum(rng.normal(0, 0.02, rows)).clip(-40, None), 2)
    table = pa.table(
        {
            "timestamp": pa.array(minutes.astype("datetime64[s]").astype(str)),
            "open": close,
            "high": np.round(close + 0.05, 2),
            "low": np.round(close - 0.05, 2),
            "close": close,
            "volume": rng.integers(100, 10_000, rows),
        }
    )
    pacsv.write_csv(table, path)
    return path


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak memory")
def test_big_import_raises_peak_memory_by_a_bounded_amount(tmp_path):
    small = minute_csv(tmp_path / "small.csv", 1_000)
    big = minute_csv(tmp_path / "big.csv", ROWS)
    env = {**os.environ, "NTRADER_HOME": str(tmp_path / "home"), "DAGSTER_HOME": ""}
    env.pop("NTRADER_WAREHOUSE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(small), str(big)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["bars"] == ROWS
    growth = report["peak_mb"] - report["before_mb"]
    assert growth < GROWTH_LIMIT_MB, f"importing {ROWS:,} bars raised peak memory by {growth:.0f} MB: {report}"

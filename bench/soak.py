"""The long soak: the deployed stack (webserver, daemon, Postgres) unattended through N trading days.

Same driver as the test suite's short soak (``ntrader_pipeline_tests/operations``), with every
strategy file by default. Prints runs, failed runs and seconds per simulated day, then whatever the
end state got wrong (nothing, on a good day). Postgres from ``NTRADER_BENCH_POSTGRES_URL`` (default:
the local server; a database is created and dropped).

Run: ``uv run python bench/soak.py --days 20 [--strategies sma_crossover,momentum] [--interval 2]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from ntrader_pipeline_tests.operations import end_state
from ntrader_pipeline_tests.operations.soak import soak, summary
from ntrader_pipeline_tests.support.databases import fresh_database

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--strategies", default="", help="comma-separated strategy files; default: all")
    parser.add_argument("--interval", type=int, default=2, help="sensor interval in seconds")
    args = parser.parse_args()
    strategies = [s for s in args.strategies.split(",") if s] or None

    admin_url = make_url(os.environ.get("NTRADER_BENCH_POSTGRES_URL", DEFAULT_URL))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with fresh_database(admin, "ntrader_soak") as url, tempfile.TemporaryDirectory(prefix="ntrader-soak-") as work:
            with soak(Path(work), url, args.days, strategies, args.interval) as (record, instance):
                figures = summary(record, instance)
                problems = end_state.all_problems(record, instance)
                for problem in problems:
                    print(f"problem: {problem}")
    finally:
        admin.dispose()
    print(" ".join(f"{key}={value}" for key, value in figures.items()))
    print(f"end_state_problems={len(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

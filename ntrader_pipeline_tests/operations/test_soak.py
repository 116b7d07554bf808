"""The short soak: the real webserver and daemon on Postgres through a few trading days.

``bench/soak.py --days 20`` runs the long one with the same driver and prints its figures.
"""

from __future__ import annotations

import pytest

from ntrader_pipeline_tests.operations import end_state
from ntrader_pipeline_tests.operations.soak import soak, summary

pytestmark = pytest.mark.slow  # the deployed stack through trading days: minutes

DAYS = 3  # a plain day, the malformed file, then its catch-up beside the IB day
STRATEGIES = ["sma_crossover"]  # each strategy adds a run per symbol and day; bench/soak.py runs them all


def test_the_stack_runs_trading_days_unattended(tmp_path, postgres_url):
    with soak(tmp_path, postgres_url, DAYS, STRATEGIES, interval=5) as (record, instance):
        print(summary(record, instance))
        assert end_state.all_problems(record, instance) == []

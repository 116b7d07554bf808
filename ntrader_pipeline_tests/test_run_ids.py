"""Warehouse run ids of a Dagster run's partitions are the same in every retry of that run, so a
retried run (its worker died) replaces what the first attempt stored instead of adding to it."""

from __future__ import annotations

from dagster import DagsterRun

from ntrader_pipeline.defs.runs import run_ids


def test_a_retry_gets_the_first_attempts_ids_and_another_run_gets_new_ones():
    first = DagsterRun(job_name="__ASSET_JOB", run_id="first")
    retry = DagsterRun(job_name="__ASSET_JOB", run_id="retry", parent_run_id="first", root_run_id="first")
    other = DagsterRun(job_name="__ASSET_JOB", run_id="other")
    key = "sma_crossover|ORCL"
    ids = run_ids(first, key)
    sequence = [ids(), ids(), ids()]  # a sweep or a walk-forward takes several, always in the same order
    assert len(set(sequence)) == 3 and all(len(i) == 12 for i in sequence)
    again = run_ids(retry, key)
    assert [again(), again(), again()] == sequence
    assert run_ids(other, key)() != sequence[0]
    assert run_ids(first, "sma_crossover|NVDA")() != sequence[0]

"""Dagster definitions, one folder per domain, over the pure core in ``ntrader_pipeline.core``."""

"""The ``ntrader`` command line: the same Dagster jobs the web UI runs, from a terminal."""

from ntrader_pipeline.cli.main import main

__all__ = ["main"]

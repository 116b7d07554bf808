"""``python -m ntrader_pipeline.cli`` is the same as ``ntrader``."""

from ntrader_pipeline.cli.main import main

main()

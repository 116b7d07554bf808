"""``python -m ntrader_pipeline.cli`` is the same as ``ntrader``."""

from ntrader_pipeline.cli.main import main

if __name__ == "__main__":  # not again in a process the backfill's pool starts
    main()

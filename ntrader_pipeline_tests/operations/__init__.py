"""Operations tests: the deployed stack run as real processes (see ``soak.py``)."""

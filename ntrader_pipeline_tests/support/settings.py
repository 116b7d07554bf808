"""Point ntrader's settings at a private home, through the environment as a user would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ntrader_pipeline_tests.support.data import STRATEGY_CONFIGS

if TYPE_CHECKING:
    import pytest

# Switches the suite reads itself: they survive ``point_settings_at``.
TEST_SWITCHES = {"NTRADER_REQUIRE_POSTGRES", "NTRADER_TEST_POSTGRES_URL", "NTRADER_UPDATE_SNAPSHOTS"}


def point_settings_at(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Settings read from the environment now find every store under ``home`` (and the bundled
    strategies): every other ``NTRADER_`` variable but the test switches is removed."""
    for key in list(os.environ):
        if key.startswith("NTRADER_") and key not in TEST_SWITCHES:
            monkeypatch.delenv(key)
    monkeypatch.setenv("NTRADER_HOME", str(home))
    monkeypatch.setenv("NTRADER_STRATEGY_CONFIGS_DIR", str(STRATEGY_CONFIGS))

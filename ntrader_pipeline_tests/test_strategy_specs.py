"""Strategy YAML files: every shipped file validates, bad files say file, key and why, and user
strategy modules load only from the operator's allowlist."""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.strategies import REGISTRY
from ntrader_pipeline.core.strategy_specs import (
    StrategySpecError,
    check_spec,
    load_spec,
    load_specs,
    module_allowed,
    spec_from_text,
)
from ntrader_pipeline.settings import get_settings
from ntrader_pipeline_tests.strategy_series import VENUE, daily_series
from ntrader_pipeline_tests.support import STRATEGY_CONFIGS

SHIPPED = sorted(STRATEGY_CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_yaml_validates(path: Path):
    spec = load_spec(path)
    check_spec(spec, get_settings().strategy_module_allowlist)
    assert spec.name == path.stem


def test_every_registered_strategy_ships_a_yaml():
    shipped = {spec.strategy for spec in load_specs(STRATEGY_CONFIGS).values()}
    assert set(REGISTRY) <= shipped


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "text,expected",
    [
        ("strategy: nope\n", "unknown strategy 'nope'; registered: sma_crossover"),
        ("strategy: sma_crossover\nconfig:\n  fast_period: ten\n", "config.fast_period: Expected `int`, got `str`"),
        (
            "strategy: sma_crossover\nconfig:\n  fastperiod: 5\n",
            "config.fastperiod: unknown parameter (see `ntrader strategy list`)",
        ),
        (
            "strategy: sma_crossover\nconfig:\n  fast_period: 40\n",
            "config.fast_period: fast_period must be positive and below slow_period",
        ),
        (
            "strategy: momentum\nconfig:\n  oversold: 0.3\n  overbought: 0.7\n",
            "config.overbought: overbought 0.7 looks like the 0–1 scale; thresholds are RSI on the 0–100 scale: "
            "did you mean 30 and 70?",
        ),
        ("strategy: mean_reversion\nconfig:\n  k: -1\n", "k (band width in standard deviations) must be positive"),
        (
            "strategy: momentum\nconfig:\n  max_drawdown_pct: 10\n",
            "config.max_drawdown_pct: risk limits go under backtest.risk",
        ),
        (
            "strategy: momentum\nbacktest:\n  fees:\n    per_share: -1\n",
            "backtest.fees.per_share: Input should be greater than or equal to 0",
        ),
        (
            "strategy: momentum\nbacktest:\n  fees:\n    model: ibkr\n",
            "backtest.fees.model: Input should be 'per_share' or 'zero'",
        ),
        (
            "strategy: momentum\nbacktest:\n  risk:\n    max_drawdown_pct: 120\n",
            "backtest.risk.max_drawdown_pct: Input should be less than 100",
        ),
        (
            "strategy: momentum\nbacktest:\n  risk:\n    max_lots: 3\n",
            "backtest.risk.max_lots: unknown key; backtest.risk takes max_position_shares, max_notional_per_order, "
            "max_drawdown_pct",
        ),
        (
            "strategy: momentum\nbacktest:\n  start: 2020-02-01\n  end: 2020-01-01\n",
            "backtest.end: the end (2020-01-01) is before the start (2020-02-01)",
        ),
        (
            "strategy: momentum\nstrategy_path: a.b:C\nconfig_path: a.b:D\n",
            "strategy_path: give either strategy or strategy_path + config_path, not both",
        ),
        ("strategy_path: a.b:C\n", "or both strategy_path and config_path"),
        ("strategy_path: ../evil:C\nconfig_path: a:B\n", "strategy_path: must look like 'package.module:ClassName'"),
        ("strategy: momentum\nconfig:\n  equity_percent: 100\n", "config.equity_percent: 100 leaves no room for fees"),
        ("- strategy: momentum\n", "expected a mapping of settings at the top level"),
        ("strategy: [momentum\n", "not valid YAML"),
        ("name: other\nstrategy: momentum\n", "name: the file name is the strategy's name"),
    ],
)
def test_bad_file_names_file_key_and_reason(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(StrategySpecError) as error:
        load_spec(path)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", str(error.value))  # every problem at its line:column
    assert expected in str(error.value)


def test_yaml_tags_never_run_code(tmp_path):
    path = write(tmp_path, "strategy: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(
        StrategySpecError, match=r"bad\.yaml:1:11: strategy: tag '!!python/object/apply:os\.system' is not"
    ):
        load_spec(path)


# --- user strategies and the allowlist ----------------------------------------------------------

STRATEGY_MODULE = """
from pathlib import Path
from ntrader_pipeline.core.strategies import SignalStrategy, SignalStrategyConfig, Target
from nautilus_trader.trading.strategy import Strategy

Path(__file__).with_name("imported.marker").write_text("imported")  # proves the module ran


class AlwaysLongConfig(SignalStrategyConfig, frozen=True):
    hold: bool = True


class AlwaysLong(SignalStrategy):
    def target(self, bar):
        return Target.LONG if self.config.hold else Target.FLAT


class NotASignalStrategy(Strategy):
    pass
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A fresh importable package ``<name>.strategies`` whose import leaves a marker file."""
    name = f"userstrats_{uuid.uuid4().hex[:8]}"
    package = tmp_path / "site" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "strategies.py").write_text(STRATEGY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield name, package / "imported.marker"
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def custom_yaml(tmp_path: Path, module: str, strategy: str = "AlwaysLong", config: str = "AlwaysLongConfig") -> Path:
    return write(
        tmp_path,
        f"""\
        strategy_path: "{module}:{strategy}"
        config_path: "{module}:{config}"
        config:
          hold: true
          sizing: fixed
          fixed_quantity: 10
        """,
        name="custom.yaml",
    )


def test_user_strategy_refused_before_import_when_not_allowlisted(tmp_path, user_package):
    name, marker = user_package
    spec = load_spec(custom_yaml(tmp_path, f"{name}.strategies"))  # loading the file imports nothing
    with pytest.raises(StrategySpecError) as error:
        check_spec(spec, allowlist=["ntrader_pipeline"])
    message = str(error.value)
    assert re.search(
        r"custom\.yaml:1:16: strategy_path: module '\w+\.strategies' is not on the strategy module allowlist", message
    )
    assert not marker.exists() and f"{name}.strategies" not in sys.modules


def test_prefix_trick_is_refused(tmp_path, user_package):
    name, marker = user_package
    spec = load_spec(custom_yaml(tmp_path, f"{name}.strategies"))
    with pytest.raises(StrategySpecError, match="not on the strategy module allowlist"):
        check_spec(spec, allowlist=[name[:-1]])  # "userstrats_1234567" must not allow "userstrats_12345678"
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,allowlist,allowed",
    [
        ("ntrader_pipeline.core", ["ntrader_pipeline"], True),
        ("ntrader_pipeline", ["ntrader_pipeline"], True),
        ("ntrader_pipeline_evil.x", ["ntrader_pipeline"], False),
        ("ntrader_pipeline_evil", ["ntrader_pipeline."], False),
        ("os", [], False),
        ("os", [""], False),
        ("team.strats.momo", ["team.strats", "other"], True),
        ("team.stratsx", ["team.strats"], False),
    ],
)
def test_module_allowlist_matches_whole_package_names(module, allowlist, allowed):
    assert module_allowed(module, allowlist) is allowed


def test_allowlisted_user_strategy_loads_and_runs(tmp_path, user_package):
    name, marker = user_package
    spec = load_spec(custom_yaml(tmp_path, f"{name}.strategies"))
    check_spec(spec, allowlist=[name])
    assert marker.exists()
    series = daily_series(100 + np.arange(20.0))
    result = run_backtest(series, spec, VENUE, "custom", strategy_modules=[name])
    assert result.equity["position"].iloc[-1] == 10
    with pytest.raises(StrategySpecError, match="not on the strategy module allowlist"):
        run_backtest(series, spec, VENUE, "custom")  # no allowlist given: refused


def test_allowlisted_module_must_hold_signal_strategies(tmp_path, user_package):
    name, _ = user_package
    spec = load_spec(custom_yaml(tmp_path, f"{name}.strategies", strategy="NotASignalStrategy"))
    with pytest.raises(StrategySpecError, match="is not a SignalStrategy subclass"):
        check_spec(spec, allowlist=[name])


def test_user_config_is_validated_after_import(tmp_path, user_package):
    name, _ = user_package
    path = custom_yaml(tmp_path, f"{name}.strategies")
    path.write_text(path.read_text().replace("hold: true", "hold: maybe"))
    with pytest.raises(StrategySpecError, match=r"custom\.yaml:4:9: config\.hold: Expected `bool`, got `str`"):
        check_spec(load_spec(path), allowlist=[name])


def test_allowlist_setting_reads_comma_separated_env(monkeypatch):
    monkeypatch.setenv("NTRADER_STRATEGY_MODULE_ALLOWLIST", "team.strats, lab.models")
    assert get_settings().strategy_module_allowlist == ["team.strats", "lab.models"]


def test_a_files_text_gives_the_files_spec_within_the_same_limits():
    """What a run config carries (``spec_file``) reads as the file does, and is refused as it is."""
    path = STRATEGY_CONFIGS / "sma_crossover.yaml"
    carried, read = spec_from_text("sma_crossover", path.read_text()), load_spec(path)
    assert (carried.name, carried.canonical()) == (read.name, read.canonical())
    with pytest.raises(StrategySpecError, match=r"^big\.yaml: larger than"):
        spec_from_text("big", "#" * ((1 << 20) + 1))
    with pytest.raises(StrategySpecError, match=r"^deep\.yaml:1:33: nested more than 32 levels"):
        spec_from_text("deep", "[" * 40 + "]" * 40)
    with pytest.raises(StrategySpecError, match=r"^bad\.yaml:1:"):
        spec_from_text("bad", "strategy: [unclosed")

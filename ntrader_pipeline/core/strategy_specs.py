"""Strategy YAML files: one strategy instance (and its backtest settings) per file.

The file's stem names the instance; it is the key of the backtest's ``strategy`` partition.
A file names a registered strategy (``strategy: momentum``) or a user's own classes
(``strategy_path: "pkg.module:Class"`` + ``config_path: "pkg.module:ConfigClass"``). Files are
read with ``yaml.safe_load`` and user modules are imported only from prefixes on the operator's
allowlist, checked before anything is imported: a YAML file is data, never a way to run code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml
from nautilus_trader.common.config import msgspec_decoding_hook
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.fees import ZERO_COMMISSION, PerShareCommission
from ntrader_pipeline.core.strategies import (
    REGISTRY,
    RISK_FIELDS,
    RegisteredStrategy,
    SignalStrategy,
    SignalStrategyConfig,
)
from ntrader_pipeline.core.sweeps import SweepSpec, WalkForwardSpec, parameter_key

CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_KEY_LENGTH = 128  # a run's strategy name in the warehouse (backtest_runs.strategy)
SET_BY_BACKTEST = ("instrument_id", "bar_type", "strategy_id", "order_id_tag")
# Placeholders used to check a ``config:`` block before any bars are known.
CHECK_INSTRUMENT = "CHECK.XNAS"
CHECK_BAR_TYPE = "CHECK.XNAS-1-DAY-LAST-EXTERNAL"


class StrategySpecError(ValueError):
    """A strategy file that cannot be used, with the file and key named."""


class FeeSettings(BaseModel):
    """Per-share commission; ``model: zero`` for none."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["per_share", "zero"] = "per_share"
    per_share: Decimal = Field(Decimal("0.005"), ge=0, description="USD per share")
    minimum: Decimal = Field(Decimal("1"), ge=0, description="USD per order at least")
    max_percent: Decimal = Field(Decimal("1"), ge=0, le=100, description="percent of trade value at most")

    def schedule(self) -> PerShareCommission:
        if self.model == "zero":
            return ZERO_COMMISSION
        return PerShareCommission(self.per_share, self.minimum, self.max_percent)


class RiskSettings(BaseModel):
    """Limits enforced during the backtest; each one that triggers is recorded in the result."""

    model_config = ConfigDict(extra="forbid")

    max_position_shares: int | None = Field(None, gt=0, description="entries are cut to this many shares")
    max_notional_per_order: Decimal | None = Field(
        None, gt=0, description="USD; NautilusTrader's RiskEngine denies larger orders"
    )
    max_drawdown_pct: float | None = Field(
        None, gt=0, lt=100, description="flatten and halt once equity is this % below its peak"
    )

    def strategy_fields(self) -> dict[str, Any]:
        return {
            "max_position_shares": self.max_position_shares,
            "max_notional_per_order": None if self.max_notional_per_order is None else float(self.max_notional_per_order),
            "max_drawdown_pct": self.max_drawdown_pct,
        }


class BacktestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeframe: Timeframe = Timeframe.DAILY
    start: date | None = None
    end: date | None = None
    starting_balance: Decimal = Field(Decimal("100000"), gt=0)
    fees: FeeSettings = Field(default_factory=FeeSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)

    @model_validator(mode="after")
    def _ordered(self) -> BacktestSettings:
        if self.start and self.end and self.start > self.end:
            raise ValueError("start must not be after end")
        return self


class StrategySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    strategy: str | None = None
    strategy_path: str | None = None
    config_path: str | None = None
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    benchmark: str | None = Field(
        None, pattern=r"^[A-Z0-9][A-Z0-9.\-]*$", description="stored symbol to measure against; default: the run's own"
    )
    sweep: SweepSpec | None = None
    walk_forward: WalkForwardSpec | None = None
    _source: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """The file this spec was read from (for messages)."""
        return self._source or self.name

    @property
    def registered(self) -> RegisteredStrategy:
        return REGISTRY[self.strategy]

    @property
    def is_custom(self) -> bool:
        return self.strategy is None

    @model_validator(mode="after")
    def _one_strategy(self) -> StrategySpec:
        if self.strategy is not None:
            if self.strategy_path or self.config_path:
                raise ValueError("give either strategy or strategy_path + config_path, not both")
            if self.strategy not in REGISTRY:
                raise ValueError(f"unknown strategy {self.strategy!r}; registered: {', '.join(REGISTRY)}")
        elif not (self.strategy_path and self.config_path):
            raise ValueError(
                f"name a registered strategy (strategy: one of {', '.join(REGISTRY)}) "
                "or both strategy_path and config_path"
            )
        for key in ("strategy_path", "config_path"):
            value = getattr(self, key)
            if value is not None and not CLASS_PATH.match(value):
                raise ValueError(f"{key} must look like 'package.module:ClassName', not {value!r}")
        for key in self.config:
            if key in RISK_FIELDS:
                raise ValueError(f"config.{key}: risk limits go under backtest.risk, not config")
            if key in SET_BY_BACKTEST:
                raise ValueError(f"config.{key}: set by the backtest, not by the file")
        if self.strategy is not None:
            reg = self.registered
            build_strategy_config(reg.config_cls, self.config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=None)
        return self

    @model_validator(mode="after")
    def _fees_fit_cash(self) -> StrategySpec:
        """A long-only run uses a cash account: the entry and its commission must fit the cash."""
        percent = self.config.get("equity_percent", 95.0)
        if not self.config.get("allow_short", False) and isinstance(percent, int | float):
            room = 100 - float(self.backtest.fees.schedule().max_percent)
            if percent > room:
                raise ValueError(
                    f"config.equity_percent: {percent} leaves no room for fees of up to "
                    f"{self.backtest.fees.max_percent}% on a long-only (cash) account; use at most {room:g}"
                )
        return self

    @model_validator(mode="after")
    def _sweep_fits(self) -> StrategySpec:
        """Every swept parameter is one the ``config:`` block may set, and every set builds a config."""
        if self.walk_forward is not None and self.sweep is None:
            raise ValueError("walk_forward: needs a sweep: block to pick the best parameter set from")
        if self.sweep is None:
            return self
        for name in self.sweep.parameters:
            if name in RISK_FIELDS or name in SET_BY_BACKTEST:
                raise ValueError(f"sweep: {name} cannot be swept (set by backtest.risk or by the backtest)")
        for params in self.sweep.parameter_sets():
            if len(parameter_key(self.name, params)) > MAX_KEY_LENGTH:
                raise ValueError(f"sweep: set {parameter_key(self.name, params)}: the key is longer than "
                                 f"{MAX_KEY_LENGTH} characters; shorten the file name")
        if self.strategy is not None:
            for params in self.sweep.parameter_sets():
                try:
                    build_strategy_config(self.registered.config_cls, {**self.config, **params}, CHECK_INSTRUMENT,
                                          CHECK_BAR_TYPE, source=None)
                except ValueError as exc:
                    raise ValueError(f"sweep: set {parameter_key(self.name, params)}: {exc}") from None
        return self

    def with_parameters(self, params: dict[str, Any]) -> StrategySpec:
        """This spec with one parameter set applied, named by its key, without sweep or walk-forward."""
        spec = self.model_copy(update={
            "name": parameter_key(self.name, params), "config": {**self.config, **params},
            "sweep": None, "walk_forward": None,
        })
        spec._source = self._source
        return spec

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data, stored with every run so it can be reproduced."""
        return self.model_dump(mode="json")


def build_strategy_config(
    config_cls: type[SignalStrategyConfig],
    params: dict[str, Any],
    instrument_id: str,
    bar_type: str,
    risk: RiskSettings | None = None,
    source: str | None = "",
) -> SignalStrategyConfig:
    """The strategy's frozen config from a file's ``config:`` block, type-checked field by field."""
    raw = {**params, **(risk or RiskSettings()).strategy_fields(), "instrument_id": instrument_id, "bar_type": bar_type}
    try:
        return msgspec.convert(raw, config_cls, dec_hook=msgspec_decoding_hook)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = re.search(r"at `\$\.(\w+)`", message)
        unknown = re.search(r"unknown field `(\w+)`", message)
        key = where.group(1) if where else unknown.group(1) if unknown else None
        reason = re.sub(r" - at `\$[.\w]*`", "", message)
        text = f"config.{key}: {reason}" if key else f"config: {reason}"
        if source is None:  # inside pydantic validation: the caller adds the file name
            raise ValueError(text) from None
        raise StrategySpecError(f"{source}: {text}") from None


def module_allowed(module: str, allowlist: Sequence[str]) -> bool:
    """True when ``module`` is an allowlisted prefix or inside one (``a.b`` allows ``a.b.c``,
    never ``a.bc``)."""
    for prefix in allowlist:
        prefix = prefix.strip().rstrip(".")
        if prefix and (module == prefix or module.startswith(prefix + ".")):
            return True
    return False


def resolve_strategy(
    spec: StrategySpec, allowlist: Sequence[str] = ()
) -> tuple[type[SignalStrategy], type[SignalStrategyConfig]]:
    """The strategy and config classes of ``spec``; user classes only from allowlisted modules."""
    if not spec.is_custom:
        return spec.registered.strategy_cls, spec.registered.config_cls
    paths = {"strategy_path": spec.strategy_path, "config_path": spec.config_path}
    for key, path in paths.items():  # every check before any import
        module = path.split(":", 1)[0]
        if not module_allowed(module, allowlist):
            allowed = ", ".join(allowlist) if allowlist else "empty"
            raise StrategySpecError(
                f"{spec.source}: {key}: module {module!r} is not on the strategy module allowlist "
                f"({allowed}); the operator must add its package to NTRADER_STRATEGY_MODULE_ALLOWLIST"
            )
    loaded = {}
    for key, path in paths.items():
        module_name, attribute = path.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise StrategySpecError(f"{spec.source}: {key}: cannot import {module_name!r} ({exc})") from None
        if not hasattr(module, attribute):
            raise StrategySpecError(f"{spec.source}: {key}: module {module_name!r} has no {attribute!r}")
        loaded[key] = getattr(module, attribute)
    strategy_cls, config_cls = loaded["strategy_path"], loaded["config_path"]
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, SignalStrategy)):
        raise StrategySpecError(
            f"{spec.source}: strategy_path: {spec.strategy_path} is not a SignalStrategy subclass "
            "(sizing, the long-only switch and risk limits need one)"
        )
    if not (isinstance(config_cls, type) and issubclass(config_cls, SignalStrategyConfig)):
        raise StrategySpecError(
            f"{spec.source}: config_path: {spec.config_path} is not a SignalStrategyConfig subclass"
        )
    return strategy_cls, config_cls


def check_spec(spec: StrategySpec, allowlist: Sequence[str] = ()) -> None:
    """Everything short of running: classes resolve and the ``config:`` block fits them."""
    _, config_cls = resolve_strategy(spec, allowlist)
    build_strategy_config(config_cls, spec.config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, spec.backtest.risk, spec.source)


def parse_spec(name: str, data: Any, source: str) -> StrategySpec:
    if not isinstance(data, dict):
        raise StrategySpecError(f"{source}: expected a mapping at the top level")
    if "name" in data:
        raise StrategySpecError(f"{source}: name: the file name is the strategy's name; remove the key")
    try:
        spec = StrategySpec(name=name, **data)
    except ValidationError as exc:
        reasons = "; ".join(_reason(err) for err in exc.errors())
        raise StrategySpecError(f"{source}: {reasons}") from None
    spec._source = source
    return spec


def _reason(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith(("config.", "config:")) or not where:
        return message
    return f"{where}: {message}"


def load_spec(path: str | Path) -> StrategySpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StrategySpecError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise StrategySpecError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(path.stem, data, str(path))


def load_specs(folder: str | Path) -> dict[str, StrategySpec]:
    """Every ``*.yaml`` in ``folder``, by name; one bad file fails the whole load, loudly."""
    return {spec.name: spec for spec in map(load_spec, sorted(Path(folder).glob("*.yaml")))}

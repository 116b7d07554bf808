"""Strategy YAML files: one strategy instance (and its backtest settings) per file.

The file's stem names the instance; it is the key of the backtest's ``strategy`` partition.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.strategies import REGISTRY, RegisteredStrategy


class StrategySpecError(ValueError):
    """A strategy file that cannot be used, with the file and key named."""


class BacktestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeframe: Timeframe = Timeframe.DAILY
    start: date | None = None
    end: date | None = None
    starting_balance: Decimal = Field(Decimal("100000"), gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BacktestSettings:
        if self.start and self.end and self.start > self.end:
            raise ValueError("start must not be after end")
        return self


class StrategySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    strategy: str
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)

    @property
    def registered(self) -> RegisteredStrategy:
        return REGISTRY[self.strategy]

    @model_validator(mode="after")
    def _known_strategy(self) -> StrategySpec:
        if self.strategy not in REGISTRY:
            raise ValueError(f"unknown strategy {self.strategy!r}; registered: {', '.join(REGISTRY)}")
        return self

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data, stored with every run so it can be reproduced."""
        return self.model_dump(mode="json")


def parse_spec(name: str, data: Any, source: str) -> StrategySpec:
    if not isinstance(data, dict):
        raise StrategySpecError(f"{source}: expected a mapping at the top level")
    try:
        return StrategySpec(name=name, **data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise StrategySpecError(f"{source}: {reasons}") from None


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

"""Strategy YAML files: one strategy instance (and its backtest settings) per file.

The file's stem names the instance; it is the key of the backtest's ``strategy`` partition.
A file names a registered strategy (``strategy: momentum``) or a user's own classes
(``strategy_path: "pkg.module:Class"`` + ``config_path: "pkg.module:ConfigClass"``). Files are
read with ``yaml.safe_load`` and user modules are imported only from prefixes on the operator's
allowlist, checked before anything is imported: a YAML file is data, never a way to run code.
Files are size-limited before parsing, and aliases or nesting that expand a small file into a
huge structure are refused; every failure names the file.

Reading a file validates it with pydantic alone; checking its ``config:`` block against the
strategy's NautilusTrader config class imports the engine (seconds, ~300 MB), so the code location
reads files with ``check_config=False`` and the block is checked by ``strategy validate`` and
before every run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ntrader_pipeline.core.fees import ZERO_COMMISSION, PerShareCommission
from ntrader_pipeline.core.paths import MAX_SPEC_BYTES, InputFileError, read_regular_file
from ntrader_pipeline.core.strategies import REGISTRY, RISK_FIELDS, RegisteredStrategy
from ntrader_pipeline.core.sweeps import SweepSpec, WalkForwardSpec, parameter_key
from ntrader_pipeline.core.timeframes import Timeframe

if TYPE_CHECKING:
    from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig

CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_KEY_LENGTH = 128  # a run's strategy name in the warehouse (backtest_runs.strategy)
SET_BY_BACKTEST = ("instrument_id", "bar_type", "strategy_id", "order_id_tag", "fill")
# Placeholders used to check a ``config:`` block before any bars are known.
CHECK_INSTRUMENT = "CHECK.XNAS"
CHECK_BAR_TYPE = "CHECK.XNAS-1-DAY-LAST-EXTERNAL"
MAX_SPEC_VALUES = 10_000  # values after aliases are expanded; a real file has a few dozen
MAX_SPEC_DEPTH = 32


class StrategySpecError(ValueError):
    """A strategy file that cannot be used, with the file and key named.

    ``problems`` holds each ``key: reason`` when one pass found several (else it is empty).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems)

    @classmethod
    def listing(cls, source: str, problems: Sequence[str]) -> StrategySpecError:
        return cls(f"{source}: {'; '.join(problems)}", problems)


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
            "max_notional_per_order": None
            if self.max_notional_per_order is None
            else float(self.max_notional_per_order),
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
    fill: Literal["bar_close", "next_open"] = Field(
        "bar_close", description="orders decided on a bar fill at its close, or at the next bar's open"
    )

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
                raise ValueError(
                    f"sweep: set {parameter_key(self.name, params)}: the key is longer than "
                    f"{MAX_KEY_LENGTH} characters; shorten the file name"
                )
        return self

    def with_parameters(self, params: dict[str, Any]) -> StrategySpec:
        """This spec with one parameter set applied, named by its key, without sweep or walk-forward."""
        spec = self.model_copy(
            update={
                "name": parameter_key(self.name, params),
                "config": {**self.config, **params},
                "sweep": None,
                "walk_forward": None,
            }
        )
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
    fill: str = "bar_close",
) -> SignalStrategyConfig:
    """The strategy's frozen config from a file's ``config:`` block, type-checked field by field."""
    fixed = {
        **(risk or RiskSettings()).strategy_fields(),
        "instrument_id": instrument_id,
        "bar_type": bar_type,
        "fill": fill,
    }
    try:
        return msgspec.convert({**params, **fixed}, config_cls, dec_hook=_decoding_hook())
    except msgspec.ValidationError as exc:
        problems = _config_problems(config_cls, params, fixed) or [_config_reason(exc)]
        if source is None:  # inside pydantic validation: the caller adds the file name
            raise _ConfigProblems(problems) from None
        raise StrategySpecError.listing(source, problems) from None


def _decoding_hook():
    """NautilusTrader's msgspec hook, imported on use: the code location never loads the engine."""
    from nautilus_trader.common.config import msgspec_decoding_hook

    return msgspec_decoding_hook


class _ConfigProblems(ValueError):
    """The problems of a ``config:`` block, carried through pydantic's validation error."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _config_reason(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    where = re.search(r"at `\$\.(\w+)`", message)
    unknown = re.search(r"unknown field `(\w+)`", message)
    key = where.group(1) if where else unknown.group(1) if unknown else None
    reason = re.sub(r" - at `\$[.\w]*`", "", message)
    return f"config.{key}: {reason}" if key else f"config: {reason}"


def _config_problems(config_cls, params: dict[str, Any], fixed: dict[str, Any]) -> list[str]:
    """Each key's own problem (type, range, unknown name), found by checking the keys one at a
    time, so a file lists them all in one pass. Problems between keys show when these are none."""
    problems = []
    for key, value in params.items():
        try:
            msgspec.convert({key: value, **fixed}, config_cls, dec_hook=_decoding_hook())
        except msgspec.ValidationError as exc:
            if f"`$.{key}`" in str(exc) or f"unknown field `{key}`" in str(exc):
                problems.append(_config_reason(exc))
    return problems


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
    from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig

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
    _check_sweep_sets(spec, config_cls)


def _check_sweep_sets(spec: StrategySpec, config_cls) -> None:
    """Every parameter set of the ``sweep:`` block builds a config (imports the engine, like the
    ``config:`` check, so it runs only where that one does)."""
    if spec.sweep is None:
        return
    for params in spec.sweep.parameter_sets():
        try:
            build_strategy_config(config_cls, {**spec.config, **params}, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=None)
        except ValueError as exc:
            problems = exc.problems if isinstance(exc, _ConfigProblems) else [str(exc)]
            key = parameter_key(spec.name, params)
            raise StrategySpecError.listing(spec.source, [f"sweep: set {key}: {p}" for p in problems]) from None


def parse_spec(name: str, data: Any, source: str, check_config: bool = True) -> StrategySpec:
    if not isinstance(data, dict):
        raise StrategySpecError(f"{source}: expected a mapping at the top level")
    if bad := [key for key in data if not isinstance(key, str)]:
        raise StrategySpecError(f"{source}: {bad[0]!r}: top-level keys must be text")
    if "name" in data:
        raise StrategySpecError(f"{source}: name: the file name is the strategy's name; remove the key")
    try:
        spec = StrategySpec(name=name, **data)
    except ValidationError as exc:
        problems = [p for err in exc.errors() for p in _reasons(err)]
        if check_config:
            problems = _with_config_problems(data, problems)
        raise StrategySpecError.listing(source, problems) from None
    spec._source = source
    if check_config and not spec.is_custom:
        build_strategy_config(spec.registered.config_cls, spec.config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=source)
        _check_sweep_sets(spec, spec.registered.config_cls)
    return spec


def _reasons(err: dict) -> list[str]:
    carried = err.get("ctx", {}).get("error")
    return list(carried.problems) if isinstance(carried, _ConfigProblems) else [_reason(err)]


def _with_config_problems(data: dict, problems: list[str]) -> list[str]:
    """Add the ``config:`` block's own problems when other errors kept the model from checking it."""
    strategy, config = data.get("strategy"), data.get("config", {})
    checked = any(p.startswith("config") for p in problems)
    if checked or not isinstance(strategy, str) or strategy not in REGISTRY or not isinstance(config, dict):
        return problems
    try:
        build_strategy_config(REGISTRY[strategy].config_cls, config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=None)
    except _ConfigProblems as exc:
        return [*problems, *exc.problems]
    return problems


def _reason(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith(("config.", "config:")) or not where:
        return message
    return f"{where}: {message}"


def load_spec(path: str | Path, check_config: bool = True) -> StrategySpec:
    path = Path(path)
    return _parsed(path.stem, read_spec_yaml(path), str(path), check_config)


def spec_from_text(name: str, text: str, check_config: bool = True) -> StrategySpec:
    """The spec of a strategy file's text (carried in a run's config, so no worker needs the file),
    with the limits a file has; ``name`` is the file's stem, which names the strategy."""
    source = f"{name}.yaml"
    raw = text.encode("utf-8")
    if len(raw) > MAX_SPEC_BYTES:
        raise StrategySpecError(f"{source}: larger than {MAX_SPEC_BYTES:,} bytes")
    return _parsed(name, parse_spec_yaml(raw, source), source, check_config)


def _parsed(name: str, data: Any, source: str, check_config: bool) -> StrategySpec:
    try:
        return parse_spec(name, data, source, check_config)
    except StrategySpecError:
        raise
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # odd values the model trips on
        raise StrategySpecError(f"{source}: {type(exc).__name__}: {exc}") from None


def read_spec_yaml(path: Path) -> Any:
    """The YAML data of a strategy file, or a ``StrategySpecError`` naming the file.

    The file must be a regular file of at most ``MAX_SPEC_BYTES``; the parsed data may hold at
    most ``MAX_SPEC_VALUES`` values (aliases counted each time they are used, so a "billion
    laughs" file is refused) nested at most ``MAX_SPEC_DEPTH`` deep.
    """
    try:
        raw = read_regular_file(path, MAX_SPEC_BYTES, "strategy file")
    except InputFileError as exc:
        raise StrategySpecError(str(exc)) from None
    return parse_spec_yaml(raw, str(path))


def parse_spec_yaml(raw: bytes, path: str) -> Any:
    """``raw`` parsed with ``yaml.safe_load`` within the limits above; errors name ``path``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise StrategySpecError(f"{path}:{line}: not UTF-8 text (bytes {raw[exc.start : exc.end].hex(' ')})") from None
    if _bracket_depth(raw) > MAX_SPEC_DEPTH:  # PyYAML takes seconds on a few KB of "[[[[" before failing
        raise StrategySpecError(f"{path}: nested more than {MAX_SPEC_DEPTH} levels deep")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise StrategySpecError(f"{path}: nested too deeply to parse (at most {MAX_SPEC_DEPTH} levels)") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = " ".join(f"{exc.context or ''} {exc.problem or ''}".split())
        raise StrategySpecError(f"{where}: not valid YAML ({reason})") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure on these bytes is the file's fault
        raise StrategySpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    _check_shape(path, data)
    return data


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _bracket_depth(raw: bytes) -> int:
    """The deepest nesting of flow brackets (quotes ignored: a stricter bound, never a looser one)."""
    depth = deepest = 0
    for char in raw.translate(None, _NOT_BRACKETS):
        depth += 1 if char in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_shape(path: str, data: Any) -> None:
    """Walk the data without recursion, counting values and depth (aliases expand here)."""
    stack, seen = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_SPEC_VALUES:
            raise StrategySpecError(f"{path}: more than {MAX_SPEC_VALUES:,} values once aliases are expanded")
        if depth > MAX_SPEC_DEPTH:
            raise StrategySpecError(f"{path}: nested more than {MAX_SPEC_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_specs(folder: str | Path, check_config: bool = True) -> dict[str, StrategySpec]:
    """Every ``*.yaml`` in ``folder``, by name; one bad file fails the whole load, loudly."""
    return {spec.name: spec for spec in (load_spec(p, check_config) for p in sorted(Path(folder).glob("*.yaml")))}

"""Strategy YAML files: one strategy instance (and its backtest settings) per file.

The file's stem names the instance; it is the key of the backtest's ``strategy`` partition.
A file names a registered strategy (``strategy: momentum``) or a user's own classes
(``strategy_path: "pkg.module:Class"`` + ``config_path: "pkg.module:ConfigClass"``). Files are
read with PyYAML's safe schema and user modules are imported only from prefixes on the operator's
allowlist, checked before anything is imported: a YAML file is data, never a way to run code.
Files are size-limited before parsing, and aliases or nesting that expand a small file into a
huge structure are refused (``core.spec_yaml``).

A file is checked as a whole: every problem is reported at once, each as
``file:line:column: key: reason``, whatever else is wrong with the file; a check that needs two
keys runs when both are valid on their own. Research blocks are checked against the strategy they
sweep (a ranking metric that exists, out-of-sample windows that tile the sessions, a span that
holds the walk-forward after the sets' warm-up) so a sweep never runs for minutes and then fails.

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
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from ntrader_pipeline.core.fees import ZERO_COMMISSION, PerShareCommission
from ntrader_pipeline.core.paths import MAX_SPEC_BYTES
from ntrader_pipeline.core.quoting import clipped, excerpt
from ntrader_pipeline.core.spec_yaml import (
    MAX_SPEC_DEPTH,
    MAX_SPEC_VALUES,
    KeyPath,
    KeyProblems,
    SpecDocument,
    SpecProblem,
    StrategySpecError,
    key_text,
    parse_spec_document,
    read_spec_document,
)
from ntrader_pipeline.core.strategies import REGISTRY, RISK_FIELDS, RegisteredStrategy
from ntrader_pipeline.core.sweeps import SweepSpec, WalkForwardSpec, parameter_key, walk_forward_shortfall
from ntrader_pipeline.core.timeframes import Timeframe

if TYPE_CHECKING:
    from ntrader_pipeline.core.strategies.base import SignalStrategy, SignalStrategyConfig

__all__ = [
    "MAX_SPEC_DEPTH",
    "MAX_SPEC_VALUES",
    "BacktestSettings",
    "FeeSettings",
    "RiskSettings",
    "SpecProblem",
    "StrategySpec",
    "StrategySpecError",
    "build_strategy_config",
    "check_spec",
    "load_spec",
    "load_specs",
    "module_allowed",
    "parse_spec",
    "resolve_strategy",
    "spec_from_text",
]

CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_KEY_LENGTH = 128  # a run's strategy name in the warehouse (backtest_runs.strategy)
SET_BY_BACKTEST = ("instrument_id", "bar_type", "strategy_id", "order_id_tag", "fill")
# Placeholders used to check a ``config:`` block before any bars are known.
CHECK_INSTRUMENT = "CHECK.XNAS"
CHECK_BAR_TYPE = "CHECK.XNAS-1-DAY-LAST-EXTERNAL"
# NautilusTrader holds at most 17,014,118,346,046 USD in an account (MONEY_MAX); the cap leaves the
# equity room to grow 17-fold before the engine would refuse a balance mid-run.
MAX_STARTING_BALANCE = Decimal("1000000000000")
SHOWN_SETS = 5  # sweep sets whose config fails, listed one by one; the rest are counted
# Bars per session, at most (04:00-20:00 with extended hours), for comparing a warm-up in bars
# with windows counted in sessions.
BARS_PER_SESSION = {Timeframe.DAILY: 1, Timeframe.HOUR1: 16, Timeframe.MIN5: 192, Timeframe.MIN1: 960}


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
    # Stored with the run (in its spec), so a reproduction measures with the same rate.
    risk_free_rate_pct: float = Field(
        0.0, ge=-10, le=50, description="annual %, subtracted by Sharpe, Sortino, PSR, Omega and alpha"
    )
    fill: Literal["bar_close", "next_open"] = Field(
        "bar_close", description="orders decided on a bar fill at its close, or at the next bar's open"
    )

    @field_validator("starting_balance")
    @classmethod
    def _money_holds_it(cls, balance: Decimal) -> Decimal:
        if balance > MAX_STARTING_BALANCE:
            raise ValueError(
                f"at most {MAX_STARTING_BALANCE:,} USD: a NautilusTrader account holds at most "
                "17,014,118,346,046, and the equity needs room to grow"
            )
        return balance

    @field_validator("end")
    @classmethod
    def _ordered(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if start and end and start > end:
            raise ValueError(f"the end ({end}) is before the start ({start})")
        return end


class StrategySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    strategy: str | None = None
    strategy_path: str | None = None
    config_path: str | None = None
    description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings, validate_default=True)  # fees vs config
    benchmark: str | None = Field(
        None, pattern=r"^[A-Z0-9][A-Z0-9.\-]*$", description="stored symbol to measure against; default: the run's own"
    )
    sweep: SweepSpec | None = None
    walk_forward: WalkForwardSpec | None = None
    _source: str = PrivateAttr("")
    _document: SpecDocument | None = PrivateAttr(None)
    _warnings: list[SpecProblem] = PrivateAttr(default_factory=list)

    @property
    def source(self) -> str:
        """The file this spec was read from (for messages)."""
        return self._source or self.name

    @property
    def warnings(self) -> list[str]:
        """What the checks found that the user may mean (``file:line:column: warning: key: reason``)."""
        return [w.describe(self.source) for w in self._warnings]

    @property
    def registered(self) -> RegisteredStrategy:
        if self.strategy is None:
            raise ValueError(f"{self.name} names its own classes (strategy_path), not a registered strategy")
        return REGISTRY[self.strategy]

    @property
    def is_custom(self) -> bool:
        return self.strategy is None

    @field_validator("strategy")
    @classmethod
    def _registered(cls, value: str | None) -> str | None:
        if value is not None and value not in REGISTRY:
            raise ValueError(f"unknown strategy '{excerpt(value)}'; registered: {', '.join(REGISTRY)}")
        return value

    @field_validator("strategy_path", "config_path")
    @classmethod
    def _class_path(cls, value: str | None) -> str | None:
        if value is not None and not CLASS_PATH.match(value):
            raise ValueError(f"must look like 'package.module:ClassName', not '{excerpt(value)}'")
        return value

    @field_validator("config")
    @classmethod
    def _config_keys(cls, config: dict[str, Any]) -> dict[str, Any]:
        problems = [
            ((key,), "risk limits go under backtest.risk, not config")
            if key in RISK_FIELDS
            else ((key,), "set by the backtest, not by the file")
            for key in config
            if key in RISK_FIELDS or key in SET_BY_BACKTEST
        ]
        if problems:
            raise KeyProblems(problems)
        return config

    @field_validator("backtest")
    @classmethod
    def _fees_fit_cash(cls, backtest: BacktestSettings, info: ValidationInfo) -> BacktestSettings:
        """A long-only run uses a cash account: the entry and its commission must fit the cash."""
        config = info.data.get("config")
        if not isinstance(config, dict):
            return backtest
        percent = config.get("equity_percent", 95.0)
        if not config.get("allow_short", False) and isinstance(percent, int | float) and not isinstance(percent, bool):
            room = 100 - float(backtest.fees.schedule().max_percent)
            if percent > room:
                reason = (
                    f"{percent} leaves no room for fees of up to {backtest.fees.max_percent}% on a long-only "
                    f"(cash) account; use at most {room:g}"
                )
                raise KeyProblems([(("config", "equity_percent"), reason)], absolute=True)
        return backtest

    @field_validator("sweep")
    @classmethod
    def _sweep_fits(cls, sweep: SweepSpec | None, info: ValidationInfo) -> SweepSpec | None:
        """Every swept parameter is one the ``config:`` block may set, and every key fits the warehouse."""
        if sweep is None:
            return sweep
        block = "grid" if sweep.grid is not None else "ranges"
        problems: list[tuple[KeyPath, str]] = [
            ((block, name), "cannot be swept (set by backtest.risk or by the backtest)")
            for name in sweep.parameters
            if name in RISK_FIELDS or name in SET_BY_BACKTEST
        ]
        name = info.data.get("name", "")
        for params in sweep.parameter_sets():
            if len(parameter_key(name, params)) > MAX_KEY_LENGTH:
                reason = (
                    f"set {excerpt(parameter_key(name, params), 48)}: the key is longer than {MAX_KEY_LENGTH} "
                    "characters; shorten the file name"
                )
                problems.append(((), reason))
                break
        if problems:
            raise KeyProblems(problems)
        return sweep

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
    """The strategy's frozen config from a file's ``config:`` block, type-checked field by field.

    With ``source=None`` the problems are raised as ``KeyProblems`` (paths under ``config``) for the
    caller to place in the file; otherwise as a ``StrategySpecError`` naming ``source``.
    """
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
        if source is None:
            raise KeyProblems(problems, absolute=True) from None
        raise StrategySpecError(source, [SpecProblem(key_text(path), reason) for path, reason in problems]) from None


def _decoding_hook():
    """NautilusTrader's msgspec hook, imported on use: the code location never loads the engine."""
    from nautilus_trader.common.config import msgspec_decoding_hook

    return msgspec_decoding_hook


def _config_reason(exc: msgspec.ValidationError) -> tuple[KeyPath, str]:
    """A msgspec error as (path under ``config``, reason); the strategy's own checks name no key."""
    message = str(exc)
    where = re.search(r"at `\$\.(\w+)`", message)
    unknown = re.search(r"unknown field `(\w+)`", message)
    key = where.group(1) if where else unknown.group(1) if unknown else None
    reason = clipped(re.sub(r" - at `\$[.\w]*`", "", message))
    if unknown and not where:
        reason = "unknown parameter (see `ntrader strategy list`)"
    return (("config", key) if key else ("config",)), reason


def _config_problems(config_cls, params: dict[str, Any], fixed: dict[str, Any]) -> list[tuple[KeyPath, str]]:
    """Every problem of a ``config:`` block in one pass. First each key alone (type, unknown name);
    then the well-typed keys together, through the strategy's own checks (ranges, keys that must
    agree): each failing check is put at the key its message names and that key set aside, so the
    next check can speak too."""
    problems = []
    for key, value in params.items():
        try:
            msgspec.convert({key: value, **fixed}, config_cls, dec_hook=_decoding_hook())
        except msgspec.ValidationError as exc:
            if f"`$.{key}`" in str(exc) or f"unknown field `{key}`" in str(exc):
                problems.append(_config_reason(exc))
    typed = {k: v for k, v in params.items() if ("config", k) not in {path for path, _ in problems}}
    for _ in range(len(typed) + 1):
        try:
            msgspec.convert({**typed, **fixed}, config_cls, dec_hook=_decoding_hook())
            break
        except msgspec.ValidationError as exc:
            _, reason = _config_reason(exc)
            named = next((k for k in typed if re.match(rf"{re.escape(k)}\b", reason)), None)
            problems.append((("config", named) if named else ("config",), reason))
            if named is None:
                break
            del typed[named]
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
    paths = {"strategy_path": spec.strategy_path or "", "config_path": spec.config_path or ""}  # both, when custom

    def refuse(key: str, reason: str) -> StrategySpecError:
        return StrategySpecError(spec.source, [_placed(spec._document, (key,), reason)])

    for key, path in paths.items():  # every check before any import
        module = path.split(":", 1)[0]
        if not module_allowed(module, allowlist):
            allowed = ", ".join(allowlist) if allowlist else "empty"
            raise refuse(
                key,
                f"module '{module}' is not on the strategy module allowlist ({allowed}); "
                "the operator must add its package to NTRADER_STRATEGY_MODULE_ALLOWLIST",
            )
    loaded = {}
    for key, path in paths.items():
        module_name, attribute = path.split(":", 1)
        try:
            imported = importlib.import_module(module_name)
        except ImportError as exc:
            raise refuse(key, f"cannot import '{module_name}' ({clipped(exc)})") from None
        if not hasattr(imported, attribute):
            raise refuse(key, f"module '{module_name}' has no '{attribute}'")
        loaded[key] = getattr(imported, attribute)
    strategy_cls, config_cls = loaded["strategy_path"], loaded["config_path"]
    if not (isinstance(strategy_cls, type) and issubclass(strategy_cls, SignalStrategy)):
        raise refuse(
            "strategy_path",
            f"{spec.strategy_path} is not a SignalStrategy subclass "
            "(sizing, the long-only switch and risk limits need one)",
        )
    if not (isinstance(config_cls, type) and issubclass(config_cls, SignalStrategyConfig)):
        raise refuse("config_path", f"{spec.config_path} is not a SignalStrategyConfig subclass")
    return strategy_cls, config_cls


def check_spec(spec: StrategySpec, allowlist: Sequence[str] = ()) -> None:
    """Everything short of running: classes resolve, the ``config:`` block and every sweep set fit
    them, and the research blocks suit the strategy's warm-up (what only warns lands in
    ``spec.warnings``)."""
    strategy_cls, config_cls = resolve_strategy(spec, allowlist)
    document = spec._document or SpecDocument(spec.canonical())
    data = document.data if isinstance(document.data, dict) else spec.canonical()  # as written, where known
    found = _strategy_problems(
        document, (strategy_cls, config_cls), {**data, "name": spec.name}, spec.backtest, spec.sweep, spec.walk_forward
    )
    _raise_or_keep(spec, spec.source, document, found)


def _raise_or_keep(spec: StrategySpec | None, source: str, document: SpecDocument, found: list[SpecProblem]) -> None:
    if any(not p.warning for p in found):
        raise StrategySpecError(source, _ordered(found))  # the warnings too: everything in one pass
    if spec is not None:
        known = {(w.key, w.reason) for w in spec._warnings}
        spec._warnings = [*spec._warnings, *(w for w in found if (w.key, w.reason) not in known)]  # copies share


def _ordered(problems: list[SpecProblem]) -> list[SpecProblem]:
    """In the file's order (a problem without a position first), each once."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column))


def _placed(
    document: SpecDocument | None, path: KeyPath, reason: str, of_key: bool = False, warning: bool = False
) -> SpecProblem:
    if document is None:
        return SpecProblem(key_text(path), reason, warning=warning)
    return document.problem(path, reason, of_key, warning)


def _strategy_problems(
    document: SpecDocument,
    classes: tuple[type, type],
    data: dict[str, Any],
    backtest: BacktestSettings | None,
    sweep: SweepSpec | None,
    walk_forward: WalkForwardSpec | None,
) -> list[SpecProblem]:
    """What needs the strategy's classes: the ``config:`` block, each sweep set, and whether the
    backtest's span can hold the walk-forward after the sets' warm-up."""
    strategy_cls, config_cls = classes
    config = data.get("config", {})
    if not isinstance(config, dict) or document.is_spoiled(("config",)):
        return []
    found: list[SpecProblem] = []
    base: set[str] = set()
    try:
        build_strategy_config(config_cls, config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=None)
    except KeyProblems as exc:
        for path, reason in exc.problems:
            base.add(f"{key_text(path)}: {reason}")
            if not document.is_spoiled(path):
                found.append(document.problem(path, reason, of_key="unknown parameter" in reason))
    if sweep is None:
        return found
    built, failing = [], []
    for params in sweep.parameter_sets():
        try:
            settings = build_strategy_config(
                config_cls, {**config, **params}, CHECK_INSTRUMENT, CHECK_BAR_TYPE, source=None
            )
        except KeyProblems as exc:
            new = [f"{key_text(path)}: {reason}" for path, reason in exc.problems]
            new = [text for text in new if text not in base]  # the config's own problem, said once
            if new:
                failing.append(f"set {parameter_key(str(data.get('name', '')), params)}: {'; '.join(new)}")
            continue
        built.append((params, settings))
    for text in failing[:SHOWN_SETS]:
        found.append(document.problem(("sweep",), text))
    if len(failing) > SHOWN_SETS:
        found.append(document.problem(("sweep",), f"... and {len(failing) - SHOWN_SETS} more sets fail the same way"))
    if backtest is not None and built:
        found += _span_problems(document, str(data.get("name", "")), strategy_cls, built, backtest, walk_forward)
    return found


def _span_problems(
    document: SpecDocument,
    name: str,
    strategy_cls: type,
    built: list,
    backtest: BacktestSettings,
    walk_forward: WalkForwardSpec | None,
) -> list[SpecProblem]:
    """The sets' warm-ups (each strategy's own ``warmup_bars()``, the walk-forward's rule) against
    the exchange sessions of the file's ``start``..``end``. A walk-forward that cannot fit its
    warm-up, an in-sample window and an out-of-sample session is refused with the walk-forward's
    own words (``walk_forward_shortfall``); sweep sets (which start cold) that would warm up for
    the whole span are a warning. Without both dates the bars decide, when the runs start."""
    if backtest.start is None or backtest.end is None:
        return []
    from ntrader_pipeline.core.calendar import session_count
    from ntrader_pipeline.core.strategies.base import warmup_of

    sessions = session_count(backtest.start, backtest.end)
    if sessions is None:  # outside the exchange calendar's years
        return []
    try:
        warms = [(params, warmup_of(strategy_cls, settings)) for params, settings in built]
    except Exception as exc:  # a user's strategy that cannot be built without bars: the run will say
        return [document.problem(("sweep",), f"cannot ask the strategy its warm-up: {exc!r}", warning=True)]
    span, per_session = f"{backtest.start}..{backtest.end}", BARS_PER_SESSION[backtest.timeframe]
    found = []
    cold = [(p, warm) for p, warm in warms if warm >= sessions * per_session]
    if cold:
        params, warm = max(cold, key=lambda c: c[1])
        bars = "sessions" if per_session == 1 else f"sessions (at most {sessions * per_session} bars)"
        found.append(
            document.problem(
                ("sweep",),
                f"{len(cold)} of {len(warms)} sets warm up for at least the {sessions} {bars} of {span} (e.g. "
                f"{excerpt(parameter_key(name, params), 64)}: {warm} bars): they cannot trade in the sweep",
                warning=True,
            )
        )
    if walk_forward is not None:
        params, warm = max(warms, key=lambda c: c[1])
        short = walk_forward_shortfall(sessions, -(-warm // per_session), walk_forward)
        if short is not None:
            slowest = excerpt(parameter_key(name, params), 64)
            reason = f"{span} has {short} (the longest warm-up: {slowest}, {warm} bars)"
            found.append(document.problem(("walk_forward", "in_sample"), reason))
    return found


def parse_spec(
    name: str, data: Any, source: str, check_config: bool = True, document: SpecDocument | None = None
) -> StrategySpec:
    """The spec of a file's data, or a ``StrategySpecError`` listing every problem of the file.

    ``document`` (from ``core.spec_yaml``) places each problem at its line and column; without it
    problems read ``file: key: reason``.
    """
    document = document or SpecDocument(data)
    found = list(document.problems)
    if not isinstance(data, dict):
        found.append(_placed(document, (), "expected a mapping of settings at the top level (strategy:, config:, ...)"))
        raise StrategySpecError(source, _ordered(found))
    fields = {key: value for key, value in data.items() if isinstance(key, str)}
    for key in data:
        if not isinstance(key, str):
            line, column = document.position((key,), of_key=True)
            found.append(SpecProblem(excerpt(key), "top-level keys must be text", line, column))
    if "name" in fields:
        found.append(document.problem(("name",), "the file name is the strategy's name; remove the key", of_key=True))
        del fields["name"]
    found += _presence_problems(document, fields)
    found += _walk_forward_problems(document, fields)
    spec = None
    try:
        spec = StrategySpec(name=name, **fields)
    except ValidationError as exc:
        found += [problem for path, problem in _pydantic_problems(document, (), exc) if not document.is_spoiled(path)]
    strategy = fields.get("strategy")
    if check_config and isinstance(strategy, str) and strategy in REGISTRY and not document.is_spoiled(("strategy",)):
        backtest, sweep, walk_forward = (  # what the research checks need, whatever else is wrong
            _valid(BacktestSettings, _only(fields.get("backtest", {}), "timeframe", "start", "end"))
            or _valid(BacktestSettings, _only(fields.get("backtest", {}), "timeframe")),
            _valid(SweepSpec, _without(fields.get("sweep"), "metric")),
            _valid(WalkForwardSpec, _only(fields.get("walk_forward"), "in_sample", "out_of_sample")),
        )
        registered = REGISTRY[strategy]
        found += _strategy_problems(
            document,
            (registered.strategy_cls, registered.config_cls),
            {**fields, "name": name},
            backtest,
            sweep,
            walk_forward,
        )
    if any(not p.warning for p in found) or spec is None:
        raise StrategySpecError(source, _ordered(found))
    spec._source = source
    spec._document = document
    _raise_or_keep(spec, source, document, found)
    return spec


def _only(block: Any, *keys: str) -> Any:
    return {k: v for k, v in block.items() if k in keys} if isinstance(block, dict) else block


def _without(block: Any, *keys: str) -> Any:
    return {k: v for k, v in block.items() if k not in keys} if isinstance(block, dict) else block


def _valid(model: type[BaseModel], value: Any) -> Any:
    """``value`` validated as ``model`` alone (None when absent or invalid: its problems are
    reported by the whole file's validation)."""
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except (ValidationError, ValueError, TypeError):
        return None


def _presence_problems(document: SpecDocument, fields: dict[str, Any]) -> list[SpecProblem]:
    """Which strategy the file names, and blocks that need another: checked on the keys present,
    so a value refused for its own reason does not also count as missing."""
    found: list[SpecProblem] = []
    if any(document.is_spoiled((key,)) for key in ("strategy", "strategy_path", "config_path")):
        return found  # said where the value is
    named = "strategy" in fields and fields["strategy"] is not None
    paths = [key for key in ("strategy_path", "config_path") if fields.get(key) is not None]
    if named and paths:
        found.append(document.problem((paths[0],), "give either strategy or strategy_path + config_path, not both"))
    elif not named and len(paths) < 2:
        where = (paths[0],) if paths else ()
        found.append(
            document.problem(
                where,
                f"name a registered strategy (strategy: one of {', '.join(REGISTRY)}) "
                "or both strategy_path and config_path",
            )
        )
    return found


def _walk_forward_problems(document: SpecDocument, fields: dict[str, Any]) -> list[SpecProblem]:
    if fields.get("walk_forward") is not None and fields.get("sweep") is None:
        return [document.problem(("walk_forward",), "needs a sweep: block to pick the best parameter set from")]
    return []


def _pydantic_problems(
    document: SpecDocument, prefix: KeyPath, exc: ValidationError
) -> list[tuple[KeyPath, SpecProblem]]:
    """Each pydantic error at the key it concerns (the deepest key the file holds). A value that
    fits no member of a union gets one problem listing what it should be, not one per member."""
    grouped: dict[tuple[KeyPath, bool], list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        loc = (*prefix, *err["loc"])
        carried = (err.get("ctx") or {}).get("error")
        if isinstance(carried, KeyProblems):
            for path, reason in carried.problems:
                full = tuple(path) if carried.absolute else (*loc, *path)
                grouped.setdefault((full, False), []).append(reason)
            continue
        known = document.known(loc)
        if err["type"] == "missing" and len(loc) > len(known):
            known = loc[: len(known) + 1]
        reason = clipped(err["msg"].removeprefix("Value error, "))
        grouped.setdefault((known, err["type"] == "extra_forbidden"), []).append(reason)
    problems = []
    for (path, of_key), reasons in grouped.items():
        reasons = list(dict.fromkeys(reasons))
        if len(reasons) > 1 and all(r.startswith("Input should be ") for r in reasons):
            reasons = ["Input should be " + " or ".join(r.removeprefix("Input should be ") for r in reasons)]
        for reason in reasons:
            if of_key:
                reason = _unknown_key(path[:-1])
            problems.append((path, document.problem(path, reason, of_key)))
    return problems


def _unknown_key(block: KeyPath) -> str:
    """What a block takes, for a key it does not (most often a typo)."""
    models: dict[tuple, type[BaseModel]] = {
        (): StrategySpec,
        ("backtest",): BacktestSettings,
        ("backtest", "fees"): FeeSettings,
        ("backtest", "risk"): RiskSettings,
        ("sweep",): SweepSpec,
        ("walk_forward",): WalkForwardSpec,
    }
    model = models.get(tuple(block))
    if model is None:
        return "unknown key"
    names = [name for name in model.model_fields if name != "name"]
    return f"unknown key; {key_text(block) or 'the top level'} takes {', '.join(names)}"


def load_spec(path: str | Path, check_config: bool = True) -> StrategySpec:
    path = Path(path)
    document = read_spec_document(path)
    return _parsed(path.stem, document, str(path), check_config)


def spec_from_text(name: str, text: str, check_config: bool = True) -> StrategySpec:
    """The spec of a strategy file's text (carried in a run's config, so no worker needs the file),
    with the limits a file has; ``name`` is the file's stem, which names the strategy."""
    source = f"{name}.yaml"
    raw = text.encode("utf-8")
    if len(raw) > MAX_SPEC_BYTES:
        raise StrategySpecError.one(source, f"larger than {MAX_SPEC_BYTES:,} bytes")
    return _parsed(name, parse_spec_document(raw, source), source, check_config)


def _parsed(name: str, document: SpecDocument, source: str, check_config: bool) -> StrategySpec:
    try:
        return parse_spec(name, document.data, source, check_config, document)
    except StrategySpecError:
        raise
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # odd values the model trips on
        raise StrategySpecError.one(source, f"{type(exc).__name__}: {clipped(exc)}") from None


def load_specs(folder: str | Path, check_config: bool = True) -> dict[str, StrategySpec]:
    """Every ``*.yaml`` in ``folder``, by name; one bad file fails the whole load, loudly."""
    return {spec.name: spec for spec in (load_spec(p, check_config) for p in sorted(Path(folder).glob("*.yaml")))}

"""Parameter sweeps and walk-forward windows, as a strategy file's ``sweep:`` and ``walk_forward:``.

A sweep is a grid (a list of values per parameter) or seeded random samples (a ``[low, high]``
range per parameter, ``n`` and ``seed``), filtered by constraints such as
``fast_period < slow_period``. Constraints are parsed by a tiny grammar (names, numbers and
comparison operators, chained as in Python), never evaluated as code.

Every parameter set has a stable, readable key: the file's name and the set, sorted by parameter
name, e.g. ``sma_crossover[fast_period=10,slow_period=30]``. The key names the set's backtest
partition and its runs in the warehouse, and parses back into the set.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ntrader_pipeline.core.metric_registry import RANKABLE_METRICS
from ntrader_pipeline.core.quoting import excerpt
from ntrader_pipeline.core.spec_yaml import KeyProblems

Scalar = int | float | bool | str
MAX_SETS = 10_000
OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
TOKEN = re.compile(r"\s*(?:(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_]\w*)|(?P<op><=|>=|==|!=|<|>))")
KEY = re.compile(r"^(?P<base>[^\[\]|]+)\[(?P<params>[^\[\]|]*)\]$")


class ConstraintError(ValueError):
    """A constraint that does not parse; the message names the column."""


@dataclass(frozen=True)
class Constraint:
    """``a < b <= 3``: operands (parameter names or numbers) joined by comparison operators."""

    text: str
    operands: tuple[str | float, ...]
    operators: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        operands: list[str | float] = []
        ops: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            if not match:
                column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
                raise ConstraintError(
                    f"'{excerpt(text)}': column {column}: expected a name, a number or <, <=, >, >=, ==, !="
                )
            want_operand = len(operands) == len(ops)
            if match["op"]:
                if want_operand:
                    raise ConstraintError(
                        f"'{excerpt(text)}': column {match.start('op') + 1}: expected a name or a number"
                    )
                ops.append(match["op"])
            else:
                if not want_operand:
                    start = match.start("number") if match["number"] else match.start("name")
                    raise ConstraintError(f"'{excerpt(text)}': column {start + 1}: expected a comparison operator")
                operands.append(float(match["number"]) if match["number"] else match["name"])
            position = match.end()
        if not ops or len(operands) != len(ops) + 1:
            raise ConstraintError(
                f"'{excerpt(text)}': a constraint compares two or more operands, e.g. 'fast_period < slow_period'"
            )
        return cls(text, tuple(operands), tuple(ops))

    @property
    def names(self) -> set[str]:
        return {o for o in self.operands if isinstance(o, str)}

    def holds(self, params: dict[str, Any]) -> bool:
        values = [params[o] if isinstance(o, str) else o for o in self.operands]
        return all(OPERATORS[op](values[i], values[i + 1]) for i, op in enumerate(self.operators))


class SweepSpec(BaseModel):
    """``sweep:``: a grid or seeded random samples, constraints and the metric that ranks the sets."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Scalar]] | None = Field(None, description="values per parameter; every combination runs")
    ranges: dict[str, tuple[int | float, int | float]] | None = Field(
        None, description="[low, high] per parameter (integers when both bounds are); n samples drawn with seed"
    )
    n: int | None = Field(None, gt=0, le=MAX_SETS)
    seed: int | None = None
    constraints: list[str] = Field(default_factory=list)
    metric: str = "sharpe_ratio"

    # Each check reports every problem it sees, at its key, and runs when its own fields are valid,
    # so a file shows all its mistakes at once (core.strategy_specs places them in the file).

    @field_validator("grid")
    @classmethod
    def _values_given(cls, grid: dict[str, list[Scalar]] | None) -> dict[str, list[Scalar]] | None:
        empty = [((name,), "give at least one value") for name, values in (grid or {}).items() if not values]
        if empty:
            raise KeyProblems(empty)
        if grid is not None and math.prod(len(v) for v in grid.values()) > MAX_SETS:
            raise ValueError(f"the grid has more than {MAX_SETS:,} combinations")
        return grid

    @field_validator("ranges")
    @classmethod
    def _ordered_bounds(cls, ranges: dict | None) -> dict | None:
        reversed_ = [
            ((name,), f"low {low} is above high {high}") for name, (low, high) in (ranges or {}).items() if low > high
        ]
        if reversed_:
            raise KeyProblems(reversed_)
        return ranges

    @field_validator("constraints")
    @classmethod
    def _parse_constraints(cls, value: list[str], info: ValidationInfo) -> list[str]:
        swept = info.data.get("grid") or info.data.get("ranges")
        problems = []
        for i, text in enumerate(value):
            try:
                unknown = Constraint.parse(text).names - set(swept or {})
            except ConstraintError as exc:
                problems.append(((i,), str(exc)))
                continue
            if unknown and swept is not None:
                problems.append(((i,), f"{', '.join(sorted(unknown))} is not a swept parameter"))
        if problems:
            raise KeyProblems(problems)
        return value

    @field_validator("metric")
    @classmethod
    def _rankable(cls, metric: str) -> str:
        return rankable(metric)

    @model_validator(mode="after")
    def _one_kind(self) -> SweepSpec:
        if (self.grid is None) == (self.ranges is None):
            raise ValueError("give either grid (values per parameter) or ranges with n and seed")
        if self.ranges is not None and (self.n is None or self.seed is None):
            raise ValueError("random samples need n and seed, so the sweep is reproducible")
        if self.grid is not None and (self.n is not None or self.seed is not None):
            raise ValueError("n and seed go with ranges, not with a grid")
        return self

    @property
    def parameters(self) -> list[str]:
        return list(self.grid or self.ranges or {})

    def parameter_sets(self) -> list[dict[str, Scalar]]:
        """Every set that satisfies the constraints, in a stable order (grid order, or draw order)."""
        constraints = [Constraint.parse(text) for text in self.constraints]
        if self.grid is not None:
            names = list(self.grid)
            candidates = [dict(zip(names, values)) for values in itertools.product(*self.grid.values())]
        else:
            candidates = self._samples()
        seen, out = set(), []
        for params in candidates:
            key = parameter_text(params)
            if key not in seen and all(c.holds(params) for c in constraints):
                seen.add(key)
                out.append(params)
        return out

    def _samples(self) -> list[dict[str, Scalar]]:
        import numpy as np  # only where a random sweep is drawn: the code location loads without it

        rng = np.random.default_rng(self.seed)
        samples = []
        for _ in range(self.n or 0):
            params: dict[str, Scalar] = {}
            for name, (low, high) in (self.ranges or {}).items():
                if isinstance(low, int) and isinstance(high, int):
                    params[name] = int(rng.integers(low, high, endpoint=True))
                else:
                    params[name] = round(float(rng.uniform(low, high)), 6)
            samples.append(params)
        return samples


class WalkForwardSpec(BaseModel):
    """``walk_forward:``: in-sample and out-of-sample lengths and the step, in exchange days
    (trading sessions present in the bars), anchored (in-sample grows from the first bar) or rolling.

    The out-of-sample windows are stitched into one run, so they must tile the sessions: ``step``
    (if given) equals ``out_of_sample``. A smaller step would trade sessions twice (the stitched run
    cannot hold them), a larger one would leave sessions no window trades while the stitched run's
    benchmark spans them.
    """

    model_config = ConfigDict(extra="forbid")

    in_sample: int = Field(gt=1, description="sessions the best set is picked on")
    out_of_sample: int = Field(gt=1, description="sessions the picked set then runs on")
    step: int | None = Field(None, gt=0, description="sessions between windows; default and only value: out_of_sample")
    mode: Literal["rolling", "anchored"] = "rolling"
    metric: str | None = Field(None, description="what picks the best set; default: the sweep's metric")

    @field_validator("step")
    @classmethod
    def _windows_tile(cls, step: int | None, info: ValidationInfo) -> int | None:
        out = info.data.get("out_of_sample")
        if step is None or out is None or step == out:
            return step
        if step < out:
            raise ValueError(
                f"{step} is shorter than out_of_sample ({out}): out-of-sample windows would overlap and the "
                "stitched run would trade their common sessions twice; use step = out_of_sample (or leave it out)"
            )
        raise ValueError(
            f"{step} is longer than out_of_sample ({out}): {step - out} sessions after each window would "
            "never be traded while the stitched run's benchmark spans them; use step = out_of_sample (or leave it out)"
        )

    @field_validator("metric")
    @classmethod
    def _rankable(cls, metric: str | None) -> str | None:
        return None if metric is None else rankable(metric)


def rankable(metric: str) -> str:
    """``metric`` if a sweep can rank its sets by it (``RANKABLE_METRICS``)."""
    if metric not in RANKABLE_METRICS:
        raise ValueError(
            f"'{excerpt(metric)}' is not a metric that ranks sets; use one of {', '.join(RANKABLE_METRICS)}"
        )
    return metric


@dataclass(frozen=True)
class Window:
    in_start: date
    in_end: date
    out_start: date
    out_end: date


def walk_forward_shortfall(sessions: int, warmup_sessions: int, spec: WalkForwardSpec) -> str | None:
    """Why ``sessions`` exchange sessions cannot hold a walk-forward, or None when they can: the
    sets' warm-up, one in-sample window and at least one out-of-sample session (what ``windows``
    needs after the warm-up). ``strategy validate`` and the walk-forward both ask this."""
    needed = warmup_sessions + spec.in_sample + 1
    if sessions >= needed:
        return None
    return (
        f"{sessions} sessions, fewer than the {needed} the walk-forward needs: {warmup_sessions} to warm the "
        f"sets up, {spec.in_sample} in sample and 1 out of sample"
    )


def windows(days: list[date], spec: WalkForwardSpec) -> list[Window]:
    """Walk-forward windows over the sorted exchange ``days`` of the bars; out-of-sample never overlaps
    its in-sample, and the last window ends where the days do."""
    step = spec.step or spec.out_of_sample
    out, start = [], 0
    while start + spec.in_sample < len(days):
        in_first = 0 if spec.mode == "anchored" else start
        in_last = start + spec.in_sample - 1
        out_last = min(in_last + spec.out_of_sample, len(days) - 1)
        out.append(Window(days[in_first], days[in_last], days[in_last + 1], days[out_last]))
        start += step
    return out


def _value_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parameter_text(params: dict[str, Scalar]) -> str:
    return ",".join(f"{name}={_value_text(params[name])}" for name in sorted(params))


def parameter_key(base: str, params: dict[str, Scalar]) -> str:
    """``base[a=1,b=2.5]``: the set's partition key and its strategy name in the warehouse."""
    return f"{base}[{parameter_text(params)}]"


def parse_parameter_key(key: str) -> tuple[str, dict[str, Scalar]]:
    """The file name and the parameter set of a key made by ``parameter_key``."""
    match = KEY.match(key)
    if not match:
        raise ValueError(f"{key!r} is not a parameter-set key like 'sma_crossover[fast_period=10,slow_period=30]'")
    params: dict[str, Scalar] = {}
    for part in filter(None, match["params"].split(",")):
        name, _, text = part.partition("=")
        params[name] = yaml.safe_load(text)
    return match["base"], params

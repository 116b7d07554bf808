"""Strategy files as YAML data that remembers where each key and value was written.

A user fixing a strategy file wants every problem at once, each at its line and column, as a
compiler lists them. So the file is first composed into PyYAML's node tree (which carries marks),
checked for size and depth there (aliases are counted each time they are used, so a "billion
laughs" file is refused before anything is built), and then built into plain data by hand, node by
node: a value that is no value (30 February, a 5,000-digit integer, a tag nothing constructs) or a
key written twice becomes a problem at its own position while the rest of the file is still read.
A syntax error stops the file, at its line and column.

Problems quote no more of the file than an excerpt of a key or value (``core.quoting``): a path
that leads to a private file, or a file of another kind, must not have its lines printed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ntrader_pipeline.core.paths import MAX_SPEC_BYTES, InputFileError, read_regular_file
from ntrader_pipeline.core.quoting import clipped, excerpt, printable, shown_path

MAX_SPEC_VALUES = 10_000  # values after aliases are expanded; a real file has a few dozen
MAX_SPEC_DEPTH = 32
MAP_TAG, SEQ_TAG, MERGE_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge"
KIND = {
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:timestamp": "date",
    "tag:yaml.org,2002:binary": "base64 value",
}
KeyPath = tuple[Any, ...]


@dataclass(frozen=True)
class SpecProblem:
    """One problem of a strategy file: where (line and column, 1-based; 0 when the whole file), the
    key (``backtest.start``; empty for the file as a whole) and why. A warning does not refuse the file."""

    key: str
    reason: str
    line: int = 0
    column: int = 0
    warning: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", printable(self.reason))  # one line, whoever wrote the reason

    def describe(self, source: str) -> str:
        where = shown_path(source) + (f":{self.line}:{self.column}" if self.line else "")
        kind = " warning:" if self.warning else ""
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{kind}{key} {self.reason}"


class StrategySpecError(ValueError):
    """A strategy file that cannot be used: every problem found, each naming the file, its position
    when known, the key and the reason; ``str()`` gives them one per line."""

    def __init__(self, source: str, problems: Sequence[SpecProblem]):
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.describe(source) for p in self.problems))

    @classmethod
    def one(cls, source: str, reason: str, key: str = "", line: int = 0, column: int = 0) -> StrategySpecError:
        return cls(source, [SpecProblem(key, reason, line, column)])


class KeyProblems(ValueError):
    """Problems a check found, each at a key path: relative to the value checked (a pydantic
    validator's field), or from the top of the file when ``absolute``."""

    def __init__(self, problems: Sequence[tuple[KeyPath, str]], absolute: bool = False):
        self.problems = [(tuple(path), reason) for path, reason in problems]
        self.absolute = absolute
        super().__init__("; ".join(f"{key_text(path)}: {reason}" if path else reason for path, reason in self.problems))


def key_text(path: KeyPath) -> str:
    """``("sweep", "grid", "fast_period", 1)`` → ``sweep.grid.fast_period[1]``; keys as excerpts."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + excerpt(part)
    return text


@dataclass
class SpecDocument:
    """A strategy file's data with the position of every key and value in it, and the problems
    found while building it (they spoil their paths: later checks say nothing more about them)."""

    data: Any
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)
    spoiled: set[KeyPath] = field(default_factory=set)

    def known(self, path: KeyPath) -> KeyPath:
        """The longest start of ``path`` the file holds (pydantic adds union members, missing keys)."""
        value, found = self.data, 0
        for part in path:
            if isinstance(value, dict) and _hashable(part) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                break
            found += 1
        return tuple(path[:found])

    def position(self, path: KeyPath, of_key: bool = False) -> tuple[int, int]:
        """Line and column of the value at ``path`` (or of its key), else of the nearest enclosing
        value; (0, 0) for data that came without positions."""
        path = tuple(path)
        if of_key and path in self.keys:
            return self.keys[path]
        known = path if path in self.values else self.known(path)
        while known and known not in self.values:
            known = known[:-1]
        return self.values.get(known, (0, 0))

    def is_spoiled(self, path: KeyPath) -> bool:
        path = tuple(path)
        return any(path[: len(s)] == s for s in self.spoiled)

    def problem(self, path: KeyPath, reason: str, of_key: bool = False, warning: bool = False) -> SpecProblem:
        line, column = self.position(path, of_key)
        return SpecProblem(key_text(path), reason, line, column, warning)


def _hashable(value: Any) -> bool:
    return isinstance(value, Hashable)


def read_spec_document(path: str | Path) -> SpecDocument:
    """The YAML of a strategy file with positions, or a ``StrategySpecError`` naming the file.

    The file must be a regular file of at most ``MAX_SPEC_BYTES``; the data may hold at most
    ``MAX_SPEC_VALUES`` values (aliases counted each time they are used) nested at most
    ``MAX_SPEC_DEPTH`` deep.
    """
    try:
        raw = read_regular_file(path, MAX_SPEC_BYTES, "strategy file")
    except InputFileError as exc:
        raise StrategySpecError.one(str(path), exc.reason) from None
    return parse_spec_document(raw, str(path))


def parse_spec_document(raw: bytes, source: str) -> SpecDocument:
    """``raw`` read as one YAML document of the safe schema, within the limits above."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position_of_byte(raw, exc.start)
        bad = raw[exc.start : exc.end].hex(" ")
        raise StrategySpecError.one(source, f"not UTF-8 text (bytes {bad})", line=line, column=column) from None
    deep = _too_deep_bracket(raw)
    if deep is not None:  # PyYAML takes seconds on a few KB of "[[[[" before failing
        line, column = _position_of_byte(raw, deep)
        raise StrategySpecError.one(source, f"nested more than {MAX_SPEC_DEPTH} levels deep", line=line, column=column)
    loader = None
    try:
        try:
            loader = yaml.SafeLoader(text)  # checks every character first
            root = loader.get_single_node()
        except RecursionError:
            reason = f"nested too deeply to parse (at most {MAX_SPEC_DEPTH} levels)"
            raise StrategySpecError.one(source, reason) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = f"not valid YAML ({clipped(' '.join(f'{exc.context or ""} {exc.problem or ""}'.split()))})"
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise StrategySpecError.one(source, reason, line=line, column=column) from None
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
            line, column = _position_of_char(text, exc.position)
            reason = f"not valid YAML (character #x{exc.character:04x} is not allowed)"
            raise StrategySpecError.one(source, reason, line=line, column=column) from None
        except Exception as exc:  # noqa: BLE001 - any parser failure on these bytes is the file's fault
            raise StrategySpecError.one(source, f"not valid YAML ({clipped(exc)})") from None
        if root is None:  # an empty file, or only comments
            return SpecDocument(None, values={(): (1, 1)})
        _check_shape(source, root)
        return _Builder(loader).document(root)
    finally:
        if loader is not None:
            loader.dispose()


def _position_of_byte(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def _position_of_char(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _too_deep_bracket(raw: bytes) -> int | None:
    """Where flow brackets first nest deeper than the limit (quotes ignored: a stricter bound)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_SPEC_DEPTH:
        return None
    depth = 0
    for offset, char in enumerate(raw):
        if char in b"[{":
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                return offset
        elif char in b"]}":
            depth -= 1
    return None


def _check_shape(source: str, root: Node) -> None:
    """Count values and depth on the node tree, without recursion; an alias counts every time it is
    used, so a small file that expands into a huge (or endless) structure is refused here."""
    stack, seen = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        where = {"line": node.start_mark.line + 1, "column": node.start_mark.column + 1}
        if seen > MAX_SPEC_VALUES:
            reason = f"more than {MAX_SPEC_VALUES:,} values once aliases are expanded"
            raise StrategySpecError.one(source, reason, **where)
        if depth > MAX_SPEC_DEPTH:
            raise StrategySpecError.one(source, f"nested more than {MAX_SPEC_DEPTH} levels deep", **where)
        if isinstance(node, MappingNode):
            stack.extend((value, depth + 1) for _, value in node.value)
        elif isinstance(node, SequenceNode):
            stack.extend((value, depth + 1) for value in node.value)


class _Builder:
    """Plain data from the node tree, with positions; node problems are collected, not raised."""

    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.doc = SpecDocument(None)
        self.flattened: set[int] = set()
        self.built_keys: dict[int, tuple[bool, Any]] = {}

    def document(self, root: Node) -> SpecDocument:
        self.doc.data = self.value(root, ())
        return self.doc

    def fail(self, path: KeyPath, node: Node, reason: str, of_key: bool = False, spoil: bool = True) -> None:
        where = self.doc.keys if of_key else self.doc.values
        where[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.doc.problems.append(self.doc.problem(path, reason, of_key))
        if spoil:
            self.doc.spoiled.add(path)

    def value(self, node: Node, path: KeyPath) -> Any:
        self.doc.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, MappingNode) and node.tag == MAP_TAG:
            return self.mapping(node, path)
        if isinstance(node, SequenceNode) and node.tag == SEQ_TAG:
            return [self.value(child, (*path, i)) for i, child in enumerate(node.value)]
        value, reason = self.construct(node)
        if reason is not None:
            self.fail(path, node, reason)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(path, node, "not a finite number (.nan and .inf are refused: no price, period or amount is one)")
        return value

    def construct(self, node: Node) -> tuple[Any, str | None]:
        """The node's value, or why it has none (a bad date, a tag no safe constructor knows)."""
        try:
            return self.loader.construct_object(node, deep=True), None
        except yaml.constructor.ConstructorError as exc:
            if (exc.problem or "").startswith("could not determine a constructor"):
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                return None, f"tag '{excerpt(tag, 48)}' is not allowed (a strategy file holds plain values)"
            return None, clipped(" ".join(f"{exc.context or ''} {exc.problem or ''}".split()))
        except (ValueError, TypeError, ArithmeticError) as exc:
            kind = KIND.get(node.tag, "value")
            if "digits" in str(exc):  # Python refuses int() of more than 4,300 digits
                return None, f"not a valid {kind} (more than 4,300 digits)"
            return None, f"not a valid {kind} ({clipped(exc)})"

    def key(self, node: Node, path: KeyPath) -> tuple[bool, Any]:
        """The key a node writes, once per node; a key that is no key is a problem at its position."""
        if id(node) in self.built_keys:
            return self.built_keys[id(node)]
        value, reason = self.construct(node)
        if reason is None and not isinstance(value, Hashable):
            reason = f"a key must be text or a number, not a {'list' if isinstance(value, list) else 'mapping'}"
        if reason is not None:
            shown = node.value if isinstance(node, ScalarNode) else "?"
            self.fail((*path, shown), node, reason, of_key=True, spoil=False)
            self.built_keys[id(node)] = (False, None)
        else:
            self.built_keys[id(node)] = (True, value)
        return self.built_keys[id(node)]

    def mapping(self, node: MappingNode, path: KeyPath) -> dict:
        if id(node) not in self.flattened:  # an aliased mapping is checked and flattened once
            self.flattened.add(id(node))
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                ok, key = self.key(key_node, path)
                if not ok:
                    continue
                if key in first:  # which one was meant is anyone's guess: checks of its value would mislead
                    reason = f"duplicate key (first written at line {first[key]})"
                    self.fail((*path, key), key_node, reason, of_key=True)
                else:
                    first[key] = key_node.start_mark.line + 1
            try:
                self.loader.flatten_mapping(node)  # << merges: merged keys first, the mapping's own win
            except yaml.MarkedYAMLError as exc:
                reason = clipped(" ".join(f"{exc.context or ''} {exc.problem or ''}".split()))
                self.fail(path, node, f"not valid YAML ({reason})")
                return {}
        result: dict = {}
        for key_node, value_node in node.value:
            ok, key = self.key(key_node, path)
            if not ok:
                continue
            self.doc.keys[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.value(value_node, (*path, key))
        return result

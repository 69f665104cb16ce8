"""YAML loading that remembers where every value came from.

Profiles and topology files are written by hand; a mistake must be reported as
`FILE:LINE:COL: field: message`, so the loader keeps each value's position keyed by
its path (`("nes", 0, "version")`) next to the plain Python data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from changeline.errors import InputError, Problem

PathKey = tuple[str | int, ...]


def field_name(path: PathKey) -> str:
    """`("nes", 0, "version")` -> `nes[0].version`, the way problems name a field."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Located:
    """Plain data plus the position of every node, for located problems."""

    file: str
    data: Any
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)  # where a mapping key is
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: PathKey) -> tuple[int, int]:
        # A missing key is reported at its closest present parent.
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def problem(self, path: PathKey, message: str, *, at_key: bool = False) -> None:
        """Record a problem at the value of `path` (or, with at_key, at its key)."""
        line, column = self.key_marks[path] if at_key and path in self.key_marks else self.where(path)
        self.problems.append(Problem(self.file, line, column, field_name(path), message))

    def raise_problems(self) -> None:
        if self.problems:
            raise InputError(self.problems)


def load_located(path: Path | str) -> Located:
    """Read a YAML file into plain data with positions; unreadable files raise InputError."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(Problem(name, 0, 0, "", f"cannot read: {err.strerror or err}")) from None
    return parse_located(text, name)


def parse_located(text: str, name: str) -> Located:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise InputError(Problem(name, line, column, "", f"not valid YAML: {err.problem}")) from None
    located = Located(name, None)
    if root is not None:
        located.data = _build(root, (), located)
    return located


_constructor = yaml.constructor.SafeConstructor()


def _build(node: yaml.Node, path: PathKey, located: Located) -> Any:
    located.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _constructor.construct_object(key_node, deep=True)
            key = key if isinstance(key, (str, int)) else str(key)
            child = (*path, key)
            if key in out:
                located.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                located.problem(child, "duplicate key", at_key=True)
                continue
            located.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(value_node, child, located)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), located) for i, item in enumerate(node.value)]
    return _constructor.construct_object(node, deep=True)


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def _is_kind(value: Any, kind: type) -> bool:
    # YAML booleans are ints to Python; a number field must not accept `yes`.
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass
class Section:
    """Typed reads from one mapping of a located document; problems are recorded, not raised,
    so one run reports every mistake in a file."""

    doc: Located
    path: PathKey
    data: dict

    @classmethod
    def of(cls, doc: Located, path: PathKey, value: Any, allowed: tuple[str, ...]) -> Section | None:
        if not isinstance(value, dict):
            doc.problem(path, "must be a mapping")
            return None
        for key in value:
            if key not in allowed:
                doc.problem((*path, key), f"unknown field (expected one of: {', '.join(allowed)})", at_key=True)
        return cls(doc, path, value)

    def get(self, key: str, kind: type, *, required: bool = False, default: Any = None) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.problem(key, "is required")
            return default
        value = self.data[key]
        if not _is_kind(value, kind):
            hint = " (quote it)" if kind is str and isinstance(value, (int, float)) else ""
            self.problem(key, f"must be {_KIND_NAMES[kind]}{hint}, got {value!r}")
            return default
        return float(value) if kind is float else value

    def problem(self, key: str | int, message: str) -> None:
        self.doc.problem((*self.path, key), message)

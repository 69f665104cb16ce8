"""YAML loading that remembers where every value came from.

Profiles and topology files are written by hand; a mistake must be reported as
`FILE:LINE:COL: field: message`, so each value's position is kept keyed by its path
(`("nes", 0, "version")`) next to the plain Python data. Parsing itself is the shared
bounded loader of `changeline.yamlsource`; this module adds typed, located reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from changeline.errors import InputError, Problem, shown
from changeline.yamlsource import dotted, load_yaml_file, load_yaml_text

PathKey = tuple[str | int, ...]


field_name = dotted  # `("nes", 0, "version")` -> `nes[0].version`, the way problems name a field


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
    """Read a YAML file into plain data with positions; unreadable or malformed files raise
    InputError (the one bounded loader of changeline.yamlsource: sizes, depth, aliases)."""
    data, source = load_yaml_file(path)
    return Located(source.file, data, dict(source.values), dict(source.keys))


def parse_located(text: str, name: str) -> Located:
    data, source = load_yaml_text(text, name)
    return Located(source.file, data, dict(source.values), dict(source.keys))


_KIND_NAMES = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def _is_kind(value: Any, kind: type) -> bool:
    # YAML booleans are ints to Python; a number field must not accept `yes`.
    if kind is float:  # .inf and .nan are floats to YAML, never a delay, speed or size
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
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
            self.problem(key, f"must be {_KIND_NAMES[kind]}{hint}, got {shown(value)}")
            return default
        return float(value) if kind is float else value

    def problem(self, key: str | int, message: str) -> None:
        self.doc.problem((*self.path, key), message)

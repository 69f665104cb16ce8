"""YAML loading that remembers where every value came from.

Profiles and topology files are written by hand; a mistake must be reported as
`FILE:LINE:COL: field: message`. Parsing and positions are the one bounded loader of
`changeline.yamlsource` (its SourceMap, keyed by path like `("nes", 0, "version")`); this
module adds typed reads that record every problem of a file before raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from changeline.errors import InputError, Problem, shown
from changeline.yamlsource import SourceMap, load_yaml_file, load_yaml_text

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data plus where each node is written (the loader's SourceMap), for located problems."""

    data: Any
    source: SourceMap
    problems: list[Problem] = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.source.file

    def problem(self, path: PathKey, message: str, *, at_key: bool = False) -> None:
        """Record a problem at the value of `path` (or, with at_key, at its key)."""
        self.problems.append(self.source.problem(path, message, at_value=not at_key))

    def raise_problems(self) -> None:
        if self.problems:
            raise InputError(self.problems)


def load_located(path: Path | str) -> Located:
    """Read a YAML file into plain data with positions; unreadable or malformed files raise
    InputError (the one bounded loader of changeline.yamlsource: sizes, depth, aliases)."""
    return Located(*load_yaml_file(path))


def parse_located(text: str, name: str) -> Located:
    return Located(*load_yaml_text(text, name))


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

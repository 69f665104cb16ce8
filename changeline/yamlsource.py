"""YAML loading that remembers where every value came from.

Operators fix what they can find: every problem in a model, inventory or topology
is reported as FILE:LINE:COL plus the dotted field path, so the loader keeps a
map from field path to source position while it builds plain Python data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from changeline.errors import InputError, Problem

FieldPath = tuple[str | int, ...]


def dotted(path: FieldPath) -> str:
    """`('spec', 'stages', 2, 'steps', 0)` -> `spec.stages[2].steps[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class SourceMap:
    """Positions (1-based line, column) of every mapping key and value in a YAML file."""

    file: str
    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: FieldPath) -> tuple[int, int]:
        # Fall back to the nearest enclosing node: a missing field is reported
        # at the mapping that should have held it.
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(self, path: FieldPath, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, dotted(path), message)


class _Builder:
    def __init__(self, source: SourceMap) -> None:
        self.source = source

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = yaml.safe_load(yaml.serialize(key_node)) if key_node.tag != "tag:yaml.org,2002:str" else key_node.value
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise InputError(Problem(self.source.file, key_node.start_mark.line + 1,
                                             key_node.start_mark.column + 1, dotted(path),
                                             "mapping keys must be plain scalars"))
                if key in out:
                    raise InputError(Problem(self.source.file, key_node.start_mark.line + 1,
                                             key_node.start_mark.column + 1, dotted(path + (str(key),)),
                                             f"duplicate key '{key}'"))
                child = path + (str(key),)
                self.source.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        # Scalars: let PyYAML's safe resolver decide int/float/bool/null/str.
        return yaml.safe_load(yaml.serialize(node))


def load_yaml_text(text: str, file: str) -> tuple[Any, SourceMap]:
    source = SourceMap(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise InputError(Problem(file, line, col, "", f"YAML syntax: {err.problem or err.context}")) from None
    except yaml.YAMLError as err:
        raise InputError(Problem(file, 1, 1, "", f"YAML: {err}")) from None
    if node is None:
        return None, source
    try:
        return _Builder(source).build(node, ()), source
    except yaml.YAMLError as err:  # e.g. an unknown tag inside a scalar
        raise InputError(Problem(file, 1, 1, "", f"YAML: {err}")) from None


def load_yaml_file(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(Problem(str(path), 0, 0, "", "file not found")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(Problem(str(path), 0, 0, "", f"cannot read: {err}")) from None
    return load_yaml_text(text, str(path))

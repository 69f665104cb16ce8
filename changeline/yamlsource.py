"""The one YAML loader for models, inventories and topologies: safe, bounded, located.

Operators fix what they can find: every problem in a model, inventory or topology
is reported as FILE:LINE:COL plus the dotted field path, so the loader keeps a
map from field path to source position while it builds plain Python data.

Input files are written by hand, copied around and sometimes hostile, so loading is
bounded before any of it is trusted: regular files only (a FIFO or /dev/zero would
hang or exhaust memory), at most `MAX_BYTES`, nesting at most `MAX_DEPTH` deep (libyaml
itself stops at 1,000 before its composer could exhaust the stack), and aliases adding
at most `MAX_EXPANSION` nodes once expanded (an alias bomb is a few hundred bytes that
expand to billions of nodes). Every refusal names the file and, where there is one, the line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from changeline.errors import InputError, Problem

FieldPath = tuple[str | int, ...]

MAX_BYTES = 2 * 1024 * 1024   # the library's largest model is ~10 KiB, a 10,000-host inventory ~1.5 MiB
MAX_DEPTH = 64                # no input of ours nests deeper than ~8
MAX_EXPANSION = 100_000       # nodes aliases may add beyond those written out

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


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
    """Positions (1-based line, column) of every node of a YAML file.

    `positions` holds a mapping entry at its key (where an editor should jump to),
    `values` at its value, `keys` at its key (only entries of mappings)."""

    file: str
    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: FieldPath, *, at_value: bool = False) -> tuple[int, int]:
        """Where `path` is written: a mapping entry at its key, or with `at_value` at its value.
        A missing field falls back to the nearest enclosing node: the mapping that should
        have held it."""
        marks = self.values if at_value else self.positions
        path = tuple(path)
        while path not in marks and path:
            path = path[:-1]
        return marks.get(path, (1, 1))

    def problem(self, path: FieldPath, message: str, *, at_value: bool = False) -> Problem:
        line, col = self.where(path, at_value=at_value)
        return Problem(self.file, line, col, dotted(path), message)


class _LimitExceeded(Exception):
    def __init__(self, mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.CSafeLoader):
    """libyaml's parser and composer with the safe resolver, its answers memoised: inventories
    repeat the same few scalars (`AMF`, `830`, `true`) thousands of times."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._resolved: dict = {}

    def resolve(self, kind, value, implicit):
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = self._resolved[key] = super().resolve(kind, value, implicit)
        return tag


def _mark(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Builder:
    """Plain data from composed nodes, positions recorded, aliases expanded within budget."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.seen: set[int] = set()   # nodes built once; an alias builds its node again
        self.expanded = 0
        self.problems: list[Problem] = []

    def build(self, node: Node, path: FieldPath, depth: int = 0) -> Any:
        if id(node) in self.seen:
            self.expanded += 1
            if self.expanded > MAX_EXPANSION:
                raise _LimitExceeded(node.start_mark, f"aliases expand to more than {MAX_EXPANSION:,} extra values")
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:  # a recursive alias (`&a [*a]`) composes to a cycle
            raise _LimitExceeded(node.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        where = _mark(node.start_mark)
        self.source.positions.setdefault(path, where)
        self.source.values.setdefault(path, where)
        if isinstance(node, (MappingNode, SequenceNode)) and node.tag not in _COLLECTION_TAGS:
            self.problems.append(Problem(self.source.file, *where, dotted(path),
                                         f"YAML: the tag {node.tag!r} is not supported"))
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: FieldPath, depth: int) -> dict:
        if any(k.tag == _MERGE_TAG for k, _ in node.value):
            try:  # `<<: *defaults`: PyYAML's own merge, so its rules (explicit keys win) hold
                self.constructor.flatten_mapping(node)
            except ConstructorError as err:
                raise _LimitExceeded(err.problem_mark or node.start_mark, f"merge key: {err.problem}") from None
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_at = _mark(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.source.file, *key_at, dotted(path),
                                             "mapping keys must be plain scalars"))
                continue
            key = key_node.value if key_node.tag == _STR_TAG else self._scalar(key_node, path)
            if not isinstance(key, (str, int, float, bool)):
                self.problems.append(Problem(self.source.file, *key_at, dotted(path),
                                             "mapping keys must be plain scalars"))
                continue
            child = path + (str(key),)
            if key in out:
                self.problems.append(Problem(self.source.file, *key_at, dotted(child), f"duplicate key '{key}'"))
                continue
            self.source.positions[child] = key_at
            self.source.keys[child] = key_at
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        if node.tag == _STR_TAG:  # most values: no constructor needed
            return node.value
        # SafeConstructor turns `!!int abc`, `!!bool maybe` or a bad `!!timestamp` into
        # ValueError, KeyError, AttributeError... instead of a YAML error. It has no side effects,
        # so whatever it raises on one scalar is that scalar's fault.
        try:
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError as err:
            line, col = _mark(err.problem_mark or node.start_mark)
            self.problems.append(Problem(self.source.file, line, col, dotted(path), f"YAML: {err.problem}"))
        except Exception:  # noqa: BLE001 - see above
            line, col = _mark(node.start_mark)
            self.problems.append(Problem(self.source.file, line, col, dotted(path),
                                         f"not a valid {node.tag.rsplit(':', 1)[-1]} value"))
        return None


def load_yaml_text(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain data and its SourceMap; raises InputError with every problem."""
    source = SourceMap(file)
    if len(text) > MAX_BYTES:
        raise InputError(Problem(file, 1, 1, "", f"larger than {MAX_BYTES // (1024 * 1024)} MiB"))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, source
        builder = _Builder(source)
        data = builder.build(node, ())
    except _LimitExceeded as err:
        raise InputError(Problem(file, *_mark(err.mark), "", f"refused: {err.message}")) from None
    except yaml.MarkedYAMLError as err:
        line, col = _mark(err.problem_mark or err.context_mark)
        raise InputError(Problem(file, line, col, "", f"YAML syntax: {err.problem or err.context}")) from None
    except yaml.reader.ReaderError as err:  # a control character or a stray NUL byte
        before = text.encode("utf-8")[:err.position]  # libyaml counts bytes
        line, col = before.count(b"\n") + 1, len(before) - (before.rfind(b"\n") + 1) + 1
        raise InputError(Problem(file, line, col, "", f"YAML: {err.reason}")) from None
    except yaml.YAMLError as err:
        raise InputError(Problem(file, 1, 1, "", f"YAML: {err}")) from None
    except RecursionError:  # defence in depth: the depth checks above should come first
        raise InputError(Problem(file, 1, 1, "", "refused: nested too deeply")) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise InputError(builder.problems)
    return data, source


def read_input_file(path: str | Path, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of an input file, which must be a regular file of at most `limit` bytes.

    Checked on the open descriptor (O_NONBLOCK so a FIFO cannot block the open), so a
    file swapped between check and read is still refused."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(Problem(name, 0, 0, "", "file not found")) from None
    except IsADirectoryError:
        raise InputError(Problem(name, 0, 0, "", "is a directory, not a file")) from None
    except OSError as err:
        raise InputError(Problem(name, 0, 0, "", f"cannot read: {err.strerror or err}")) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(Problem(name, 0, 0, "", "is a directory, not a file"))
        if not stat.S_ISREG(info.st_mode):
            raise InputError(Problem(name, 0, 0, "", "not a regular file (a device, FIFO or socket is refused)"))
        if info.st_size > limit:
            raise InputError(Problem(name, 0, 0, "", f"larger than {limit // (1024 * 1024)} MiB "
                                     f"({info.st_size:,} bytes)"))
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:  # the file may grow after fstat: read at most one byte past the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputError(Problem(name, 0, 0, "", f"larger than {limit // (1024 * 1024)} MiB"))
        return b"".join(chunks)
    except OSError as err:
        raise InputError(Problem(name, 0, 0, "", f"cannot read: {err.strerror or err}")) from None
    finally:
        os.close(fd)


def decode_text(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(Problem(file, line, 1, "", f"not UTF-8 text: {err.reason} at byte {err.start}")) from None


def load_yaml_file(path: str | Path) -> tuple[Any, SourceMap]:
    data = read_input_file(path)
    return load_yaml_text(decode_text(data, str(path)), str(path))

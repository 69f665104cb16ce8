"""A step's arguments on their one way to an atom: render, drop OMIT, defaults, validate.

Lint (against a stand-in NE per targeted type), compile (per real NE) and the runner (just
before the atom runs) all call `prepare`, so an argument cannot mean one thing to the model's
check and another to the NE:

1. render every template string in `with` against the context (`changeline.models.templates`);
2. drop every value that rendered to null (`OMIT`), in mappings and lists at any depth, so the
   atom's own default applies;
3. fill in the defaults of the atom's argument schema (`SPEC.args_schema`, committed as
   `models/schema/atoms/<atom>.json`), in nested mappings too;
4. validate against that schema.

Problems are `ArgProblem`s: a field path inside `with` as the model writes it (a list index
counts the items the model wrote, before any was dropped) and a readable message, so each
caller locates them in its own terms: lint and compile at the model's FILE:LINE:COL, the
runner at the `StepSource` compile gave the step (`argument_problem`), or by atom and field
for a step that came from no model.

No device, no clock, no Prefect: the engine imports it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from changeline.errors import Problem
from changeline.models import templates
from changeline.models.schema import located_messages
from changeline.yamlsource import FieldPath, SourceMap, dotted

@dataclass(frozen=True)
class StepSource:
    """Where a compiled step is written in its model, so a problem only its run can find (an
    image that is not there, an atom this engine lacks) still names FILE:LINE:COL and field.

    Small and plain on purpose: it travels with every step of every NE's plan (a Prefect flow
    parameter too), so it keeps the positions of the step's own fields, not the model's map."""

    file: str
    path: FieldPath                                  # the step in the model, e.g. spec.stages[1].steps[0]
    args_at: FieldPath                               # where its arguments are written, inside the step
    marks: tuple[tuple[FieldPath, int, int], ...]    # (field inside the step, line, column), the step first

    @classmethod
    def of(cls, source: SourceMap, path: FieldPath, args: Any, args_at: FieldPath = ("with",)) -> "StepSource":
        """The step at `path` of the model `source` maps, its arguments `args` as written."""
        fields: list[FieldPath] = [(), ("atom",), args_at]

        def walk(value: Any, at: FieldPath) -> None:
            items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
            for key, item in items:
                fields.append(at + (key,))
                walk(item, at + (key,))

        walk(args, args_at)
        marks = []
        for field_path in fields:
            at = source.positions.get(tuple(path) + field_path)
            if at is not None:
                marks.append((field_path, *at))
        return cls(source.file, tuple(path), args_at, tuple(marks))

    def problem(self, field_path: FieldPath, message: str) -> Problem:
        """A problem at `field_path` inside the step, at its line (or the nearest enclosing field's)."""
        known = {mark[0]: mark[1:] for mark in self.marks}
        near = tuple(field_path)
        while near not in known and near:
            near = near[:-1]
        line, column = known.get(near, (0, 0))
        return Problem(self.file, line, column, dotted(self.path + tuple(field_path)), message)


def argument_problem(source: StepSource | None, atom: str, path: FieldPath, message: str) -> Problem:
    """A problem with a step's argument at `path` (inside `with`), found when the step runs: at
    the model's FILE:LINE:COL and field if the step was compiled from one, else by atom and field."""
    if source is None:
        return Problem("<args>", 0, 0, dotted((atom, *path)), message)
    return source.problem(source.args_at + tuple(path), message)


class _Unknown:
    """A value lint cannot know before an NE is named: a template needing an inventory fact or
    a parameter without a default. Validation skips it; compile renders it for real."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class ArgProblem:
    path: FieldPath              # inside the step's `with`, as written in the model
    message: str
    template: str | None = None  # the template a wrongly typed value was rendered from


@dataclass(frozen=True)
class Prepared:
    """Arguments as the atom receives them, or the problems why they cannot be."""

    args: dict[str, Any]
    problems: tuple[ArgProblem, ...] = ()
    unknown: frozenset[FieldPath] = frozenset()   # rendered paths holding UNKNOWN (lint only)
    # For each rendered list that lost items to OMIT: the written index of every kept item.
    written_indexes: dict[FieldPath, tuple[int, ...]] = field(default_factory=dict)

    def known(self, *keys: str | int) -> Any:
        """The prepared value at `keys`, UNKNOWN if lint could not render it, None if absent."""
        if any(keys[:depth + 1] in self.unknown for depth in range(len(keys))):
            return UNKNOWN
        return value_at(self.args, keys)

    def written_path(self, path: FieldPath) -> FieldPath:
        """A path into the prepared arguments as a path into the model's `with`."""
        return written_path(self.written_indexes, path)


def prepare(schema: dict[str, Any], args: Any, context: dict[str, Any] | None = None, *,
            complete: bool = True) -> Prepared:
    """`args` rendered against `context`, without OMIT, with the schema's defaults, validated.

    `context=None`: the values are final (the runner gets them compiled), so a string that
    looks like a template is data and is not rendered again. `complete=False` (lint's
    stand-in context): a template that names a value the context lacks, or whose syntax is
    wrong (lint reports that itself), leaves its value UNKNOWN instead of being a problem.
    """
    rendered = _Walk(context, complete)
    value = rendered.walk(args, (), ())
    value = with_defaults(schema, value)
    problems = list(rendered.problems)
    for err in jsonschema.Draft202012Validator(schema).iter_errors(value):
        at = tuple(err.absolute_path)
        if any(at[:len(u)] == u for u in rendered.unknown):
            continue
        for where, message in located_messages(err, at):
            written = written_path(rendered.indexes, where)
            original = value_at(args, written)
            problems.append(ArgProblem(written, message, original if templates.is_template(original) else None))
    return Prepared(args=value if isinstance(value, dict) else {}, problems=tuple(problems),
                    unknown=frozenset(rendered.unknown), written_indexes=dict(rendered.indexes))


def render(value: Any, context: dict[str, Any], *, complete: bool = True) -> tuple[Any, tuple[ArgProblem, ...]]:
    """Step 1 and 2 alone, for model values that are not atom arguments (the software image,
    rollback scenarios): (the rendered value or OMIT, problems)."""
    walk = _Walk(context, complete)
    return walk.walk(value, (), ()), tuple(walk.problems)


def with_defaults(schema: Any, value: Any) -> Any:
    """`value` with the defaults of every property it lacks, in nested mappings and list items."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        out = dict(value)
        for key, prop in schema["properties"].items():
            if key in out:
                out[key] = with_defaults(prop, out[key])
            elif isinstance(prop, dict) and "default" in prop:
                out[key] = copy.deepcopy(prop["default"])  # never one list shared by every NE's step
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def value_at(value: Any, path: FieldPath) -> Any:
    """The value at `path` (mapping keys, list indexes), or None where there is none."""
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
            value = value[key]
        else:
            return None
    return value


class _Walk:
    """Renders a value tree, keeping for every dropped list item where the kept ones were written."""

    def __init__(self, context: dict[str, Any] | None, complete: bool) -> None:
        self.context, self.complete = context, complete
        self.problems: list[ArgProblem] = []
        self.unknown: set[FieldPath] = set()
        self.indexes: dict[FieldPath, tuple[int, ...]] = {}

    def walk(self, value: Any, written: FieldPath, at: FieldPath) -> Any:
        if value is templates.OMIT:
            return templates.OMIT
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                rendered = self.walk(item, written + (key,), at + (key,))
                if rendered is not templates.OMIT:
                    out[key] = rendered
            return out
        if isinstance(value, list):
            kept, kept_at = [], []
            for i, item in enumerate(value):
                rendered = self.walk(item, written + (i,), at + (len(kept),))
                if rendered is not templates.OMIT:
                    kept.append(rendered)
                    kept_at.append(i)
            if len(kept) < len(value):
                self.indexes[at] = tuple(kept_at)
            return kept
        if self.context is None or not templates.is_template(value):
            return value
        try:
            return templates.render_value(value, self.context)
        except templates.RenderError as err:
            if self.complete or not (err.undefined or err.syntax):
                self.problems.append(ArgProblem(written, err.args[0]))
            self.unknown.add(at)
            return UNKNOWN


def written_path(indexes: dict[FieldPath, tuple[int, ...]], path: FieldPath) -> FieldPath:
    """`path` with every index into a list that lost items to OMIT turned into the item's
    index as written (`indexes`: rendered list path -> written index of each kept item)."""
    out = []
    for depth, key in enumerate(path):
        kept = indexes.get(tuple(path[:depth]))
        if kept is not None and isinstance(key, int) and 0 <= key < len(kept):
            key = kept[key]
        out.append(key)
    return tuple(out)

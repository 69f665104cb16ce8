"""Jinja2 templates in model step arguments: references, rendering, native values.

A string in a step's `with` may be a template over five roots:

- `params.*`   the model's parameters (defaults, overridden with `--param k=v`)
- `host.*`     the inventory host: `name`, `hostname`, `ne_type`, `software_version`, `pool`,
               `tags`, `groups`, and any inventory fact under `host.data.*`
- `model.*`    `name`, `version`, `kind`, `description`, `owner`
- `target.*`   `ne_type`, `from_version` (the NE's current version), `to_version` (upgrades),
               `ne_types`, `from_versions`, `versions`, and from the NE type's profile
               `scenarios` (its dial tests) and `cdr_scenarios` (those that write CDRs)
- `software.*` `image` (the rendered `spec.software.image`) and `file` (its file name), upgrades only

A value that is exactly one `{{ expression }}` keeps the expression's type (a list stays a
list, an integer an integer), so it type-checks against the atom's argument schema; any
other template renders to a string. A value that renders to null is left out (from its
mapping or list, at any depth: `changeline.models.step_args`), so the atom's own default applies. Templates run in Jinja's immutable sandbox with undefined
names as errors: a model cannot reach Python internals or silently render an empty string.
"""

from __future__ import annotations

import contextvars
import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2 import (ChainableUndefined, StrictUndefined, TemplateError, TemplateSyntaxError, Undefined,
                    UndefinedError, meta, nodes)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from changeline.errors import EXIT_BAD_INPUT, ChangelineError

ROOTS = ("params", "host", "model", "target", "software")
HOST_FIELDS = frozenset({"name", "hostname", "data", "ne_type", "software_version", "pool", "tags", "groups"})
MODEL_FIELDS = frozenset({"name", "version", "kind", "description", "owner"})
TARGET_FIELDS = frozenset({"ne_type", "from_version", "to_version", "ne_types", "from_versions", "versions",
                           "scenarios", "cdr_scenarios"})
SOFTWARE_FIELDS = frozenset({"image", "file"})
UPGRADE_ONLY = {("target", "to_version"), ("target", "from_versions"), ("software", None)}

_MARKERS = ("{{", "{%", "{#")
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

_MAX_SIZE = 100_000   # characters or items any one value may have
_MAX_BITS = 4_096     # an integer result's size: 10**1233, far past any timer, count or size
_MAX_WORK = 100_000   # loop iterations plus calls one rendering may make


class _Work:
    """The budget of one rendering: a model's templates run for every NE of a campaign, and
    `{% for %}` inside `{% for %}` or a macro calling itself twice is exponential."""

    def __init__(self) -> None:
        self.left = _MAX_WORK

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(f"template does too much work (more than {_MAX_WORK:,} loop turns and calls)")


_work: contextvars.ContextVar[_Work | None] = contextvars.ContextVar("changeline_template_work", default=None)


@contextmanager
def _budget():
    token = _work.set(_Work())
    try:
        yield
    finally:
        _work.reset(token)


def _spend() -> None:
    work = _work.get()
    if work is not None:
        work.spend()


_COUNTED = "_changeline_counted"


def _counted(iterable):
    """Every `{% for %}` iterates through this (see _Sandbox._parse), one unit of work per turn."""
    for item in iterable:
        _spend()
        yield item


def _too_large(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value.bit_length() > _MAX_BITS
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > _MAX_SIZE
    return False


def _guarded_filter(func):
    # Filters are called straight from compiled code, not through the sandbox's `call`:
    # `"x"|center(10**9)` or `|indent(10**9)` would allocate before any check on the result.
    @functools.wraps(func)
    def guarded(*args, **kwargs):
        _spend()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > _MAX_SIZE:
                raise SecurityError("filter argument too large")
        result = func(*args, **kwargs)
        if _too_large(result):
            raise SecurityError("result too large")
        return result
    return guarded


_WIDE_FORMAT = re.compile(r"\d{6,}")  # a field width or precision of a million or more


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, also refusing memory and time bombs: `'x' * 10**9`,
    `99 ** 64 ** 64 ** 64` (each exponent small, the result astronomical), nested loops,
    runaway macros, and format widths that allocate gigabytes."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filters = {name: _guarded_filter(f) for name, f in self.filters.items()}
        self.globals[_COUNTED] = _counted

    def _parse(self, source, name, filename):
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_COUNTED, "load"), [loop.iter], [], None, None)
        return tree

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and not isinstance(right, bool):
            if abs(right) > 64:
                raise SecurityError("exponent too large")
            if isinstance(left, int) and isinstance(right, int) and right > 0 \
                    and max(abs(left), 1).bit_length() * right > _MAX_BITS:
                raise SecurityError("result too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > _MAX_SIZE:
                    raise SecurityError("result too large")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > _MAX_BITS:
                raise SecurityError("result too large")
        if operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise SecurityError("format width too large")
        result = super().call_binop(context, operator, left, right)
        if _too_large(result):
            raise SecurityError("result too large")
        return result

    def call(self, __context, __obj, *args, **kwargs):
        _spend()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > _MAX_SIZE:
                raise SecurityError("call argument too large")
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            # The sandbox hands out str.format wrapped; the string is on the wrapped method.
            bound = getattr(__obj, "__self__", None) or getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
            if isinstance(bound, str) and _WIDE_FORMAT.search(bound):
                raise SecurityError("format width too large")
        result = super().call(__context, __obj, *args, **kwargs)
        if _too_large(result):
            raise SecurityError("result too large")
        return result


# Step arguments: an undefined name is an error, never an empty string.
_STRICT = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True)
# `when` conditions: a missing inventory fact (`host.data.pool`) is simply false.
_LENIENT = _Sandbox(undefined=ChainableUndefined)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(m in value for m in _MARKERS)


def whole_expression(text: str) -> str | None:
    """The expression of a value that is exactly `{{ expr }}`, else None."""
    match = _WHOLE.match(text)
    if not match:
        return None
    expr = match.group("expr")
    return None if any(m in expr for m in ("{{", "}}", "{%", "%}")) else expr


@dataclass(frozen=True)
class Reference:
    """One `root.field` a template uses (field is None for a bare `root` or a computed key)."""

    root: str
    field: str | None


def references(text: str, *, expression: bool = False) -> tuple[set[str], set[Reference]]:
    """(undeclared names, root.field references) of a template; raises TemplateError on bad syntax.

    Names a template declares itself (`{% for x in ... %}`, `{% set %}`) are not undeclared.
    """
    source = "{{ " + text + " }}" if expression else text
    ast = _STRICT.parse(source)
    names = meta.find_undeclared_variables(ast) - {_COUNTED}
    refs: set[Reference] = set()
    seen_nodes: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.name in ROOTS and inner.name in names:
            seen_nodes.add(id(inner))
            if isinstance(node, nodes.Getattr):
                refs.add(Reference(inner.name, node.attr))
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                refs.add(Reference(inner.name, node.arg.value))
            else:
                refs.add(Reference(inner.name, None))
    for node in ast.find_all(nodes.Name):
        if node.name in ROOTS and node.name in names and id(node) not in seen_nodes:
            refs.add(Reference(node.name, None))
    return names, refs


def reference_problems(text: str, *, param_names: set[str], upgrade: bool, expression: bool = False) -> list[str]:
    """Why a template cannot resolve: syntax errors, unknown names, unknown fields."""
    try:
        names, refs = references(text, expression=expression)
    except TemplateError as err:
        return [f"template syntax error: {err.message or err}"]
    problems: list[str] = []
    for name in sorted(names - set(ROOTS)):
        problems.append(f"unresolved template reference '{name}' (use {', '.join(r + '.*' for r in ROOTS)})")
    for ref in sorted(refs, key=lambda r: (r.root, r.field or "")):
        if not upgrade and ((ref.root, ref.field) in UPGRADE_ONLY or (ref.root == "software")):
            problems.append(f"'{ref.root}{'.' + ref.field if ref.field else ''}' is only defined in upgrade models")
            continue
        if ref.field is None:
            continue
        known = {"params": param_names, "host": HOST_FIELDS, "model": MODEL_FIELDS,
                 "target": TARGET_FIELDS, "software": SOFTWARE_FIELDS}[ref.root]
        if ref.field not in known:
            if ref.root == "params":
                declared = ", ".join(sorted(param_names)) or "none"
                problems.append(f"unresolved parameter reference 'params.{ref.field}' (declared: {declared})")
            elif ref.root == "host":
                problems.append(f"unknown host field 'host.{ref.field}' (inventory facts are under host.data.*)")
            else:
                problems.append(f"unknown field '{ref.root}.{ref.field}' (known: {', '.join(sorted(known))})")
    return problems


class RenderError(ChangelineError):
    """A template failed to render; `undefined` when it needed a value not known yet.
    Lint and compile turn it into a located Problem; one that escapes is still the model's fault."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, undefined: bool = False, syntax: bool = False) -> None:
        super().__init__(message)
        self.undefined = undefined
        self.syntax = syntax


# A model's few templates are rendered once per NE: compile each once (Jinja's compile is the
# expensive part; a 200-NE campaign spent ~3% of its engine time recompiling them).
@functools.lru_cache(maxsize=4096)
def _strict_expression(expr: str):
    return _STRICT.compile_expression(expr, undefined_to_none=False)


@functools.lru_cache(maxsize=4096)
def _strict_template(source: str):
    return _STRICT.from_string(source)


@functools.lru_cache(maxsize=4096)
def _lenient_expression(expr: str):
    return _LENIENT.compile_expression(expr, undefined_to_none=True)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render one value against `context`: a template string, or anything else as it is.

    Returns `OMIT` for a whole-expression template that evaluated to null. Mappings and
    lists are walked by `changeline.models.step_args`, which drops the OMITs and knows where
    each value was written.
    """
    if not is_template(value):
        return value
    try:
        with _budget():
            expr = whole_expression(value)
            if expr is not None:
                result = _strict_expression(expr)(**context)
                _reject_undefined(result)
                return OMIT if result is None else _plain(result)
            return _strict_template(value).render(**context)
    except RenderError:
        raise
    except TemplateSyntaxError as err:
        raise RenderError(f"template syntax error: {err.message or err}", syntax=True) from None
    except UndefinedError as err:
        raise RenderError(f"{err.message or err} (in {value!r})", undefined=True) from None
    except TemplateError as err:  # SecurityError, runtime errors
        raise RenderError(err.message or str(err)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as err:
        raise RenderError(f"template error: {err}") from None
    except (RecursionError, MemoryError):  # a macro calling itself; an allocation past the limits
        raise RenderError("template error: too deep or too large") from None


def evaluate_condition(expression: str, context: dict[str, Any]) -> bool:
    """A `when:` condition: a bare Jinja expression; missing facts are false."""
    try:
        with _budget():
            result = _lenient_expression(expression)(**context)
            return bool(result) and not isinstance(result, Undefined)
    except TemplateError as err:
        raise RenderError(err.message or str(err)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as err:
        raise RenderError(f"condition error: {err}") from None
    except (RecursionError, MemoryError):
        raise RenderError("condition error: too deep or too large") from None


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()


def _reject_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming what was missing
        raise RenderError("undefined value", undefined=True)
    if isinstance(value, dict):
        for item in value.values():
            _reject_undefined(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reject_undefined(item)


def _plain(value: Any) -> Any:
    """Tuples and other sequences from expressions become lists, as in YAML."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

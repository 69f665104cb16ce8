"""Run one atom with argument checking and transient-only retries; undo a run from its journal.

Engine-agnostic on purpose: Prefect tasks wrap these calls, and the engine-less
benchmark baseline calls them directly, so both measure the same device work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from changeline.atoms import load
from changeline.engine.atom import AtomContext, AtomResult, scaled_timeout
from changeline.errors import ChangelineError, InputError, RollbackFailed, StepTimeout, TransientError
from changeline.models import step_args
from changeline.models.step_args import StepSource


@dataclass
class Retry:
    """Backoff for transient errors, as the delays between attempts. It sits beside `execute`
    and `undo_run`, the only code that reads it; callers pass one to change the attempts."""

    attempts: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    delays: list[float] = field(init=False)

    def __post_init__(self) -> None:
        d, out = self.first_delay, []
        for _ in range(max(self.attempts - 1, 0)):
            out.append(min(d, self.max_delay))
            d *= self.factor
        self.delays = out


def atom_module(atom: str, source: StepSource | None = None) -> ModuleType:
    """The atom's module; InputError for an atom this engine lacks, at the model's `atom` field
    when the step came from a model."""
    try:
        return load(atom)
    except InputError as err:
        if source is None:
            raise
        raise InputError([source.problem(("atom",), p.message) for p in err.problems]) from None


def check_args(atom: str, args: dict[str, Any], source: StepSource | None = None) -> dict[str, Any]:
    """The arguments as the atom receives them, prepared the one way lint and compile prepare
    them (changeline.models.step_args): nulls left out, defaults filled in, validated against
    the atom's schema. Not rendered again: a compiled step's values are final. Raises
    InputError naming each field: at the model's FILE:LINE:COL when the step came from a
    model (`source`), else by atom."""
    prepared = step_args.prepare(atom_module(atom, source).SPEC.args_schema, args)
    if prepared.problems:
        raise InputError([step_args.argument_problem(source, atom, p.path, p.message) for p in prepared.problems])
    return prepared.args


def execute(atom: str, ctx: AtomContext, args: dict[str, Any], *, retry: Retry | None = None,
            timeout_s: float | None = None) -> AtomResult:
    """Run an atom; retry only transient device errors, reconnecting first (atoms are idempotent).

    `timeout_s` is the step's budget in the NE's time (the model's per-step `timeout`): the
    session refuses to wait past it and a retry that cannot fit is not started (StepTimeout).
    """
    module = atom_module(atom, ctx.source)
    args = check_args(atom, args, ctx.source)
    retry = retry or Retry(attempts=module.SPEC.transient_retries + 1)
    budget = None if timeout_s is None else scaled_timeout(ctx, timeout_s)
    what = f"step {ctx.step or atom} ({atom}, timeout {timeout_s:g} s)" if timeout_s is not None else ""
    with ctx.session.deadline(budget, what):
        for attempt, delay in enumerate([*retry.delays, None]):
            try:
                result = module.run(ctx, **args)
                if attempt:
                    result.evidence.setdefault("transient_retries", attempt)
                return result
            except TransientError as err:
                if delay is None:
                    raise
                left = ctx.session.time_left()
                if left is not None and left <= delay:
                    raise StepTimeout(f"{what} ran out of time after {attempt + 1} attempt(s); last: {err.reason}",
                                      host=ctx.ne) from err
                ctx.log(f"{ctx.ne} {atom}: transient error, retry {attempt + 1}/{len(retry.delays)} in {delay:.1f} s: {err.reason}")
                ctx.session.reconnect()
                time.sleep(delay)
    raise AssertionError("unreachable")


def undo_run(ctx: AtomContext, *, retry: Retry | None = None) -> list[AtomResult]:
    """Undo every journaled mutating step of (run, NE), newest first. Each undo is idempotent.

    Stops at the first undo that fails, marking it `undo-failed`, and raises
    RollbackFailed: undoing older steps on top of a half-undone newer one would only
    make the NE's state harder to reason about.
    """
    results: list[AtomResult] = []
    retry = retry or Retry(attempts=4)
    for entry in ctx.journal.to_undo(ctx.run_id, ctx.ne):
        module = load(entry.atom)
        undo = getattr(module, "undo", None)
        if undo is None:
            ctx.journal.mark_undo(entry.id, "undone", {"reason": module.SPEC.undo_note or "nothing to undo"})
            continue
        for attempt, delay in enumerate([*retry.delays, None]):
            try:
                res = undo(ctx, entry.undo)
                break
            except TransientError as err:
                if delay is None:
                    ctx.journal.mark_undo(entry.id, "undo-failed", {"reason": err.reason})
                    raise RollbackFailed(f"undo of {entry.step} ({entry.atom}) failed: {err.reason}") from err
                ctx.session.reconnect()
                time.sleep(delay)
            except ChangelineError as err:
                ctx.journal.mark_undo(entry.id, "undo-failed", {"reason": err.reason})
                raise RollbackFailed(f"undo of {entry.step} ({entry.atom}) failed: {err.reason}",
                                     evidence=err.evidence) from err
        ctx.journal.mark_undo(entry.id, "undone", res.to_dict())
        results.append(res)
    return results

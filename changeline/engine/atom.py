"""What every atom is made of: a spec (name, argument schema, undo), a context, a result.

An atom is one small module in `atoms/` exposing `SPEC`, `run(ctx, **args) -> AtomResult`
(the engine's StepOutcome) and, when it changes the NE, `undo(ctx, record) -> AtomResult`
beside it. `run` reads the device first and treats "already done" as success, so a
retried or resumed atom never acts twice. Before a mutating atom acts it writes the undo record to the
durable journal (`ctx.journal`), because an engine crash loses anything in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from changeline.engine.outcomes import StepOutcome
from changeline.errors import InputError

if TYPE_CHECKING:
    from changeline.devices.inventory import Host
    from changeline.devices.platforms import Driver
    from changeline.devices.session import DeviceSession
    from changeline.models.step_args import StepSource
    from changeline.state.api import Backups, StateStore


@dataclass(frozen=True)
class AtomSpec:
    name: str
    summary: str
    args_schema: dict[str, Any]
    mutating: bool
    # Why an atom that changes the NE needs no undo of its own (e.g. an installed but
    # inactive image is inert). Lint insists a mutating step has an undo or this note.
    undo_note: str = ""
    estimate_s: float = 10.0          # default duration for change-window planning
    manual_minutes: float = 5.0       # what a person would spend doing it by hand
    transient_retries: int = 3


# What an atom returns is the step's outcome itself (changeline.engine.outcomes): the atom
# fills in what it did (changed, reason, diff, before/after, evidence), the engine the rest.
AtomResult = StepOutcome


@dataclass
class AtomContext:
    """Everything an atom may touch: the NE's session and the durable stores.

    `baseline` carries pre-change measurements (KPIs, dial-test results, alarms)
    from earlier steps to later gates of the same NE; it is persisted with the journal.
    """

    host: "Host"
    session: "DeviceSession"
    journal: "StateStore"
    backups: "Backups"
    run_id: str
    step: str = ""
    source: "StepSource | None" = None  # where the model writes the step running now
    speed: float = 1.0                 # scales waits for simulated NEs; 1.0 on real networks
    dry_run: bool = False
    baseline: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print
    _driver: "Driver | None" = field(default=None, init=False, repr=False, compare=False)

    @property
    def ne(self) -> str:
        return self.host.name

    @property
    def driver(self) -> "Driver":
        """The NE's platform driver (the inventory's `platform`): atoms ask it for operations."""
        from changeline.devices.platforms import driver_for

        if self._driver is None or self._driver.session is not self.session:
            self._driver = driver_for(self.host, self.session, log=self.log)
        return self._driver


def bad_argument(ctx: AtomContext, atom: str, field: str, message: str) -> InputError:
    """An argument of `atom` that only its run can find wrong (an image file that is not there),
    named at the model's FILE:LINE:COL and field when the step came from a model."""
    from changeline.models.step_args import argument_problem

    return InputError(argument_problem(ctx.source, atom, (field,), message))


def timed(fn):
    """Stamp `duration_s` on the AtomResult an atom returns."""

    def wrapper(*args, **kwargs) -> AtomResult:
        start = time.monotonic()
        result = fn(*args, **kwargs)
        result.duration_s = round(time.monotonic() - start, 3)
        return result

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


class Journaled:
    """`with Journaled(ctx, undo) as j:` - the undo record is durable before the body acts.

    On success the entry is marked done with the result set on `j.result`; on any
    exception it is marked failed and the exception propagates.
    """

    def __init__(self, ctx: AtomContext, atom: str, undo: dict[str, Any] | None) -> None:
        self.ctx, self.atom, self.undo = ctx, atom, undo
        self.entry_id = 0
        self.result: AtomResult | None = None

    def __enter__(self) -> "Journaled":
        self.entry_id = self.ctx.journal.begin(self.ctx.run_id, self.ctx.ne, self.ctx.step or self.atom,
                                               self.atom, self.undo)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.ctx.journal.finish(self.entry_id, "done", self.result.to_dict() if self.result else None)
        else:
            self.ctx.journal.finish(self.entry_id, "failed", {"reason": str(exc), "type": type(exc).__name__})


# A simulated NE runs its clock fast, but the engine's own latencies (SSH handshakes, a loaded
# machine) do not shrink with it: a scaled time budget never goes below this many real seconds.
TIMEOUT_FLOOR_S = 30.0


def scaled_timeout(ctx: AtomContext, seconds: float) -> float:
    """A time budget in the NE's time as real seconds: as is on a network, scaled for
    simulators but never below TIMEOUT_FLOOR_S (or the budget itself when smaller)."""
    if ctx.speed >= 1.0:
        return seconds
    return max(seconds * ctx.speed, min(seconds, TIMEOUT_FLOOR_S))


def scaled(ctx: AtomContext, seconds: float) -> float:
    """A device-side wait in the NE's time: real seconds on a network, scaled for simulators."""
    return max(seconds * ctx.speed, 0.05)

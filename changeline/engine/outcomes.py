"""What a change did to one NE, in one typed shape: an atom returns a StepOutcome (atoms call
it AtomResult), the engine completes it with the step's name and timing, an NEOutcome holds
the NE's steps, anomalies, decisions and rollback; the campaign summary, the journal's step
records, the Prefect states and the report all carry these, as `to_dict()` on the way out.

Plain dataclasses (no Prefect), checked on the way out (`to_dict`) and on the way in
(`from_dict`): a field of the wrong type or a status no NE can end in is an OutcomeError
naming the field, never a report that crashes later on a missing key. Reading fills
what an older or short record leaves out (an NE the campaign never started is written
with its status and reason only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from changeline.errors import OutcomeError
from changeline.engine import policy

# Where an NE's outcome can stand: a final state, or caught on the way (a report of a campaign
# whose engine died shows the journal's last word for it).
NE_STATUSES = (*policy.FINAL_STATES, policy.RUNNING, policy.PAUSED)
STEP_STATUSES = ("done", "failed", "skipped")


def _check(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int: a number field must not take True, a bool field must not take 1.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise OutcomeError(f"{where}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise OutcomeError(f"{where}: expected {names}, got {type(value).__name__} {value!r:.80}")
    return value


def _fill(cls, raw: Any, where: str) -> dict[str, Any]:
    """The dataclass's fields from `raw`, type-checked, defaults for what is missing (None counts
    as missing); keys the dataclass does not know are left out."""
    if not isinstance(raw, Mapping):
        raise OutcomeError(f"{where}: expected a mapping, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for f in fields(cls):
        value = raw.get(f.name)
        if value is None:
            continue
        kind = _KINDS[cls][f.name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[f.name] = _check(value, kind, f"{where}.{f.name}")
    return out


@dataclass
class StepOutcome:
    """One step (or one atom call, or one undo) on one NE. A failure is data: status `failed`
    with the reason and the evidence, never an exception past the engine."""

    name: str = ""                  # the model's step name; the engine sets it
    atom: str = ""
    status: str = "done"            # done | failed | skipped
    changed: bool = False
    reason: str = ""
    started_at: float = 0.0
    duration_s: float = 0.0
    gate: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    diff: str = ""
    manual_minutes: float = 0.0     # what a person would have spent on this step by hand
    estimate_s: float = 0.0
    before: dict[str, Any] = field(default_factory=dict)   # device state the atom read first
    after: dict[str, Any] = field(default_factory=dict)    # and what it left
    ne: str = ""
    atom_s: float = 0.0             # of duration_s, the time inside the atom (the rest: the engine's)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def validate(self, where: str = "step") -> "StepOutcome":
        _fill(StepOutcome, self.__dict__, where)
        if self.status not in STEP_STATUSES:
            raise OutcomeError(f"{where}.status: {self.status!r} is not one of {', '.join(STEP_STATUSES)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        self.validate(f"step {self.name}")
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Any, where: str = "step") -> "StepOutcome":
        values = _fill(cls, raw, where)
        for required in ("name", "status"):
            if required not in values:
                raise OutcomeError(f"{where}.{required}: missing")
        return cls(**values).validate(where)


@dataclass
class RollbackOutcome:
    """The rollback an NE went through in its run: journaled steps undone newest first, then
    restored to its backup and verified. `ok` False says why in `reason`."""

    ok: bool
    reason: str = ""
    cause: str = ""                 # the anomaly that started it ("dial-test: 3 of 10 calls dropped")
    undone: list[dict[str, Any]] = field(default_factory=list)
    verified: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0         # the report's time from the failed gate to the rollback's start

    def to_dict(self) -> dict[str, Any]:
        _fill(RollbackOutcome, self.__dict__, "rollback")
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Any, where: str = "rollback") -> "RollbackOutcome":
        values = _fill(cls, raw, where)
        if "ok" not in values:
            raise OutcomeError(f"{where}.ok: missing")
        for i, undo in enumerate(values.get("undone", [])):
            _check(undo, Mapping, f"{where}.undone[{i}]")
        return cls(**values)


@dataclass
class NEOutcome:
    ne: str
    ne_type: str
    campaign_id: str
    status: str = policy.RUNNING
    reason: str = ""
    from_version: str = ""
    to_version: str = ""
    steps: list[StepOutcome] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    rollback: RollbackOutcome | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    operator_seconds: float = 0.0   # time a person spent deciding (pause forms)
    resumed: bool = False           # finished by an earlier run of the campaign

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("steps", "rollback")}
        # A step or rollback given as a mapping (as older callers write them) is read into its type.
        out["steps"] = [(s if isinstance(s, StepOutcome) else StepOutcome.from_dict(s, f"outcome of {self.ne}.steps"))
                        .to_dict() for s in self.steps]
        rollback = self.rollback
        if rollback and not isinstance(rollback, RollbackOutcome):
            rollback = RollbackOutcome.from_dict(rollback, f"outcome of {self.ne}.rollback")
        out["rollback"] = rollback.to_dict() if rollback else {}
        NEOutcome.from_dict(out, f"outcome of {self.ne}")  # what is written must read back
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str = "outcome") -> "NEOutcome":
        if not isinstance(raw, Mapping):
            raise OutcomeError(f"{where}: expected a mapping, got {type(raw).__name__}")
        flat = {k: v for k, v in raw.items() if k not in ("steps", "rollback")}
        values = _fill(cls, flat, where)
        if not values.get("ne"):
            raise OutcomeError(f"{where}.ne: missing")
        values.setdefault("ne_type", "")
        values.setdefault("campaign_id", "")
        if values.get("status", policy.RUNNING) not in NE_STATUSES:
            raise OutcomeError(f"{where}.status: {values['status']!r} is not one of {', '.join(NE_STATUSES)}")
        steps = _check(raw.get("steps") or [], list, f"{where}.steps")
        values["steps"] = [StepOutcome.from_dict(s, f"{where}.steps[{i}]") for i, s in enumerate(steps)]
        rollback = raw.get("rollback") or {}
        values["rollback"] = RollbackOutcome.from_dict(rollback, f"{where}.rollback") if rollback else None
        for name in ("anomalies", "decisions"):
            for i, item in enumerate(values.get(name, [])):
                _check(item, Mapping, f"{where}.{name}[{i}]")
        return cls(**values)


_KINDS: dict[type, dict[str, Any]] = {
    StepOutcome: {"name": str, "atom": str, "status": str, "changed": bool, "reason": str, "started_at": float,
                  "duration_s": float, "gate": bool, "evidence": dict, "diff": str, "manual_minutes": float,
                  "estimate_s": float, "before": dict, "after": dict, "ne": str, "atom_s": float},
    RollbackOutcome: {"ok": bool, "reason": str, "cause": str, "undone": list, "verified": dict, "started_at": float},
    NEOutcome: {"ne": str, "ne_type": str, "campaign_id": str, "status": str, "reason": str, "from_version": str,
                "to_version": str, "steps": list, "anomalies": list, "decisions": list, "rollback": dict,
                "started_at": float, "finished_at": float, "operator_seconds": float, "resumed": bool},
}


def normalised(raw: Mapping[str, Any], where: str = "outcome") -> dict[str, Any]:
    """An outcome as stored, read back in full shape (every field, steps and rollback too)."""
    return NEOutcome.from_dict(raw, where).to_dict()

"""The campaign timeline (NEs x steps) as data, and its geometry for an SVG Gantt chart.

Pure functions: `timeline` places every step of every NE in seconds from the campaign's
start; `layout` turns that into pixels so the template only draws rectangles. Rows scale
in height with the number of NEs and every row keeps its label, so 200 NEs stay readable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Bar:
    kind: str          # step | wait (operator answering a pause form) | rollback
    label: str
    status: str        # done | failed | skipped | rollback-ok | rollback-failed | wait
    start_s: float     # from the campaign's start
    duration_s: float
    detail: str = ""


@dataclass(frozen=True)
class Row:
    ne: str
    status: str
    bars: tuple[Bar, ...]
    note: str = ""     # why an NE has no bars (deferred, ineligible, ...)


@dataclass(frozen=True)
class Timeline:
    origin: float | None   # epoch seconds of the campaign's start
    span_s: float
    rows: tuple[Row, ...]
    window_end_s: float | None = None   # the change window's end, when it falls inside the span

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Timeline":
        rows = tuple(Row(r["ne"], r["status"], tuple(Bar(**b) for b in r["bars"]), r.get("note", ""))
                     for r in data["rows"])
        return cls(data["origin"], data["span_s"], rows, data.get("window_end_s"))


def campaign_origin(outcomes: Iterable[Mapping[str, Any]], started_at: float | None = None) -> float | None:
    """The earliest of the campaign's recorded start and any NE's or step's start."""
    times = [started_at] if started_at else []
    for outcome in outcomes:
        times += [t for t in [outcome.get("started_at")] + [s.get("started_at") for s in outcome.get("steps") or []]
                  if t]
    return min(times) if times else None


def _rollback_bar(outcome: Mapping[str, Any], origin: float, after_s: float) -> Bar | None:
    """The rollback ran last: from the end of the last step (or operator wait) until the NE finished."""
    rollback = outcome.get("rollback") or {}
    if not rollback:
        return None
    finished = outcome.get("finished_at") or 0.0
    if finished:
        end_s = finished - origin
    else:
        parts = list(rollback.get("undone") or []) + ([rollback["verified"]] if rollback.get("verified") else [])
        end_s = after_s + sum(float(p.get("duration_s") or 0.0) for p in parts if isinstance(p, Mapping))
    ok = bool(rollback.get("ok"))
    detail = (rollback.get("verified") or {}).get("reason", "") if ok else rollback.get("reason", "")
    return Bar("rollback", "rollback", "rollback-ok" if ok else "rollback-failed", after_s,
               max(end_s - after_s, 0.0), detail)


def ne_bars(outcome: Mapping[str, Any], origin: float) -> tuple[Bar, ...]:
    bars: list[Bar] = []
    waits = {d.get("step"): float(d.get("waited_s") or 0.0) for d in outcome.get("decisions") or []}
    last_end = 0.0
    for step in outcome.get("steps") or []:
        started = step.get("started_at") or 0.0
        if not started:   # finished by an earlier attempt: no timing in this record
            continue
        start_s, duration = started - origin, float(step.get("duration_s") or 0.0)
        bars.append(Bar("step", step.get("name", ""), step.get("status", ""), start_s, duration,
                        step.get("reason", "")))
        last_end = max(last_end, start_s + duration)
        wait = waits.get(step.get("name"))
        if wait:
            bars.append(Bar("wait", f"operator: {step.get('name')}", "wait", start_s + duration, wait,
                            "waiting for an operator's answer"))
            last_end = max(last_end, start_s + duration + wait)
    rollback = _rollback_bar(outcome, origin, last_end)
    if rollback:
        bars.append(rollback)
    return tuple(bars)


def timeline(outcomes: Iterable[Mapping[str, Any]], started_at: float | None = None,
             window_end: float | None = None) -> Timeline:
    """One row per NE, NEs that ran in order of their start, the others after them by name."""
    outcomes = list(outcomes)
    origin = campaign_origin(outcomes, started_at)
    rows = []
    for outcome in outcomes:
        bars = ne_bars(outcome, origin) if origin is not None else ()
        note = "" if bars else f"{outcome.get('status', '')}: {outcome.get('reason', '')}".strip(": ")
        rows.append(Row(str(outcome.get("ne", "")), str(outcome.get("status", "")), bars, note))
    rows.sort(key=lambda r: (0, min(b.start_s for b in r.bars), r.ne) if r.bars else (1, 0.0, r.ne))
    span = max(max((b.start_s + b.duration_s for r in rows for b in r.bars), default=0.0), 1.0)
    window_s = window_end - origin if window_end and origin is not None else None
    return Timeline(origin, span, tuple(rows), window_s if window_s is not None and 0 <= window_s <= span else None)


# --- geometry -----------------------------------------------------------------------

@dataclass(frozen=True)
class Rect:
    x: float
    width: float
    kind: str
    status: str
    title: str
    label: str = ""    # drawn inside the bar only when it fits


@dataclass(frozen=True)
class RowGeometry:
    y: float
    ne: str
    status: str
    note: str
    rects: tuple[Rect, ...]


@dataclass(frozen=True)
class Geometry:
    width: float
    height: float
    label_width: float
    plot_left: float
    plot_width: float
    top: float
    row_height: float
    font_size: float
    ticks: tuple[tuple[float, str], ...]   # (x, label)
    rows: tuple[RowGeometry, ...]
    bottom: float | None                    # y of a second axis under the rows, for long charts
    window_end_x: float | None


BOTTOM_AXIS_ROWS = 40


def row_height(n_rows: int) -> tuple[float, float]:
    """(row height, font size): tighter rows for many NEs, never below a legible 9 px font."""
    if n_rows <= 30:
        return 22.0, 12.0
    if n_rows <= 100:
        return 16.0, 10.5
    return 13.0, 9.0


def nice_step(span_s: float, target_ticks: int = 10) -> float:
    """A 1-2-5 x 10^k tick interval giving about `target_ticks` ticks over `span_s`."""
    raw = max(span_s, 1e-9) / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def tick_label(seconds: float) -> str:
    return f"{seconds:g} s"


def layout(tl: Timeline, *, width: float = 1200.0, label_width: float = 190.0,
           min_bar_px: float = 1.5) -> Geometry:
    rh, font = row_height(len(tl.rows))
    top = 28.0   # room for the axis labels
    plot_left = label_width + 8.0
    plot_width = width - plot_left - 16.0
    scale = plot_width / tl.span_s
    step = nice_step(tl.span_s)
    ticks = tuple((round(plot_left + t * scale, 2), tick_label(t))
                  for t in (i * step for i in range(int(tl.span_s / step) + 1)))
    rows = []
    for i, row in enumerate(tl.rows):
        rects = tuple(_rect(row.ne, b, plot_left, scale, min_bar_px, font) for b in row.bars)
        rows.append(RowGeometry(top + i * rh, row.ne, row.status, row.note, rects))
    rows_end = top + len(tl.rows) * rh
    bottom = rows_end + 4.0 if len(tl.rows) > BOTTOM_AXIS_ROWS else None
    height = rows_end + (top if bottom is not None else 8.0)
    window_x = round(plot_left + tl.window_end_s * scale, 2) if tl.window_end_s is not None else None
    return Geometry(width, height, label_width, plot_left, plot_width, top, rh, font, ticks, tuple(rows),
                    bottom, window_x)


def _rect(ne: str, bar: Bar, plot_left: float, scale: float, min_px: float, font: float) -> Rect:
    width = max(bar.duration_s * scale, min_px)
    label = bar.label if bar.kind != "wait" else "operator"
    fits = len(label) * font * 0.62 + 6 <= width
    return Rect(round(plot_left + bar.start_s * scale, 2), round(width, 2), bar.kind, bar.status,
                _title(ne, bar), label if fits else "")


def _title(ne: str, bar: Bar) -> str:
    text = f"{ne} {bar.label}: {bar.status}, {bar.start_s:.1f} s + {bar.duration_s:.1f} s"
    return f"{text} - {bar.detail}" if bar.detail else text

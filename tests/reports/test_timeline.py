"""Timeline placement and Gantt geometry (pure)."""

from __future__ import annotations

import pytest

from changeline.engine.outcomes import NEOutcome, StepOutcome
from changeline.reports.timeline import Timeline, layout, nice_step, row_height, timeline

T0 = 1_800_000_000.0


def ran(ne: str, start: float, durations: list[float], **extra) -> dict:
    steps, t = [], T0 + start
    for i, d in enumerate(durations):
        steps.append(StepOutcome(f"s{i}", "precheck", "done", started_at=t, duration_s=d))
        t += d
    return NEOutcome(ne=ne, ne_type="AMF", campaign_id="c", status="done", steps=steps, started_at=T0 + start,
                     finished_at=t, **extra).to_dict()


def test_steps_are_placed_in_seconds_from_the_campaign_start():
    tl = timeline([ran("amf-2", 10, [2, 3]), ran("amf-1", 4, [1])], started_at=T0)
    assert tl.origin == T0
    assert [r.ne for r in tl.rows] == ["amf-1", "amf-2"]          # by start
    assert [(b.start_s, b.duration_s) for b in tl.rows[1].bars] == [(10, 2), (12, 3)]
    assert tl.span_s == 15


def test_origin_falls_back_to_the_earliest_step():
    tl = timeline([ran("amf-1", 7, [1])])
    assert tl.origin == T0 + 7 and tl.rows[0].bars[0].start_s == 0


def test_operator_wait_and_rollback_follow_the_failed_step():
    out = ran("smf-1", 0, [5, 4])
    out["steps"][1]["status"] = "failed"
    out["decisions"] = [{"step": "s1", "action": "rollback", "by": "operator", "waited_s": 20.0}]
    out["rollback"] = {"ok": True, "undone": [], "verified": {"reason": "restored", "duration_s": 30.0}}
    out["finished_at"] = T0 + 5 + 4 + 20 + 31
    bars = timeline([out]).rows[0].bars
    assert [(b.kind, b.status, b.start_s, b.duration_s) for b in bars] == [
        ("step", "done", 0, 5), ("step", "failed", 5, 4), ("wait", "wait", 9, 20),
        ("rollback", "rollback-ok", 29, 31)]
    assert bars[-1].detail == "restored"


def test_a_failed_rollback_is_marked_with_its_reason():
    out = ran("smf-1", 0, [5])
    out["rollback"] = {"ok": False, "reason": "running 1.3.0, backup was taken on 1.2.0"}
    bar = timeline([out]).rows[0].bars[-1]
    assert (bar.status, bar.detail) == ("rollback-failed", "running 1.3.0, backup was taken on 1.2.0")


def test_nes_that_never_ran_get_a_row_with_their_reason():
    idle = {"ne": "upf-1", "ne_type": "UPF", "status": "deferred", "reason": "window too short"}
    tl = timeline([idle, ran("amf-1", 0, [1])])
    assert [r.ne for r in tl.rows] == ["amf-1", "upf-1"]
    assert tl.rows[1].bars == () and tl.rows[1].note == "deferred: window too short"


def test_steps_without_timing_are_not_drawn():
    out = ran("amf-1", 0, [1, 1])
    out["steps"][0].update(status="skipped", started_at=0.0, duration_s=0.0)
    assert [b.label for b in timeline([out]).rows[0].bars] == ["s1"]


def test_window_end_is_marked_only_inside_the_chart():
    assert timeline([ran("amf-1", 0, [100])], T0, window_end=T0 + 60).window_end_s == 60
    assert timeline([ran("amf-1", 0, [100])], T0, window_end=T0 + 7200).window_end_s is None


@pytest.mark.parametrize("span, step", [(10, 1), (15, 2), (250, 50), (2400, 500), (0.5, 0.05)])
def test_nice_ticks(span, step):
    assert nice_step(span) == pytest.approx(step)


def test_two_hundred_nes_scale_the_height_and_keep_every_label():
    outs = [ran(f"amf-{i}", i * 3.0, [20, 40]) for i in range(200)]
    geo = layout(timeline(outs, T0), width=1200)
    rh, font = row_height(200)
    assert len(geo.rows) == 200 and all(r.ne for r in geo.rows)
    assert font >= 9 and geo.row_height == rh
    assert geo.height >= 200 * rh
    assert geo.bottom is not None                       # a second axis under a long chart
    right = geo.plot_left + geo.plot_width
    for row in geo.rows:
        for rect in row.rects:
            assert geo.plot_left <= rect.x and rect.x + rect.width <= right + 0.01
    assert layout(timeline(outs[:4], T0)).height < geo.height


def test_short_bars_stay_visible_and_labels_only_where_they_fit():
    tl = timeline([ran("amf-1", 0, [0.001, 500])], T0)
    tiny, wide = layout(tl).rows[0].rects
    assert tiny.width >= 1.5 and tiny.label == ""
    assert wide.label == "s1"


def test_timeline_round_trips_through_json_data():
    out = ran("smf-1", 0, [5])
    out["rollback"] = {"ok": True, "verified": {"reason": "ok"}}
    tl = timeline([out], T0, window_end=T0 + 3)
    assert Timeline.from_dict(tl.to_dict()) == tl

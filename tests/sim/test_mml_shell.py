"""The MML personality's pure parts: command parsing, replies, paging."""

from __future__ import annotations

from changeline.devices.sim.mml_shell import (
    BAD_PARAMETER,
    MORE,
    UNKNOWN_COMMAND,
    MmlSession,
    pages,
    parse_command,
    reply,
)


def test_commands_parse_with_quoted_and_bare_values():
    assert parse_command('ins software: image="SMF-1.3.0.img";') == ("INS SOFTWARE", {"IMAGE": "SMF-1.3.0.img"})
    assert parse_command("SET SCREEN: PAGING=OFF;") == ("SET SCREEN", {"PAGING": "OFF"})
    assert parse_command("DSP NE:;") == ("DSP NE", {})
    assert parse_command("FOO BAR:;") == (UNKNOWN_COMMAND, "Unknown command: FOO BAR")
    assert parse_command("INS SOFTWARE:;") == (BAD_PARAMETER, "Missing parameter: IMAGE")
    assert parse_command("DSP NE")[0] == BAD_PARAMETER  # no terminating ';'


def test_a_reply_carries_retcode_and_end_marker():
    lines = reply("smf-1", 7, "DSP KPI:;", 0, "Operation succeeded.", ["KPIs"], 3)
    assert lines[1:4] == ["O&M    #7", "%%DSP KPI:;%%", "RETCODE = 0  Operation succeeded."]
    assert lines[-3:] == ["(Number of results = 3)", "", "---    END"]
    assert reply("smf-1", 8, "X", 2001, "Unknown command: X")[-1] == "---    END"


class _Ne:
    name = "smf-1"


def test_paging_shows_a_page_and_waits_q_breaks_off():
    session = MmlSession(_Ne())
    lines = [f"line {i}" for i in range(45)]
    assert [len(p) for p in pages(lines)] == [20, 20, 5]
    first = session.page_out(lines)
    assert first.endswith(MORE) and "line 19" in first and "line 20" not in first
    assert session.next_page(" ").endswith(MORE)
    assert session.next_page(" ").endswith(session.prompt) and not session.pending
    session.page_out(lines)
    assert session.next_page("q") == "\r\n" + session.prompt and not session.pending
    session.paging = False
    assert session.page_out(lines).endswith(session.prompt)


def test_a_simulator_bug_is_an_internal_error_reply_not_a_dead_session():
    import asyncio

    class Broken(_Ne):
        def status(self):
            raise ZeroDivisionError("bug")

    lines, leaving = asyncio.run(MmlSession(Broken()).execute("DSP NE:;"))
    assert "RETCODE = 1  Internal error" in lines and lines[-1] == "---    END" and not leaving

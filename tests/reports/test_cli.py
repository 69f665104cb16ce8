"""`changeline report` as the lead mounts it: a typer command function."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from changeline.errors import InputError
from changeline.reports.cli import report
from tests.reports.sample_run import CAMPAIGN


def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("report")(report)

    @cli.callback()
    def main() -> None:
        """Mount like changeline.cli does: a group with sub-commands."""

    return cli


def test_report_prints_the_paths(sample, home, tmp_path):
    result = CliRunner().invoke(app(), ["report", CAMPAIGN, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert f"HTML report:    {tmp_path / 'r' / 'report.html'}" in result.output
    assert f"JSON report:    {tmp_path / 'r' / 'report.json'}" in result.output
    assert f"Evidence packs: {tmp_path / 'r' / 'evidence'}" in result.output


def test_report_defaults_to_the_run_directory(sample, home):
    result = CliRunner().invoke(app(), ["report", CAMPAIGN])
    assert result.exit_code == 0, result.output
    assert str(home / "runs" / CAMPAIGN / "report" / "report.html") in result.output


def test_unknown_campaign_is_an_input_error(home):
    result = CliRunner().invoke(app(), ["report", "c-missing"])
    assert isinstance(result.exception, InputError)
    assert "c-missing" in str(result.exception) and "journal.sqlite" in str(result.exception)


def test_callable_as_a_plain_function(sample, home, capsys):
    report(CAMPAIGN)
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(InputError):
        report("c-missing")

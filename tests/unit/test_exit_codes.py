"""The documented exit codes, from the one place every entry point turns outcomes into them."""

import pytest
import typer

from changeline.cli import run_app
from changeline.errors import ChangelineError, DeviceError, InputError, Problem
from changeline.models.library import LibraryError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _raise(exc):
    raise exc


OUTCOMES = {
    "ok": (lambda: None, 0),
    "not-at-target": (lambda: _raise(typer.Exit(1)), 1),
    "bad-input": (lambda: _raise(InputError(Problem("f.yaml", 3, 1, "hosts.a.port", "must be a port"))), 2),
    "unknown-model": (lambda: _raise(LibraryError("no model named 'x' is published")), 2),
    "refused": (lambda: _raise(ChangelineError("a simulator already runs")), 3),
    "device": (lambda: _raise(DeviceError("unreachable", host="amf-1")), 3),
    "bug": (lambda: _raise(RuntimeError("boom")), 70),
    "interrupted": (lambda: _raise(KeyboardInterrupt()), 130),
}
for _name, (_body, _code) in OUTCOMES.items():
    app.command(_name)(_body)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_each_outcome_has_its_exit_code(name, capsys):
    assert run_app(app, [name]) == OUTCOMES[name][1]
    err = capsys.readouterr().err
    assert ("Traceback" in err) == (name == "bug")  # only a bug shows one


def test_usage_errors_are_bad_input_and_never_repeat_a_credential(capsys):
    assert run_app(app, ["Bearer abcdefghijklmnopqrstuvwxyz"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "abcdefghijklmnopqrstuvwxyz" not in err

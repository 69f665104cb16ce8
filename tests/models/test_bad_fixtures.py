"""Malformed models: every expected problem, exactly, at its line and column; nothing else."""

from __future__ import annotations

import pytest

from changeline.errors import InputError
from changeline.models.compile import load_model
from tests.models.helpers import FIXTURES, run_cli

BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def expected(path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("# expect: "):
            break
        out.append(line.removeprefix("# expect: "))
    return out


def shown(err: InputError) -> list[str]:
    return [str(p).removeprefix(f"{p.file}:") for p in err.problems]


def test_there_are_enough_bad_fixtures():
    assert len(BAD) >= 25
    assert all(expected(p) for p in BAD), "every fixture names its expected problems"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_model_reports_exactly_the_expected_problems(path):
    with pytest.raises(InputError) as caught:
        load_model(path)
    assert shown(caught.value) == expected(path)
    assert all(p.file == str(path) for p in caught.value.problems)


def test_cli_validate_prints_every_problem_of_every_file_and_exits_2():
    files = [FIXTURES / "bad" / n for n in ("unknown-atom.yaml", "confirm-not-later.yaml", "yaml-syntax.yaml",
                                             "upgrade-no-billing-gate.yaml")]
    result = run_cli("models", "validate", *map(str, files))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    for file in files:
        for problem in expected(file):
            assert f"{file}:{problem}" in lines
    assert lines[-1] == f"{sum(len(expected(f)) for f in files)} problem(s) found"


def test_cli_validate_a_missing_file():
    result = run_cli("models", "validate", "no/such/model.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "no/such/model.yaml: file not found"
    assert "Traceback" not in result.stderr


def test_python_m_changeline_models_runs_the_same_commands():
    result = run_cli("models", "validate", str(FIXTURES / "bad" / "unknown-atom.yaml"), module=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected(FIXTURES / "bad" / "unknown-atom.yaml")[0] in result.stderr

"""One argument pipeline: lint, compile and the runner prepare a step's arguments the same way.

The same `with` inputs - templates over parameters, a null inside a list and inside a nested
mapping, arguments left to the atom's defaults, a value of the wrong type - must come out as the
same arguments, or as the same error at the same model field, whether lint (at load), compile
(per NE) or the runner (just before the atom runs) prepares them.
"""

from __future__ import annotations

import pytest

from changeline.atoms import registry
from changeline.catalogue import builtin_catalogue
from changeline.engine import runner
from changeline.errors import InputError
from changeline.models import templates
from changeline.models.compile import compile_for_host
from changeline.models.lint import _Lint
from changeline.models.model import build_model
from changeline.models.validate import load_model_text
from changeline.yamlsource import load_yaml_text
from tests.models.helpers import MODELINE, host

MODEL = MODELINE + """apiVersion: changeline/v1
kind: ChangeModel
metadata: {name: args-test, version: 1.0.0, description: d, owner: o}
spec:
  target: {neTypes: [SMF]}
  parameters:
    drop: {type: number, default: 5, description: d}
    cpu_drop: {type: number, default: null, description: left out when not given}
    extra: {type: string, default: null, description: left out when not given}
    pct: {type: integer, default: 90, description: d}
  stages:
    - name: s
      steps:
        - name: kpis
          atom: kpi_check
          with:
            max_drop_pct: {pdu-session-success-rate: "{{ params.drop }}", cpu: "{{ params.cpu_drop }}"}
            minimums: {sessions: 1}
        - name: dial
          atom: dial_test
          with:
            scenarios: ["{{ params.extra }}", pdu-session]
            min_success_pct: PCT
"""

# Templates rendered, the nulls gone from the nested mapping and the list, defaults filled in.
EXPECTED = {
    "kpis": {"max_drop_pct": {"pdu-session-success-rate": 5}, "minimums": {"sessions": 1}, "settle_s": 0},
    "dial": {"scenarios": ["pdu-session"], "min_success_pct": 90, "record_baseline": False},
}
SMF = host("smf-1", "SMF")


def lint_prepared(text: str) -> dict[str, dict]:
    """What lint prepared for each step (for its stand-in SMF), as its catalogue checks see it."""
    raw, source = load_yaml_text(text, "m.yaml")
    check = _Lint(raw, source, registry(), builtin_catalogue())
    assert check.run() == []
    return {step.name: check.rendered[step.index]["SMF"].args for step in check.steps}


def unlinted(text: str):
    """The model as compile sees it when lint did not stop it first (a compile-time value)."""
    raw, source = load_yaml_text(text, "m.yaml")
    return build_model(raw, source, "0" * 64)


def test_lint_compile_and_runner_prepare_the_same_arguments():
    text = MODEL.replace("PCT", '"{{ params.pct }}"')
    plan = compile_for_host(load_model_text(text, "m.yaml"), SMF)
    compiled = {s.name: s.args for s in plan.steps}
    assert compiled == EXPECTED
    assert lint_prepared(text) == EXPECTED
    for step in plan.steps:
        assert runner.check_args(step.atom, step.args) == step.args
    # A null reaching the runner inside a list or a nested mapping is left out there too.
    assert runner.check_args("dial_test", {"scenarios": [templates.OMIT, "pdu-session"],
                                           "min_success_pct": 90}) == EXPECTED["dial"]
    assert runner.check_args("kpi_check", {"max_drop_pct": {"pdu-session-success-rate": 5, "cpu": templates.OMIT},
                                           "minimums": {"sessions": 1}}) == EXPECTED["kpis"]


def test_a_given_parameter_reaches_the_list_and_the_mapping():
    text = MODEL.replace("PCT", '"{{ params.pct }}"')
    plan = compile_for_host(load_model_text(text, "m.yaml"), SMF, {"extra": "pdu-session", "cpu_drop": 2})
    assert plan.step("dial").args["scenarios"] == ["pdu-session", "pdu-session"]
    assert plan.step("kpis").args["max_drop_pct"] == {"pdu-session-success-rate": 5, "cpu": 2}


@pytest.mark.parametrize(("value", "lint_suffix"), [
    ("high", ""),                                                                   # written wrong
    ('"{{ params.word }}"', " (rendered from '{{ params.word }}')"),                # rendered wrong
])
def test_a_bad_type_is_the_same_error_at_lint_compile_and_run_time(value, lint_suffix):
    text = MODEL.replace("PCT", value).replace("    pct:", "    word: {type: string, default: high, description: d}\n"
                                               "    pct:")
    with pytest.raises(InputError) as at_lint:
        load_model_text(text, "m.yaml")
    with pytest.raises(InputError) as at_compile:
        compile_for_host(unlinted(text), SMF)
    with pytest.raises(InputError) as at_run:
        runner.check_args("dial_test", {"scenarios": ["pdu-session"], "min_success_pct": "high"})
    message = "must be a number, got 'high'"
    field = "spec.stages[0].steps[1].with.min_success_pct"
    assert [str(p) for p in at_lint.value.problems] == [f"m.yaml:25:13: {field}: {message}{lint_suffix}"]
    assert [str(p) for p in at_compile.value.problems] == [f"m.yaml:25:13: {field}: smf-1: {message}"]
    assert [str(p) for p in at_run.value.problems] == [f"<args>: dial_test.min_success_pct: {message}"]


def test_a_problem_after_a_dropped_item_is_located_where_it_was_written():
    text = MODEL.replace("PCT", "90").replace("pdu-session]", "pdu-session, nope]")
    problems = [str(p) for p in pytest.raises(InputError, load_model_text, text, "m.yaml").value.problems]
    # The null at index 0 is gone from what the atom gets; the bad name is still the model's [2].
    assert problems == ["m.yaml:23:60: spec.stages[0].steps[1].with.scenarios[2]: SMF has no dial-test scenario "
                        "'nope' (its scenarios: pdu-session)"]
    with pytest.raises(InputError) as at_compile:
        compile_for_host(unlinted(text.replace("nope", '"{{ 7 }}"')), SMF)
    assert [str(p) for p in at_compile.value.problems] == [
        "m.yaml:23:60: spec.stages[0].steps[1].with.scenarios[2]: smf-1: must be a string, got 7 (a number)"]


def test_a_model_file_is_validated_once_per_process_under_any_name(tmp_path, monkeypatch):
    from changeline.models.validate import load_model

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.yaml"
    path.write_text(MODEL.replace("PCT", "90"))
    first = load_model("m.yaml")
    again = load_model(path)   # the campaign flow's absolute path: the same validated model, named as asked
    assert (first.file, again.file, again.source.file) == ("m.yaml", str(path), str(path))
    assert again.stages is first.stages and load_model("m.yaml") is first
    path.write_text(MODEL.replace("PCT", "high"))   # edited: validated anew
    with pytest.raises(InputError, match="min_success_pct: must be a number, got 'high'"):
        load_model("m.yaml")

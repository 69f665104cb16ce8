"""Lint rules that need more than a fixture: fake atoms, secret detection, several problems at once."""

from __future__ import annotations

import types

import pytest

from changeline.atoms import registry
from changeline.engine.atom import AtomSpec
from changeline.errors import InputError
from changeline.models.lint import secret_key, secret_value
from changeline.models.validate import load_model_text
from tests.models.helpers import MODELINE

BASE = MODELINE + """apiVersion: changeline/v1
kind: ChangeModel
metadata: {name: lint-test, version: 1.0.0, description: d, owner: o}
spec:
  target: {neTypes: [AMF]}
  stages:
    - name: s
      steps:
        - {name: backup, atom: backup}
"""


def problems(text: str, **kwargs) -> list[str]:
    try:
        load_model_text(text, "m.yaml", **kwargs)
    except InputError as err:
        return [f"{p.line}:{p.column}: {p.field}: {p.message}" for p in err.problems]
    return []


def fake_atom(name: str, *, undo: bool, undo_note: str = "") -> types.ModuleType:
    module = types.ModuleType(f"fake.{name}")
    module.SPEC = AtomSpec(name=name, summary="fake", args_schema={"type": "object", "properties": {}},
                           mutating=True, undo_note=undo_note)
    module.run = lambda ctx: None
    if undo:
        module.undo = lambda ctx, record: None
    return module


@pytest.mark.parametrize(("undo", "note", "complaint"), [(False, "", True), (True, "", False),
                                                         (False, "inert until activated", False)])
def test_a_mutating_step_needs_an_undo_or_a_reason(undo, note, complaint):
    reg = registry() | {"flip_switch": fake_atom("flip_switch", undo=undo, undo_note=note)}
    text = BASE + "        - {name: flip, atom: flip_switch}\n"
    found = problems(text, registry=reg)
    expected = ("11:24: spec.stages[0].steps[1].atom: flip_switch changes the NE but has no undo, no undo_note "
                "saying why none is needed, and rollback strategy 'journal' does not restore it")
    assert found == ([expected] if complaint else [])


def test_every_problem_is_reported_at_once():
    text = BASE.replace("[AMF]", "[AMF, XYZ]") + (
        "        - {name: backup, atom: dial_test, with: {scenarios: [nope]}}\n"
        "        - {name: drain, atom: drain_traffic}\n"
        "  parameters:\n    api_token: {type: string, default: x, description: d}\n")
    found = problems(text)
    assert found == [
        "6:27: spec.target.neTypes[1]: unknown NE type 'XYZ' (known: AMF, NRF, P-CSCF, S-CSCF, SMF, UPF)",
        "11:12: spec.stages[0].steps[1].name: duplicate step name 'backup' (first used on line 10)",
        "11:62: spec.stages[0].steps[1].with.scenarios[0]: AMF has no dial-test scenario 'nope' "
        "(its scenarios: ue-registration)",
        "12:25: spec.stages[0].steps[2].atom: drain_traffic needs a later restore_traffic step "
        "(else the NE stays out of its pool)",
        "14:5: spec.parameters.api_token: 'api_token' looks like a credential: models are shared and committed; "
        "credentials come from the inventory (password_env, password_secret) at run time",
    ]


def test_values_from_inventory_facts_are_checked_at_compile_not_lint():
    text = BASE + "        - {name: dial, atom: dial_test, with: {scenarios: \"{{ host.data.scenarios }}\"}}\n"
    assert problems(text) == []


def test_required_parameters_and_null_defaults():
    text = BASE.replace("  stages:", "  parameters:\n    wait: {type: number, description: d}\n"
                        "    pct: {type: number, default: null, description: d}\n  stages:") + \
        "        - {name: bill, atom: kpi_check, with: {settle_s: \"{{ params.wait }}\", minimums: {cpu: \"{{ params.pct }}\"}}}\n"
    assert problems(text) == []


@pytest.mark.parametrize("key", ["password", "adminPassword", "db_passwd", "api_key", "apiKey", "private_key",
                                 "privateKey", "client-secret", "token", "AccessKey", "credentials"])
def test_secret_keys(key):
    assert secret_key(key)


@pytest.mark.parametrize("key", ["owner", "description", "passthrough", "tokenizer_name", "keyring_path",
                                 "max_sessions", "confirm_timeout_s", "image_repo", "secretary"])
def test_ordinary_keys(key):
    assert not secret_key(key)


@pytest.mark.parametrize("value", [
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    "sftp://ops:hunter22@repo.example/images",
    "<ne><snmp><community>public</community></snmp></ne>",
    "password=Hunter2!x",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",
    "Zx8Qp2Lr9Vt4Kw7Ny3Bm6Hc1Gd5Fs0Ja",
])
def test_secret_values(value):
    assert secret_value(value)


@pytest.mark.parametrize("value", [
    "Directory of the software images; the password comes from password_env",
    ".changeline/images/AMF-1.3.0.img",
    "sip:scscf-c.ims.mnc001.mcc460.3gppnetwork.org",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "{{ params.image_repo }}/{{ target.ne_type }}-{{ target.to_version }}.img",
    "urn:changeline:params:xml:ns:yang:changeline-ne",
])
def test_ordinary_values(value):
    assert secret_value(value) is None


def test_a_step_timeout_shorter_than_its_estimate_is_flagged():
    # backup's atom estimate is its SPEC.estimate_s; an explicit `estimate` overrides it
    short = BASE.replace("{name: backup, atom: backup}", "{name: backup, atom: backup, timeout: 1}")
    assert any("spec.stages[0].steps[0].timeout: timeout 1 s is shorter than the step's estimated" in p
               and p.startswith("10:") for p in problems(short))
    fine = BASE.replace("{name: backup, atom: backup}", "{name: backup, atom: backup, timeout: 1, estimate: 1}")
    assert problems(fine) == []

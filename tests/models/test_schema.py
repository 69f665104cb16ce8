"""The generated JSON Schema: up to date, valid 2020-12, usable by editors on real models."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from changeline.atoms import registry
from changeline.models.schema import ATOM_SCHEMA_DIR, MODEL_SCHEMA_FILE, build_model_schema, stale_schemas
from tests.models.helpers import library_files


def test_committed_schema_files_are_up_to_date():
    assert stale_schemas() == [], "run: python -m changeline.models.schema"


def test_schemas_are_valid_2020_12_and_cover_every_atom():
    jsonschema.Draft202012Validator.check_schema(json.loads(MODEL_SCHEMA_FILE.read_text()))
    atoms = registry()
    assert sorted(p.stem for p in ATOM_SCHEMA_DIR.glob("*.json")) == sorted(atoms)
    for name, module in atoms.items():
        schema = json.loads((ATOM_SCHEMA_DIR / f"{name}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"] == module.SPEC.args_schema.get("properties", {})
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.fixture(scope="module")
def editor():
    """What an editor does: plain jsonschema on the YAML data, without changeline's lint."""
    return jsonschema.Draft202012Validator(json.loads(MODEL_SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("path", library_files(), ids=lambda p: p.name)
def test_editor_schema_accepts_the_library(editor, path):
    assert list(editor.iter_errors(yaml.safe_load(path.read_text()))) == []


def _model(step: dict) -> dict:
    return {"apiVersion": "changeline/v1", "kind": "ChangeModel",
            "metadata": {"name": "m", "version": "1.0.0", "description": "d", "owner": "o"},
            "spec": {"target": {"neTypes": ["AMF"]}, "stages": [{"name": "s", "steps": [step]}]}}


def test_editor_schema_checks_step_arguments_per_atom(editor):
    good = _model({"name": "c", "atom": "config_change", "with": {"config": "<ne/>", "confirm_timeout_s": 60}})
    assert not list(editor.iter_errors(good))
    templated = _model({"name": "c", "atom": "config_change",
                        "with": {"config": "<ne/>", "confirm_timeout_s": "{{ params.t }}"}})
    assert not list(editor.iter_errors(templated))
    wrong = _model({"name": "c", "atom": "config_change", "with": {"config": "<ne/>", "confirm_timeout_s": "soon"}})
    errors = list(editor.iter_errors(wrong))
    assert [list(e.absolute_path)[-1] for e in errors] == ["confirm_timeout_s"]
    unknown = _model({"name": "d", "atom": "dial_test", "with": {"scenarios": ["x"], "retry": 2}})
    assert any(e.validator == "additionalProperties" for e in editor.iter_errors(unknown))


def test_upgrade_models_need_software_and_versions_in_the_schema(editor):
    model = _model({"name": "p", "atom": "precheck"}) | {"kind": "UpgradeModel"}
    messages = sorted(e.message for e in editor.iter_errors(model))
    assert messages == ["'fromVersions' is a required property", "'software' is a required property",
                        "'toVersion' is a required property"]


def test_generation_follows_the_registry():
    fake = {name: module for name, module in registry().items() if name in ("backup", "precheck")}
    schema = build_model_schema(fake)
    assert schema["$defs"]["step"]["properties"]["atom"]["enum"] == ["backup", "precheck"]
    assert {"args_backup", "args_precheck"} <= set(schema["$defs"])

"""The shipped models: all valid, all published unchanged, one upgrade per NE type."""

from __future__ import annotations

import hashlib

import pytest

from changeline.catalogue import builtin_catalogue
from changeline.models.compile import compile_for_host, load_model
from changeline.models.library import Library, canonical_path
from tests.models.helpers import LIBRARY, example_params, host, library_files


@pytest.mark.parametrize("path", library_files(), ids=lambda p: p.name)
def test_library_model_validates_and_sits_at_its_canonical_path(path):
    model = load_model(path)
    assert path.relative_to(LIBRARY).as_posix() == str(canonical_path(model))
    assert path.read_text().startswith("# yaml-language-server: $schema=../../../schema/model.schema.json\n")


@pytest.mark.parametrize("path", library_files(), ids=lambda p: p.name)
def test_library_model_compiles_for_every_targeted_type(path):
    model = load_model(path)
    for ne_type in model.ne_types:
        version = (model.from_versions or model.versions or ("1.2.0",))[0]
        plan = compile_for_host(model, host(f"{ne_type.lower()}-1", ne_type, version, pool="p1"),
                                example_params(model))
        assert plan.steps and plan.total_estimate_s > 0 and plan.rollback is not None


def test_every_library_file_is_published_with_its_exact_content():
    lib = Library()
    entries = lib.entries()
    by_path = {e.path: e for e in entries if lib.status(e, entries) == "ok"}
    for path in library_files():
        rel = path.relative_to(LIBRARY).as_posix()
        assert rel in by_path, f"{rel} is not published"
        assert by_path[rel].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(lib.status(e, entries) in ("ok", "superseded") for e in entries)


def test_an_upgrade_model_for_every_ne_type():
    lib = Library()
    for ne_type in builtin_catalogue():
        entry = lib.lookup(ne_type, "1.2.0", "1.3.0")
        model = lib.load(entry)
        atoms = [s.atom for s in model.steps]
        chain = ["precheck", "backup", "dial_test", "transfer_software", "install_software", "drain_traffic",
                 "activate_software", "restore_traffic", "dial_test"]
        if builtin_catalogue()[ne_type].writes_cdrs:
            chain.append("billing_check")
        chain += ["kpi_check", "validate_upgrade"]
        assert atoms == chain, ne_type
        after_restore = [s for s in model.steps][atoms.index("restore_traffic") + 1:]
        assert after_restore and all(s.gate for s in after_restore)
        assert not any(s.gate for s in model.steps[:atoms.index("restore_traffic") + 1])


def test_the_change_models_are_shipped():
    lib = Library()
    names = {e.name for e in lib.changes()}
    assert {"amf-t3512-timer", "smf-add-dnn", "pcscf-add-peer", "upf-capacity-scaling", "ne-rollback"} <= names
    rollback = lib.load("ne-rollback")
    assert [s.atom for s in rollback.steps] == ["rollback"]
    timer = lib.load("amf-t3512-timer")
    change = next(s for s in timer.steps if s.atom == "config_change")
    assert "<name>t3512</name>" in change.args["config"] and change.args["confirm"] == "later"
    capacity = lib.load("upf-capacity-scaling")
    assert "<max-sessions>" in next(s for s in capacity.steps if s.atom == "config_change").args["config"]

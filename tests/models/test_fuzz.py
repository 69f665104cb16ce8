"""Fuzzing: any YAML, and any mutation of a valid model, ends in a Model or an InputError.

A model that still validates after a mutation must also compile (or raise InputError)
for a host of its type: nothing else may escape, in particular no traceback.
"""

from __future__ import annotations

import copy
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from changeline.errors import InputError
from changeline.models.compile import compile_for_host, plan_campaign
from changeline.models.validate import load_model_text
from tests.models.helpers import MODELINE, host, library_files

SEEDS = {p.name: yaml.safe_load(p.read_text()) for p in library_files()}
FUZZ = settings(max_examples=int(os.environ.get("CHANGELINE_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["AMF", "SMF", "1.2.0", "1.3.0", "{{ params.x }}", "{{ target.to_version }}", "{{", "}}",
                     "{% for %}", "dial_test", "config_change", "later", "rollback", "<ne/>", "host.pool",
                     "{{ host.data.pool }}", "{{ ''.__class__ }}", "canary", "-1", "password"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4)),
    max_leaves=20)


def check(text: str) -> None:
    try:
        model = load_model_text(text, "fuzz.yaml")
    except InputError as err:
        assert err.problems and all(p.message for p in err.problems)
        assert all(p.file == "fuzz.yaml" and p.line >= 0 and p.column >= 0 for p in err.problems)
        return
    for ne_type in model.ne_types:
        version = (model.from_versions or model.versions or ("1.2.0",))[0]
        hosts = [host(f"ne-{i}", ne_type, version, pool="p" if i % 2 else None) for i in range(3)]
        try:
            compile_for_host(model, hosts[0])
            plan_campaign(model, hosts)
        except InputError:
            pass


@FUZZ
@given(values)
def test_any_yaml_structure(data):
    check(MODELINE + yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text):
    check(text)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, path + (i,))


def _parent(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    return doc


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_mutations_of_valid_models(seed, data):
    doc = copy.deepcopy(SEEDS[seed])
    for _ in range(data.draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        action = data.draw(st.sampled_from(["delete", "replace", "duplicate", "rename", "swap"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = data.draw(values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif action == "swap" and isinstance(parent, list) and len(parent) > 1:
            other = data.draw(st.integers(0, len(parent) - 1))
            parent[key], parent[other] = parent[other], parent[key]
    check(MODELINE + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@FUZZ
@given(st.sampled_from([p for p in library_files()]), st.data())
def test_text_edits_of_valid_models(path, data):
    text = path.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        else:
            text = text[:at] + data.draw(st.sampled_from(["\n", " ", ":", "-", "{{", "'", "[", "  x: 1\n", "\t"])) + text[at:]
    check(text)

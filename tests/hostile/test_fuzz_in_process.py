"""Hostile input in volume, in this process: the loaders and the argument layer the commands use.

Each example must end in a result or an InputError whose every problem names the file (or the
command line) and a line or a field, never repeats the planted secret, and stays within the
CPU budget; the whole test runs with its address space capped at 512 MiB above what the
process held before (a bomb that allocates fails the test with MemoryError).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from changeline.devices.inventory import load_inventory
from changeline.devices.sim.cli import check_up_arguments
from changeline.devices.sim.host import inventory as sim_inventory
from changeline.devices.sim.profiles import builtin_profiles
from changeline.devices.sim.topology import load_topology
from changeline.errors import InputError
from changeline.flows.cli import check_run_arguments
from changeline.models.validate import load_model_text
from tests.hostile import inputs as I
from tests.hostile.harness import MEMORY_LIMIT, judge_in_process, secret_token

EXAMPLES = int(os.environ.get("CHANGELINE_HOSTILE_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECRET = secret_token()
PROFILES = builtin_profiles()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from([SECRET, "../../x", "$(reboot)", "a;b", "-oProxyCommand=x", "{{ 99 ** 64 ** 64 ** 64 }}",
                     "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
                     "1.2.0", "AMF", "830", "\u202e", "x" * 5000]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
# YAML-level attacks spliced into a document's text.
snippets = st.sampled_from([
    "&a [*a]", "*undefined", "!!int abc", "!!bool maybe", "!!timestamp 2026-13-45", "!!python/object:os.system {}",
    "<<: 3", "<<: *x", "[[[[[[[[", "{a: 1, a: 2}", "\t", "\x00", "\ufeff", ": :", "? [a]\n: b", "%YAML 1.1\n---",
    "--- \n...", "'unterminated", "\"\\xZZ\"", "&x {a: 1}", "key:", "- - - -", I.ALIAS_BOMB, "#" * 1000,
    SECRET, "0x1F", "1e999", ".nan", "-.inf", "~",
])


@pytest.fixture(autouse=True, scope="module")
def capped_memory():
    """512 MiB of address space more than the process holds now, for every example here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        held = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (held + MEMORY_LIMIT, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


def _mutate(doc, data):
    """Replace, delete or add at a random place of a parsed document."""
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(values)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(values)
    else:
        parent.append(data.draw(values))
    return doc


def _dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _splice(text: str, data) -> str:
    lines = text.splitlines(keepends=True)
    at = data.draw(st.integers(0, len(lines)))
    column = data.draw(st.integers(0, 12))
    line = lines[at] if at < len(lines) else ""
    return "".join(lines[:at]) + line[:column] + data.draw(snippets) + line[column:] + "".join(lines[at + 1:])


def _check(case: str, call, file: str) -> None:
    """Run one load; judge its problems (file named, located, no secret) and its CPU time."""
    start = time.process_time()
    try:
        call()
        messages = ""
    except InputError as err:
        assert err.problems, case
        wrong_file = [str(p) for p in err.problems if p.file not in (file, "<command line>")]
        assert not wrong_file, f"{case}: problems of another file: {wrong_file[:3]}"
        unlocated = [str(p) for p in err.problems if not (p.line or p.field)]
        assert not unlocated, f"{case}: problems without line or field: {unlocated[:3]}"
        messages = "\n".join(str(p) for p in err.problems)
    judge_in_process(case, time.process_time() - start, messages, secret=SECRET)


MODEL_DOCS = [yaml.safe_load(p.read_text()) for p in I.LIBRARY_MODELS]
MODELINE = "# yaml-language-server: $schema=../schema/model.schema.json\n"


@FUZZ
@given(data=st.data())
def test_model_mutations(data):
    doc = _mutate(yaml.safe_load(_dump(data.draw(st.sampled_from(MODEL_DOCS)))), data)
    text = MODELINE + _dump(doc)
    _check("model mutation", lambda: load_model_text(text, "m.yaml"), "m.yaml")


@FUZZ
@given(data=st.data())
def test_model_text_splices(data):
    text = _splice(data.draw(st.sampled_from(I.LIBRARY_MODELS)).read_text(), data)
    _check("model splice", lambda: load_model_text(text, "m.yaml"), "m.yaml")


INVENTORY_DOC = yaml.safe_load(I.good_inventory())


@FUZZ
@given(data=st.data())
def test_inventory_mutations_and_splices(tmp_path_factory, data):
    text = _dump(_mutate(yaml.safe_load(_dump(INVENTORY_DOC)), data))
    if data.draw(st.booleans()):
        text = _splice(text, data)
    path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
    path.write_text(text)
    _check("inventory", lambda: load_inventory(path), str(path))


TOPOLOGY_DOC = {"speed": 0.01, "control": "127.0.0.1:0", "address_base": "127.0.250.1",
                "ports": {"netconf": 830, "ssh": 22},
                "pools": [{"name": "amf-pool-1", "type": "AMF", "calls_per_second": 20}],
                "nes": [{"name": "amf-1", "type": "AMF", "version": "1.2.0", "pool": "amf-pool-1"},
                        {"name": "smf-1", "type": "SMF", "version": "1.2.0",
                         "faults": [{"kind": "dial-test-fail-after-upgrade"}]}]}


@FUZZ
@given(data=st.data())
def test_topology_mutations_and_splices(tmp_path_factory, data):
    text = _dump(_mutate(yaml.safe_load(_dump(TOPOLOGY_DOC)), data))
    if data.draw(st.booleans()):
        text = _splice(text, data)
    folder = tmp_path_factory.mktemp("topo")
    path = folder / "topology.yaml"
    path.write_text(text)
    loaded = []
    _check("topology", lambda: loaded.append(load_topology(path, PROFILES)), str(path))
    if loaded:  # a topology the simulator accepts writes an inventory changeline's loader accepts
        (folder / "inventory.yaml").write_text(yaml.safe_dump(sim_inventory(loaded[0]), sort_keys=False))
        load_inventory(folder / "inventory.yaml")


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
words = st.one_of(st.none(), st.text(max_size=12), st.sampled_from([SECRET, "../../x", "rollback", "ne-change/worker"]))


@FUZZ
@given(window=numbers, end=words, concurrency=st.one_of(st.none(), st.integers(-5, 5)),
       pause=st.integers(-10, 10), campaign=st.one_of(st.just(""), words), anomaly=words, workers=words,
       params=st.lists(st.one_of(st.text(max_size=12), st.just(SECRET)), max_size=3))
def test_run_arguments(tmp_path_factory, window, end, concurrency, pause, campaign, anomaly, workers, params):
    def call():
        check_run_arguments(models=[str(I.GOOD_MODEL)], inventory=str(I.GOOD_MODEL), campaign_id=campaign or "",
                            param=params, on_anomaly=anomaly, window_minutes=window, window_end=end,
                            concurrency=concurrency, pause_timeout=pause, ne_deployment=workers,
                            now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    _check("run arguments", call, "<command line>")


@FUZZ
@given(count=st.one_of(st.none(), st.integers(-5, 10**9)), speed=numbers, bind=words, base=st.text(max_size=16),
       netconf=st.integers(-5, 70000), ssh=st.integers(-5, 70000), under_file=st.booleans())
def test_sim_up_arguments(tmp_path_factory, count, speed, bind, base, netconf, ssh, under_file):
    root = tmp_path_factory.mktemp("sim")
    (root / "file").write_text("")
    state = root / "file" / "state" if under_file else root / "state"

    def call():
        check_up_arguments(topology=None, count=count, state_dir=state, speed=speed, bind=bind, address_base=base,
                           netconf_port=netconf, ssh_port=ssh)
    _check("sim up arguments", call, "<command line>")
    assert not state.exists()  # checking starts nothing


ARGV = st.lists(st.one_of(st.sampled_from(["run", "plan", "rollback", "resume", "report", "models",
                                           "validate", "--window", "-c", "--campaign-id", "-p", "-i", "-t",
                                           "--count", "--speed", "--state-dir", "--no-device", "nan", "-1", "0",
                                           "../../x", SECRET, str(I.GOOD_MODEL)]),
                          st.text(max_size=10)), max_size=8)


@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(argv=ARGV)
def test_command_lines_in_process(tmp_path_factory, argv):
    """Random command lines through main(): an exit code from the documented set, no traceback.
    Nothing can start: no password variable the inventories name is set, no server answers."""
    from changeline.cli import main

    # These would start real things (a simulator, a server, the demo) if their arguments were good.
    assume(not {"sim", "serve", "demo"} & set(argv))
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("CHANGELINE_HOME", "PREFECT_API_URL")}
    os.environ.update({"CHANGELINE_HOME": str(home), "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    out, err = io.StringIO(), io.StringIO()
    start = time.process_time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = out.getvalue() + err.getvalue()
    assert code in (0, 2, 3), f"{argv}: exit code {code}\n{text[-2000:]}"
    judge_in_process(f"argv {argv}", time.process_time() - start, text, secret=SECRET)
    assert not any(Path(home).parent.glob("x")), "a file escaped CHANGELINE_HOME"


@pytest.mark.parametrize("name", ["x" * 128, "x" * 129, "a.b_c-D9", "-x", ".x", "..", "a/b", "a b"])
def test_ne_names_the_simulator_accepts_the_inventory_accepts(tmp_path, name):
    doc = {**TOPOLOGY_DOC, "nes": [{"name": name, "type": "AMF", "version": "1.2.0"}]}
    (tmp_path / "topology.yaml").write_text(_dump(doc))
    try:
        topology = load_topology(tmp_path / "topology.yaml", PROFILES)
    except InputError as err:
        assert "nes[0].name" in str(err)
        return
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(sim_inventory(topology), sort_keys=False))
    assert name in load_inventory(tmp_path / "inventory.yaml").hosts

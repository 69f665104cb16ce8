"""Hostile input through the real `changeline` command, one process per case.

Each case writes its files into a fresh sandbox, runs the command with 512 MiB of address
space, and must exit with the documented code (2: bad input, nothing started), name the file
and field, print no traceback, echo no secret, write nothing outside CHANGELINE_HOME and stay
within the CPU budget (harness.py). The last test draws a sample of random mutations with
hypothesis through the same path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import inputs as I
from tests.hostile.harness import Baseline, Sandbox, Verdict, judge, secret_token

SECRET = secret_token()
FIXTURE_INVENTORY = "inventory.yaml"


def _plan(box: Sandbox, model: Path, inventory: Path | None = None, *extra: str) -> list[str]:
    inventory = inventory or box.write(FIXTURE_INVENTORY, I.good_inventory())
    return ["plan", str(model), "-i", str(inventory), "-t", "all", "--no-device", *extra]


def _run(box: Sandbox, *extra: str, model: Path | None = None, inventory: Path | None = None) -> list[str]:
    model = model or box.write("model.yaml", I.GOOD_MODEL.read_text())
    inventory = inventory or box.write(FIXTURE_INVENTORY, I.good_inventory())
    return ["run", str(model), "-i", str(inventory), *extra]


# --- models: (name, text) validated by `models validate` and planned by `plan` ---------------

MODEL_CASES = {
    "alias bomb": (I.ALIAS_BOMB, "refused: aliases expand"),
    "recursive alias": (I.RECURSIVE_ALIAS, "refused: nested more than"),
    "deep flow nesting": (I.DEEP_FLOW, "nest"),
    "deep block nesting": (I.DEEP_BLOCK, "refused: nested more than 64"),
    "empty metadata value": (I.model_text(("metadata:\n  name: amf-upgrade\n  version: 1.0.0\n  description: Upgrade AMF "
                                           "(Access and Mobility Management Function) from 1.2.0 to 1.3.0, pool by pool, "
                                           "gated on service tests\n  owner: 5gc-core-ops\n", "metadata:\n")), "metadata:"),
    "merge key of a scalar": (I.model_text(("kind: UpgradeModel\n", "kind: UpgradeModel\nextra:\n  <<: 3\n")),
                              "merge key"),
    "rollback estimate .inf": (I.model_text(("    estimate: 420\n", "    estimate: .inf\n")),
                               "spec.rollback.estimate: must be a finite number"),
    "step estimate .nan": (I.model_text(("          estimate: 120\n", "          estimate: .nan\n")),
                           "estimate: must be a finite number"),
    "manualMinutes -.inf": (I.model_text(("          estimate: 120\n", "          estimate: 120\n          manualMinutes: -.inf\n")),
                            "manualMinutes: must be a finite number"),
    "maxFailurePercent .nan": (I.model_text(("    maxFailures: 0\n", "    maxFailurePercent: .nan\n")),
                               "spec.campaign.maxFailurePercent: must be a finite number"),
    "template bomb": (I.model_text(('"{{ params.image_repo }}/', '"{{ 99 ** 64 ** 64 ** 64 }}{{ params.image_repo }}/')),
                      "spec.software.image"),
    "loop bomb": (I.model_text(('"{{ params.image_repo }}/', '"{% for i in range(99999) %}{% for j in range(99999) %}'
                                '{% endfor %}{% endfor %}{{ params.image_repo }}/')), "spec.software.image"),
    "secret where a number belongs": (I.model_text(("      default: 1024\n", f"      default: {SECRET}\n")),
                                      "min_disk_free_mb"),
    "NUL byte": (I.model_text(("owner: 5gc-core-ops", "owner: 5gc\x00core")), "YAML"),
    **{f"tag {tag}": (I.model_text(("  version: 1.0.0\n", f"  version: {tag}\n")), "metadata.version")
       for tag in I.BAD_TAGS},
}


# Every case through `models validate`; the loader is shared, so `plan` sees a few of them too
# (a few minutes of CI is the budget of this file).
MODEL_RUNS = [(name, "validate") for name in sorted(MODEL_CASES)] + [
    (name, "plan") for name in ("alias bomb", "rollback estimate .inf", "template bomb", "secret where a number belongs")]


@pytest.mark.parametrize("name,command", MODEL_RUNS)
def test_hostile_models(box: Sandbox, baseline: Baseline, name: str, command: str):
    text, field = MODEL_CASES[name]
    model = box.write("model.yaml", text)
    args = ["models", "validate", str(model)] if command == "validate" else _plan(box, model)
    before = box.snapshot()
    judge(f"model {name} ({command})", box.run(*args), box, before,
          Verdict(2, names=(str(model), field), secret=SECRET), baseline)


def test_model_files_that_are_not_regular_files(box: Sandbox, baseline: Baseline):
    fifo = box.inputs / "fifo.yaml"
    os.mkfifo(fifo)
    sparse = box.inputs / "huge.yaml"
    with sparse.open("wb") as fh:  # 200 MiB without writing them: the size alone is refused
        fh.truncate(200 * 1024 * 1024)
    for path, words in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                        (sparse, "larger than 2 MiB"), (box.inputs, "is a directory")):
        before = box.snapshot()
        judge(f"model file {path.name}", box.run("models", "validate", str(path)), box, before,
              Verdict(2, names=(str(path), words)), baseline)
        args = _run(box, model=path)
        before = box.snapshot()
        judge(f"run with model file {path.name}", box.run(*args), box, before,
              Verdict(2, names=(str(path),)), baseline)


# --- inventories: (name, host fields) planned and run -------------------------------------------

INVENTORY_CASES = {
    "port true": ({"port": True}, "hosts.amf-1.port"),
    "port .inf": ({"port": float("inf")}, "hosts.amf-1.port"),
    "timeout true": ({"timeout": True}, "hosts.amf-1.timeout"),
    "timeout .nan": ({"timeout": float("nan")}, "hosts.amf-1.timeout"),
    "hostname a list": ({"hostname": ["a", "b"]}, "hosts.amf-1.hostname"),
    "hostname a mapping": ({"hostname": {"a": 1}}, "hosts.amf-1.hostname"),
    "hostname with shell": ({"hostname": "x;reboot"}, "hosts.amf-1.hostname"),
    "hostname an option": ({"hostname": "-oProxyCommand=sh"}, "hosts.amf-1.hostname"),
    "username a list": ({"username": ["root"]}, "hosts.amf-1.username"),
    "password_env a list": ({"password_env": ["A"]}, "hosts.amf-1.password_env"),
    "password in clear": ({"password": SECRET}, "hosts.amf-1.password"),
    "token in data": ({"data": {"ne_type": "AMF", "note": SECRET}}, "hosts.amf-1.data.note"),
    "secret as timeout": ({"timeout": SECRET}, "hosts.amf-1.timeout"),
    "unknown group": ({"groups": ["nope"]}, "hosts.amf-1.groups[0]"),
}


@pytest.mark.parametrize("name", sorted(INVENTORY_CASES))
@pytest.mark.parametrize("command", ["run"])
def test_hostile_inventories(box: Sandbox, baseline: Baseline, name: str, command: str):
    fields, field = INVENTORY_CASES[name]
    inventory = box.write(FIXTURE_INVENTORY, I.good_inventory(**fields))
    model = box.write("model.yaml", I.GOOD_MODEL.read_text())
    args = _plan(box, model, inventory) if command == "plan" else _run(box, model=model, inventory=inventory)
    before = box.snapshot()
    judge(f"inventory {name} ({command})", box.run(*args), box, before,
          Verdict(2, names=(str(inventory), field), secret=SECRET), baseline)


def test_inventory_bombs_and_path_names(box: Sandbox, baseline: Baseline):
    model = box.write("model.yaml", I.GOOD_MODEL.read_text())
    cases = {
        "alias bomb": (I.ALIAS_BOMB, "refused"),
        "host named ../../x": (I.good_inventory().replace("amf-2:", "../../x:"), "host name must be"),
        # Refused in 90 s before: one problem per host made the loader quadratic.
        "10,000 hosts, each with a bad port": (
            f"defaults: {{password_env: {I.UNSET_PASSWORD_ENV}}}\nhosts:\n" + "".join(
                f"  ne-{i}: {{hostname: 10.0.{i // 250}.{i % 250}, port: true, data: {{ne_type: AMF}}}}\n"
                for i in range(10_000)), "hosts.ne-0.port"),
        "3 MiB of hosts": ("hosts:\n" + "".join(f"  ne-{i}: {{hostname: 10.0.{i // 250}.{i % 250}, port: 830, "
                                                 f"data: {{ne_type: AMF, software_version: 1.2.0, pool: p}}}}\n"
                                                 for i in range(32_000)), "larger than 2 MiB"),
    }
    for name, (text, words) in cases.items():
        inventory = box.write(FIXTURE_INVENTORY, text)
        args = _run(box, model=model, inventory=inventory)
        before = box.snapshot()
        judge(f"inventory {name}", box.run(*args), box, before,
              Verdict(2, names=(str(inventory), words)), baseline)


# --- command-line arguments ----------------------------------------------------------------------

RUN_ARGUMENTS = {
    "--window nan": (["--window", "nan"], "--window"),
    "--window inf": (["--window", "inf"], "--window"),
    "--window 0": (["--window", "0"], "--window"),
    "--window -5": (["--window", "-5"], "--window"),
    "--window-end in the past": (["--window-end", "2001-01-01T00:00"], "--window-end"),
    "--window-end garbage": (["--window-end", SECRET], "--window-end"),
    "-c 0": (["-c", "0"], "--concurrency"),
    "-c -1": (["-c", "-1"], "--concurrency"),
    "--pause-timeout -1": (["--pause-timeout", "-1"], "--pause-timeout"),
    "--campaign-id ../../x": (["--campaign-id", "../../x"], "--campaign-id"),
    "--campaign-id secret": (["--campaign-id", SECRET], "--campaign-id"),
    "--on-anomaly panic": (["--on-anomaly", "panic"], "--on-anomaly"),
    "-p without =": (["-p", SECRET], "--param"),
    "-p unknown": (["-p", "colour=red"], "unknown parameter 'colour'"),
    "-p wrong type": (["-p", f"min_disk_free_mb={SECRET}"], "min_disk_free_mb"),
    "--on-workers bad": (["--on-workers", "no"], "--on-workers"),
    "--ne-run bad": (["--ne-run", "thread"], "--ne-run"),
    "--step-runs bad": (["--step-runs", "atom"], "--step-runs"),
    "selector matches nothing": (["-t", "type=NOPE"], "--targets"),
    "selector unknown key": (["-t", "colour=red"], "colour"),
    "password variable unset": ([], I.UNSET_PASSWORD_ENV),
}


@pytest.mark.parametrize("name", sorted(RUN_ARGUMENTS))
def test_hostile_run_arguments(box: Sandbox, baseline: Baseline, name: str):
    extra, words = RUN_ARGUMENTS[name]
    args = _run(box, *extra)
    before = box.snapshot()
    judge(f"run {name}", box.run(*args), box, before, Verdict(2, names=(words,), secret=SECRET),
          baseline)


OTHER_COMMANDS = {
    "resume ../../x": (["resume", "../../x"], "CAMPAIGN_ID"),
    "resume unknown": (["resume", "c-none"], "no campaign"),
    "rollback unknown campaign": (["rollback", "-i", "{inventory}", "--campaign", "c-none"], "no campaign c-none"),
    "rollback ../x": (["rollback", "-i", "{inventory}", "--campaign", "../x"], "--campaign"),
    "rollback unknown NE": (["rollback", "-i", "{inventory}", "--ne", "amf-99"], "amf-99"),
    "rollback nothing named": (["rollback", "-i", "{inventory}"], "--campaign/--ne"),
    "report ../../x": (["report", "../../x"], "CAMPAIGN_ID"),
    "sim up --netconf-port 0": (["sim", "up", "--count", "1", "--netconf-port", "0", "--state-dir", "s"],
                                "--netconf-port"),
    "sim up --speed nan": (["sim", "up", "--count", "1", "--speed", "nan", "--state-dir", "s"], "--speed"),
    "sim up --state-dir under a file": (["sim", "up", "--count", "1", "--state-dir", "{inventory}/s"],
                                        "--state-dir"),
    "sim up --count 0": (["sim", "up", "--count", "0", "--state-dir", "s"], "--count"),
    "sim up --count huge": (["sim", "up", "--count", "99999999", "--state-dir", "s"], "--count"),
    "sim up --bind bad": (["sim", "up", "--count", "1", "--bind", "999.1.1.1", "--state-dir", "s"], "--bind"),
    "sim up topology bomb": (["sim", "up", "--topology", "{bomb}", "--state-dir", "s"], "refused"),
    "sim up topology speed .nan": (["sim", "up", "--topology", "{nan_topology}", "--state-dir", "s"], "speed"),
    "sim up topology ports 0": (["sim", "up", "--topology", "{port0_topology}", "--state-dir", "s"], "ports.netconf"),
    "sim down --timeout nan": (["sim", "down", "--timeout", "nan", "--state-dir", "s"], "--timeout"),
    "sim image --size-kb 0": (["sim", "image", "--type", "AMF", "--version", "1.3.0", "--size-kb", "0"], "--size-kb"),
    "serve --port 0": (["serve", "--port", "0"], "--port"),
    "serve --cron bad": (["serve", "--cron", "soon", "--model", "{model}", "-i", "{inventory}"], "--cron"),
    "serve --timezone bad": (["serve", "--timezone", "Mars/Olympus"], "--timezone"),
    "models list --library missing": (["models", "list", "--library", "no/such/dir"], "no/such/dir"),
    "plan --library missing": (["plan", "amf-upgrade", "-i", "{inventory}", "-t", "all", "--no-device",
                                "--library", "no/such/dir"], "no/such/dir"),
    "unknown command": (["frobnicate"], "No such command"),
    "option of the wrong type": (["run", "{model}", "-i", "{inventory}", "--window", "soon"], "--window"),
}


@pytest.mark.parametrize("name", sorted(OTHER_COMMANDS))
def test_hostile_arguments_of_other_commands(box: Sandbox, baseline: Baseline, name: str):
    args, words = OTHER_COMMANDS[name]
    files = {
        "inventory": box.write(FIXTURE_INVENTORY, I.good_inventory()),
        "model": box.write("model.yaml", I.GOOD_MODEL.read_text()),
        "bomb": box.write("bomb.yaml", I.ALIAS_BOMB),
        "nan_topology": box.write("nan.yaml", I.good_topology(speed=float("nan"))),
        "port0_topology": box.write("port0.yaml", I.good_topology(ports={"netconf": 0, "ssh": 22})),
    }
    args = [a.format(**files) for a in args]
    before = box.snapshot()
    judge(name, box.run(*args), box, before, Verdict(2, names=(words,), secret=SECRET), baseline)


# --- a random sample through the real command ----------------------------------------------------

HOSTILE_VALUES = [True, None, -1, 0, 2**70, float("inf"), float("nan"), "", "../../x", "$(reboot)", "x;rm -rf /",
                  [], {}, [[[]]], {"a": {"b": None}}, "{{ 99 ** 64 ** 64 ** 64 }}", SECRET]


def _replace(doc, path, value):
    if not path:
        return value
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


MODEL_DOC = yaml.safe_load(I.GOOD_MODEL.read_text())
MODEL_PATHS = [p for p in I.paths_in(MODEL_DOC) if p]


@settings(max_examples=int(os.environ.get("CHANGELINE_HOSTILE_CLI_EXAMPLES", "25")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(MODEL_PATHS), value=st.sampled_from(HOSTILE_VALUES))
def test_random_model_mutations_through_the_command(tmp_path_factory, baseline, path, value):
    box = Sandbox(tmp_path_factory.mktemp("mutation"))
    doc = _replace(yaml.safe_load(I.GOOD_MODEL.read_text()), path, value)
    model = box.write("model.yaml", "# yaml-language-server: $schema=model.schema.json\n" + yaml.safe_dump(doc))
    args = _run(box, model=model)
    before = box.snapshot()
    outcome = box.run(*args)
    # A mutation may leave the model valid: then the run still stops at the unset password.
    judge(f"model mutation {path} = {value!r:.40}", outcome, box, before,
          Verdict(2, names=(str(box.inputs),), secret=SECRET), baseline)

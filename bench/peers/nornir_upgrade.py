"""The upgrade as an operator would script it with Nornir 3 (threaded runner), ncclient and paramiko.

    python bench/peers/nornir_upgrade.py INVENTORY_DIR --workers C --out RESULT.json [--backup-dir DIR]

INVENTORY_DIR is what `bench/peers/plan.py` writes under nornir/ (SimpleInventory hosts.yaml and
defaults.yaml; each host's data holds its step parameters and wave). Per NE, in order: precheck, backup,
baseline dial test, transfer (SFTP), install, drain, activate (through the restart), restore, dial
test, CDR check (SFTP), KPI check, validate; the same NETCONF RPCs changeline's atoms send
(docs/platforms.md). Waves run one after another, each with Nornir's threaded runner at
num_workers = C; one member of a pool at a time (a lock per pool, held for the NE's whole run).

Deliberately plain, as a script would be: no journal (a rerun starts over; steps skip what is already
done on the NE), no rollback, no change windows, no UI; a failed step fails that NE and the script
goes on with the others. Host keys are checked against the inventory's known_hosts; the password
comes from the environment variable the inventory names. ncclient and paramiko run as shipped.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paramiko
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.operations.errors import TimeoutExpiredError
from ncclient.transport.errors import SessionCloseError, TransportError
from nornir import InitNornir
from nornir.core.inventory import ConnectionOptions
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.core.task import Result, Task

NS = "urn:changeline:params:xml:ns:yang:changeline-ne"
SEVERITY = {"warning": 1, "minor": 2, "major": 3, "critical": 4}


class StepFailed(Exception):
    """A check on the NE did not hold: the NE's run stops here."""


# --- connections (Nornir connection plugins) --------------------------------------------------

class Netconf:
    """ncclient session; host key from the inventory's known_hosts (ssh_config), never learnt."""

    def open(self, hostname, username, password, port, platform, extras=None, configuration=None) -> None:
        self.connection = manager.connect(
            host=hostname, port=port, username=username, password=password, hostkey_verify=True,
            ssh_config=extras["ssh_config"], look_for_keys=False, allow_agent=False, timeout=30,
            device_params={"name": "default"}, manager_params={"timeout": 60})

    def close(self) -> None:
        try:
            self.connection.close_session()
        except Exception:  # noqa: BLE001 - the NE may already have dropped us (restart)
            pass


class Sftp:
    """paramiko SFTP on the NE's SSH port; host key from the same known_hosts."""

    def open(self, hostname, username, password, port, platform, extras=None, configuration=None) -> None:
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(extras["known_hosts"])
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(hostname, port=port, username=username, password=password, look_for_keys=False,
                            allow_agent=False, timeout=30)
        self.connection = self.client.open_sftp()

    def close(self) -> None:
        self.client.close()


ConnectionPluginRegister.register("netconf", Netconf)
ConnectionPluginRegister.register("sftp", Sftp)


def nc(task: Task):
    return task.host.get_connection("netconf", task.nornir.config)


def sftp(task: Task):
    host = task.host
    if "sftp" not in host.connections:
        host.open_connection("sftp", task.nornir.config, port=host["ssh_port"],
                             extras={"known_hosts": host["known_hosts"]})
    return host.connections["sftp"].connection


def reconnect(task: Task) -> None:
    """Drop the sessions (the NE is restarting); the next call opens fresh ones."""
    for name in list(task.host.connections):
        task.host.close_connection(name)


def rpc(task: Task, body: str) -> etree._Element:
    return etree.fromstring(nc(task).dispatch(etree.fromstring(body)).xml.encode())


def cl(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def text(el, path: str, default: str = "") -> str:
    found = el.find(path.replace("cl:", "{%s}" % NS)) if el is not None else None
    return found.text.strip() if found is not None and found.text else default


def state(task: Task, timeout: float | None = None) -> dict[str, Any]:
    m = nc(task)
    if timeout is not None:
        m.timeout = timeout
    try:
        data = m.get(filter=("subtree", f'<ne-state xmlns="{NS}"/>')).data_ele
    finally:
        m.timeout = 60
    st = data.find(cl("ne-state"))
    if st is None:
        raise StepFailed("NE did not report <ne-state>")
    return {
        "type": text(st, "cl:type"), "version": text(st, "cl:software/cl:running-version"),
        "uptime": float(text(st, "cl:uptime-seconds", "0") or 0),
        "disk_free_mb": float(text(st, "cl:resources/cl:disk-free-mb", "0") or 0),
        "pool": text(st, "cl:traffic/cl:pool"), "drained": text(st, "cl:traffic/cl:drained") == "true",
        "alarms": [(text(a, "cl:id"), text(a, "cl:severity"), text(a, "cl:text")) for a in st.iter(cl("alarm"))],
        "kpis": {text(k, "cl:name"): float(text(k, "cl:value", "0") or 0) for k in st.iter(cl("kpi"))},
    }


def images(task: Task) -> dict[str, dict[str, str]]:
    reply = rpc(task, f'<list-images xmlns="{NS}"/>')
    return {text(i, "cl:name"): {"sha256": text(i, "cl:sha256"), "state": text(i, "cl:state")}
            for i in reply.iter(cl("image"))}


def dial(task: Task, scenario: str) -> dict[str, Any]:
    reply = rpc(task, f'<dial-test xmlns="{NS}"><scenario>{scenario}</scenario></dial-test>')
    res = next(reply.iter(cl("dial-test-result")), None)
    if res is None:
        raise StepFailed("no <dial-test-result>")
    return {"passed": text(res, "cl:result") == "pass", "attempts": int(text(res, "cl:attempts", "0")),
            "successes": int(text(res, "cl:successes", "0")), "reason": text(res, "cl:reason"),
            "charging_ids": [c.text for c in res.iter(cl("charging-id")) if c.text]}


def running_config(task: Task) -> bytes:
    data = nc(task).get_config(source="running").data_ele
    return etree.tostring(data, method="c14n")


# --- the steps ---------------------------------------------------------------------------------

def precheck(task: Task, memo: dict) -> str:
    h, st = task.host, state(task)
    problems = []
    if h["ne_types"] and st["type"] not in h["ne_types"]:
        problems.append(f"type {st['type']}")
    if h["from_versions"] and st["version"] not in h["from_versions"]:
        problems.append(f"running {st['version']}")
    problems += [f"critical alarm {a[0]}" for a in st["alarms"] if a[1] == "critical"]
    if st["disk_free_mb"] < h["min_disk_free_mb"]:
        problems.append(f"{st['disk_free_mb']:g} MB free")
    try:
        nc(task).lock("candidate")
        nc(task).unlock("candidate")
    except Exception as err:  # noqa: BLE001 - a held lock means someone else is changing the NE
        problems.append(f"candidate locked: {err}")
    if problems:
        raise StepFailed("precheck: " + "; ".join(problems))
    memo["before"] = st
    return "fit"


def backup(task: Task, memo: dict) -> str:
    folder = Path(task.host["backup_dir"]) / task.host.name
    folder.mkdir(parents=True, exist_ok=True)
    memo["running"] = running_config(task)
    (folder / "running.xml").write_bytes(memo["running"])
    try:
        (folder / "startup.xml").write_bytes(etree.tostring(nc(task).get_config(source="startup").data_ele))
    except RPCError:
        pass  # no startup datastore yet: nothing to keep
    (folder / "state.json").write_text(json.dumps(state(task)))
    return f"{len(memo['running'])} bytes"


def baseline_dial_test(task: Task, memo: dict) -> str:
    memo["dial"] = {s: dial(task, s) for s in task.host["baseline_scenarios"]}
    failed = [s for s, r in memo["dial"].items() if not r["passed"]]
    if failed:
        raise StepFailed(f"baseline dial test failed: {failed}")
    return "recorded"


def transfer(task: Task, memo: dict) -> str:
    local = Path(task.host["image_path"])
    name, digest = local.name, hashlib.sha256(local.read_bytes()).hexdigest()
    if images(task).get(name, {}).get("sha256") == digest:
        return "already there"
    if state(task)["disk_free_mb"] * 2 ** 20 < local.stat().st_size:
        raise StepFailed("not enough disk")
    sftp(task).put(str(local), f"/images/{name}")
    if images(task).get(name, {}).get("sha256") != digest:
        raise StepFailed("checksum on the NE differs")
    return "transferred"


def install(task: Task, memo: dict) -> str:
    name = task.host["image_name"]
    on_ne = images(task)
    if name not in on_ne:
        raise StepFailed(f"{name} not on the NE")
    if on_ne[name]["state"] in ("installed", "active"):
        return "already installed"
    rpc(task, f'<install-software xmlns="{NS}"><image>{name}</image></install-software>')
    if images(task).get(name, {}).get("state") not in ("installed", "active"):
        raise StepFailed("not installed after install-software")
    return "installed"


def drain(task: Task, memo: dict) -> str:
    if state(task)["drained"]:
        return "already drained"
    rpc(task, f'<drain-traffic xmlns="{NS}"/>')
    time.sleep(task.host["drain_settle_s"] * task.host["time_scale"])
    if not state(task)["drained"]:
        raise StepFailed("still taking traffic")
    return "drained"


def activate(task: Task, memo: dict) -> str:
    target, before = task.host["to_version"], state(task)
    if before["version"] == target:
        return "already running"
    started = time.monotonic()
    try:
        rpc(task, f'<activate-software xmlns="{NS}"><version>{target}</version></activate-software>')
    except (SessionCloseError, TransportError, TimeoutExpiredError):
        pass  # the NE may drop the session before its <ok/> arrives
    reconnect(task)
    deadline = started + task.host["restart_timeout_s"] * task.host["time_scale"]
    delay = 0.05
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
        try:
            now = state(task, timeout=10)
        except Exception:  # noqa: BLE001 - down or refusing while it restarts: try again
            reconnect(task)
            continue
        restarted = now["uptime"] < before["uptime"] or now["uptime"] < (time.monotonic() - started) / task.host["time_scale"]
        if restarted and now["version"] == target:
            return f"running {target}"
        if restarted and now["uptime"] > 0:
            raise StepFailed(f"restarted on {now['version']}")
    raise StepFailed(f"not back on {target} in time")


def restore(task: Task, memo: dict) -> str:
    if not state(task)["drained"]:
        return "taking traffic"
    rpc(task, f'<restore-traffic xmlns="{NS}"/>')
    if state(task)["drained"]:
        raise StepFailed("still drained")
    return "restored"


def dial_test(task: Task, memo: dict) -> str:
    for scenario in task.host["scenarios"]:
        now, before = dial(task, scenario), memo["dial"].get(scenario)
        pct = 100.0 * now["successes"] / now["attempts"] if now["attempts"] else 0.0
        if not now["passed"] or pct < task.host["min_success_pct"]:
            raise StepFailed(f"dial test {scenario}: {now['reason'] or pct}")
        if before and before["attempts"] and pct < 100.0 * before["successes"] / before["attempts"]:
            raise StepFailed(f"dial test {scenario} worse than before")
    return "passed"


def cdr_check(task: Task, memo: dict) -> str:
    billing = task.host["billing"]
    expected: list[str] = []
    for _ in range(billing["sessions"]):
        result = dial(task, billing["scenario"])
        if not result["passed"]:
            raise StepFailed(f"charged session failed: {result['reason']}")
        expected += result["charging_ids"]
    if not expected:
        raise StepFailed("no charging ids")
    deadline = time.monotonic() + billing["wait_s"] * task.host["time_scale"]
    client = sftp(task)
    while True:
        seen: dict[str, int] = {}
        for name in client.listdir("/cdr"):
            if name.endswith(".csv"):
                with client.open(f"/cdr/{name}") as fh:
                    for row in csv.DictReader(io.StringIO(fh.read().decode())):
                        if row.get("charging_id") in expected and row.get("ne") == task.host.name:
                            seen[row["charging_id"]] = seen.get(row["charging_id"], 0) + 1
        missing = [c for c in expected if c not in seen]
        if not missing and all(n == 1 for n in seen.values()):
            return f"{len(expected)} CDR(s)"
        if time.monotonic() > deadline:
            raise StepFailed(f"CDRs missing {missing} or doubled {[c for c, n in seen.items() if n > 1]}")
        time.sleep(min(0.2, billing["wait_s"] * task.host["time_scale"] / 10))


def kpi_check(task: Task, memo: dict) -> str:
    time.sleep(task.host["kpi_settle_s"] * task.host["time_scale"])
    now, before = state(task)["kpis"], memo["before"]["kpis"]
    for name, allowed in task.host["max_kpi_drop_pct"].items():
        if name not in before or name not in now:
            raise StepFailed(f"KPI {name} not reported")
        if before[name] and (before[name] - now[name]) / abs(before[name]) * 100.0 > allowed:
            raise StepFailed(f"KPI {name} fell from {before[name]} to {now[name]}")
    return "within thresholds"


def validate(task: Task, memo: dict) -> str:
    if running_config(task) != memo["running"]:
        raise StepFailed("running config differs from the backup")
    st = state(task)
    if st["version"] != task.host["to_version"]:
        raise StepFailed(f"running {st['version']}")
    floor = SEVERITY.get(task.host["block_alarm_severity"], 3)
    fresh = [a for a in st["alarms"] if (a[0], a[2]) not in {(b[0], b[2]) for b in memo["before"]["alarms"]}
             and SEVERITY.get(a[1], 0) >= floor]
    if fresh:
        raise StepFailed(f"new alarms {fresh}")
    return "valid"


STEPS = {"precheck": precheck, "backup": backup, "baseline_dial_test": baseline_dial_test,
         "transfer_software": transfer, "install_software": install, "drain_traffic": drain,
         "activate_software": activate, "restore_traffic": restore, "dial_test": dial_test,
         "billing_check": cdr_check, "kpi_check": kpi_check, "validate_upgrade": validate}
POOL_LOCKS: dict[str, threading.Lock] = {}


def upgrade(task: Task) -> Result:
    """One NE's whole change, holding its pool's lock; a failing step ends this NE's run."""
    pool = task.host["pool"]
    lock = POOL_LOCKS[pool] if pool else threading.Lock()
    with lock:
        started, memo, timings, name = time.time(), {}, {}, "connect"
        try:
            for name, kind in task.host["steps"]:
                t0 = time.perf_counter()
                STEPS[kind](task, memo)
                timings[name] = round(time.perf_counter() - t0, 3)
            outcome = {"status": "done", "reason": "reached target"}
        except Exception as err:  # noqa: BLE001 - the NE's outcome; the others carry on
            outcome = {"status": "failed", "reason": f"{name}: {type(err).__name__}: {err}"}
        finally:
            task.host.close_connections()
        return Result(host=task.host, result={**outcome, "started_at": started, "finished_at": time.time(),
                                              "step_s": timings}, failed=outcome["status"] != "done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backup-dir", type=Path, default=Path("nornir-backups"))
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    nr = InitNornir(runner={"plugin": "threaded", "options": {"num_workers": args.workers}},
                    inventory={"plugin": "SimpleInventory",
                               "options": {"host_file": str(args.inventory / "hosts.yaml"),
                                           "defaults_file": str(args.inventory / "defaults.yaml")}},
                    logging={"enabled": False})
    defaults = nr.inventory.defaults
    password = os.environ.get(defaults.data["password_env"])
    if not password:
        print(f"error: set {defaults.data['password_env']} to the NEs' password", file=sys.stderr)
        return 2
    defaults.password = password
    defaults.data["backup_dir"] = str(args.backup_dir)
    defaults.connection_options["netconf"] = ConnectionOptions(extras={"ssh_config": defaults.data["ssh_config"]})
    for h in nr.inventory.hosts.values():
        if h["pool"]:
            POOL_LOCKS.setdefault(h["pool"], threading.Lock())
    outcomes: dict[str, Any] = {}
    waves: dict[int, list[str]] = {}
    for name, h in nr.inventory.hosts.items():
        waves.setdefault(h["wave"], []).append(name)
    wave_s = []
    for index in sorted(waves):
        names = set(waves[index])
        w0 = time.monotonic()
        results = nr.filter(filter_func=lambda h: h.name in names).run(task=upgrade, name=f"wave {index + 1}")
        wave_s.append(round(time.monotonic() - w0, 3))
        for name, multi in results.items():
            outcomes[name] = multi[0].result if isinstance(multi[0].result, dict) else {
                "status": "failed", "reason": str(multi[0].exception)}
    wall = time.monotonic() - t0
    times = os.times()
    args.out.write_text(json.dumps({"peer": "nornir", "wall_s": round(wall, 3), "wave_seconds": wave_s,
                                    "cpu_s_self": round(times.user + times.system, 3), "nes": outcomes}, indent=2))
    return 0 if all(o["status"] == "done" for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

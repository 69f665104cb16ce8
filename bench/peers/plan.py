"""The peers' inventory generator: one plan, from the changeline models, that a Nornir script and
an Ansible playbook both follow, so they do the steps changeline does with the same parameters.

`python -m bench.peers.plan SIM_INVENTORY OUT_DIR --image-repo DIR --models M.yaml ...` writes

    OUT_DIR/plan.json                 hosts (address, ports, pool, step parameters) and waves
    OUT_DIR/nornir/hosts.yaml, defaults.yaml   a Nornir SimpleInventory of the same hosts
    OUT_DIR/ansible/inventory.yaml    the same hosts as Ansible host vars
    OUT_DIR/ssh_config                UserKnownHostsFile = the simulator's known_hosts, strict

Step parameters come from each NE's compiled plan (`compile_for_host`), so a model change reaches
the peers; a step whose atom no peer implements is refused here rather than silently skipped.
No password is written anywhere: both peers read it from the environment variable the
inventory names (CHANGELINE_NE_PASSWORD for the simulator).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Atoms the peers implement, each as the same NETCONF/SFTP exchanges the atom makes.
PEER_ATOMS = ("precheck", "backup", "dial_test", "transfer_software", "install_software", "drain_traffic",
              "activate_software", "restore_traffic", "billing_check", "kpi_check", "validate_upgrade")


class PlanError(ValueError):
    """The models ask for something the peers cannot do."""


def host_vars(ne: str, steps: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A compiled plan's steps (name, atom, args) -> the peers' per-NE parameters (pure)."""
    # (step name, what the peer does): a dial test that records the baseline differs from one that compares
    out: dict[str, Any] = {"steps": [[name, "baseline_dial_test" if atom == "dial_test" and args.get("record_baseline")
                                      else atom] for name, atom, args in steps],
                           "drain_settle_s": None, "billing": None}
    for name, atom, args in steps:
        if atom not in PEER_ATOMS:
            raise PlanError(f"{ne}: step {name!r} uses atom {atom!r}, which the peers do not implement")
        if atom == "precheck":
            out.update(ne_types=list(args.get("ne_types") or []), from_versions=list(args.get("expected_versions") or []),
                       min_disk_free_mb=float(args.get("min_disk_free_mb", 0)))
        elif atom == "dial_test":
            out["baseline_scenarios" if args.get("record_baseline") else "scenarios"] = list(args["scenarios"])
            out["min_success_pct"] = float(args.get("min_success_pct", 100))
        elif atom == "transfer_software":
            out["image_path"] = args["image"]
        elif atom == "install_software":
            out["image_name"] = args["image"].rsplit("/", 1)[-1]
        elif atom == "drain_traffic":
            out["drain_settle_s"] = float(args.get("settle_s", 30))
        elif atom == "activate_software":
            out.update(to_version=args["version"], restart_timeout_s=float(args.get("restart_timeout_s", 900)))
        elif atom == "billing_check":
            out["billing"] = {"scenario": args["scenario"], "sessions": int(args.get("sessions", 1)),
                              "wait_s": float(args.get("wait_s", 60))}
        elif atom == "kpi_check":
            out.update(max_kpi_drop_pct=dict(args.get("max_drop_pct") or {}), kpi_settle_s=float(args.get("settle_s", 0)))
        elif atom == "validate_upgrade":
            out["block_alarm_severity"] = args.get("block_alarm_severity", "major")
    missing = [k for k in ("from_versions", "image_path", "image_name", "to_version", "scenarios") if k not in out]
    if missing:
        raise PlanError(f"{ne}: the plan lacks {', '.join(missing)}; the peers need precheck, transfer, install, "
                        "activate and a dial test")
    return out


def serial_batches(waves: list[list[str]], pool_of: dict[str, str | None]) -> list[list[str]]:
    """Ansible has no per-pool lock: split each wave, in order, into batches that hold at most one
    member of each pool (a member goes to the first batch of its wave without its pool)."""
    batches: list[list[str]] = []
    for wave in waves:
        own: list[tuple[list[str], set[str]]] = []
        for ne in wave:
            pool = pool_of.get(ne)
            slot = next((b for b in own if pool is None or pool not in b[1]), None)
            if slot is None:
                slot = ([], set())
                own.append(slot)
            slot[0].append(ne)
            if pool is not None:
                slot[1].add(pool)
        batches += [names for names, _ in own]
    return batches


def build_plan(inventory: Path, models: list[str], image_repo: str) -> dict[str, Any]:
    from changeline.devices.inventory import load_inventory
    from changeline.engine.policy import dispatch_order
    from changeline.models.compile import compile_for_host, eligibility, load_model, plan_waves

    loaded = [load_model(m) for m in models]
    hosts = load_inventory(inventory).select("all")
    chosen = {}
    for host in hosts:  # the first model that targets the NE, as the campaign picks
        model = next((m for m in loaded if eligibility(m, host) is None), None)
        if model is not None:
            chosen[host.name] = model
    eligible = [h for h in hosts if h.name in chosen]
    plans = {h.name: compile_for_host(chosen[h.name], h, {"image_repo": image_repo}) for h in eligible}
    waves = [[h.name for h in dispatch_order(w.hosts, {h.name: plans[h.name].total_estimate_s for h in w.hosts})]
             for w in plan_waves(loaded[0], eligible)]
    known_hosts = {h.known_hosts for h in eligible}
    if len(known_hosts) != 1 or None in known_hosts:
        raise PlanError(f"{inventory}: the peers need one known_hosts file for every NE, found {sorted(map(str, known_hosts))}")
    password_envs = {h.password_env for h in eligible}
    if len(password_envs) != 1 or None in password_envs:
        raise PlanError(f"{inventory}: the peers read one password from one environment variable (password_env)")
    return {
        "known_hosts": known_hosts.pop(), "password_env": password_envs.pop(),
        "time_scale": float(eligible[0].data.get("time_scale", 1.0)) if eligible else 1.0,
        "waves": waves,
        "hosts": {h.name: {"hostname": h.hostname, "netconf_port": h.port, "ssh_port": h.ssh_port,
                           "username": h.username, "ne_type": h.ne_type, "pool": h.pool or None,
                           **host_vars(h.name, [(s.name, s.atom, s.args) for s in plans[h.name].steps])}
                  for h in eligible},
    }


def write_peer_inventories(plan: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    ssh_config = out / "ssh_config"
    # ncclient and OpenSSH both read this: host keys only from the simulator's known_hosts, never learnt.
    ssh_config.write_text(f"Host *\n  UserKnownHostsFile {plan['known_hosts']}\n  StrictHostKeyChecking yes\n"
                          "  GlobalKnownHostsFile /dev/null\n")
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    order = [ne for wave in plan["waves"] for ne in wave]  # wave order, dispatch order inside a wave
    wave_of = {ne: index for index, wave in enumerate(plan["waves"]) for ne in wave}
    nornir_dir = out / "nornir"
    nornir_dir.mkdir(exist_ok=True)
    (nornir_dir / "hosts.yaml").write_text(yaml.safe_dump(
        {ne: {"hostname": plan["hosts"][ne]["hostname"], "port": plan["hosts"][ne]["netconf_port"],
              "username": plan["hosts"][ne]["username"],
              "data": {**plan["hosts"][ne], "wave": wave_of[ne]}} for ne in order}, sort_keys=False))
    (nornir_dir / "defaults.yaml").write_text(yaml.safe_dump(
        {"data": {"time_scale": plan["time_scale"], "ssh_config": str(ssh_config),
                  "known_hosts": plan["known_hosts"], "password_env": plan["password_env"]}}))
    ansible_dir = out / "ansible"
    ansible_dir.mkdir(exist_ok=True)
    batches = serial_batches(plan["waves"], {ne: h["pool"] for ne, h in plan["hosts"].items()})
    ansible_hosts = {}
    for ne in (ne for batch in batches for ne in batch):  # play order = the serial batches in turn
        h = plan["hosts"][ne]
        ansible_hosts[ne] = {"ansible_host": h["hostname"], "ansible_port": h["netconf_port"],
                             "ansible_user": h["username"], **{k: v for k, v in h.items() if k not in (
                                 "hostname", "netconf_port", "username")}, "wave": wave_of[ne]}
    (ansible_dir / "inventory.yaml").write_text(yaml.safe_dump({"all": {
        "hosts": ansible_hosts,
        "vars": {
            "ansible_connection": "ansible.netcommon.netconf", "ansible_network_os": "ansible.netcommon.default",
            # a template, not a secret: resolved from the environment at run time
            "ansible_password": "{{ lookup('ansible.builtin.env', '%s') }}" % plan["password_env"],
            "ansible_netconf_ssh_config": str(ssh_config), "ansible_host_key_checking": True,
            "time_scale": plan["time_scale"], "ssh_config_file": str(ssh_config),
            "password_env": plan["password_env"]}}}, sort_keys=False))
    # `serial` is templated before any host's vars exist: it comes in as an extra var
    (ansible_dir / "batches.json").write_text(json.dumps({"serial_batches": [len(b) for b in batches]}))
    return {"plan": out / "plan.json", "nornir": nornir_dir, "ansible_inventory": ansible_dir / "inventory.yaml",
            "ansible_batches": ansible_dir / "batches.json",
            "ssh_config": ssh_config}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventory", type=Path, help="the simulator's inventory.yaml")
    parser.add_argument("out", type=Path)
    parser.add_argument("--image-repo", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    args = parser.parse_args(argv)
    try:
        plan = build_plan(args.inventory, args.models, args.image_repo)
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for what, path in write_peer_inventories(plan, args.out).items():
        print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

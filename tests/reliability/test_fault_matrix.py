"""Every fault kind the simulator offers, aimed at each atom it applies to, on a pooled AMF, a
UPF and a P-CSCF at once; each NE then checked with the cell's own NETCONF reads."""

from __future__ import annotations

import threading

import pytest

from changeline.engine import policy
from changeline.flows import stores
from tests.reliability.matrix import FAULT_CELLS, FULL, build_report, cell_nes, check_ne, configs_before, \
    model_variant, models_with, summary_of

CELLS = [c for c in FAULT_CELLS if FULL or c.fast]


@pytest.fixture(scope="module")
def all_at_once(tmp_path_factory):
    """Every NE in one wave, no failure budget: each cell's three NEs run side by side."""
    return models_with(model_variant(tmp_path_factory.mktemp("models"), "AMF", waves="      - {name: all}\n",
                                     max_failures=100, concurrency=3))


def _set_when_started(sim, campaign_id: str, ne: str, cell, params: dict, stop: threading.Event):
    """Set the fault the moment the NE starts the cell's step (before it, the NE's baseline would
    carry it); clear it when the NE starts rolling back if the cell says so."""
    journal = stores.journal()
    armed = False
    while not stop.wait(0.02):
        status, reason = journal.ne_statuses(campaign_id).get(ne, ("", ""))
        if status in policy.FINAL_STATES:
            return
        if not armed and reason == f"step {cell.at_step}":
            sim.control.add_fault(ne, cell.kind, **params)
            armed = True
            if not cell.until_rollback:
                return
        if armed and reason.startswith("rolling back"):
            sim.control.clear_faults(ne, cell.kind)
            return


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_fault_cell(cell, prefect_api, rel_home, rel_sim, rel_images, all_at_once):
    nes = cell_nes(cell.id)
    before = configs_before(rel_sim, nes.values())
    campaign_id = f"fault-{cell.id}"
    stop = threading.Event()
    setters = []
    for ne_type, ne in nes.items():
        if cell.at_step is None:
            rel_sim.control.add_fault(ne, cell.kind, **cell.params_for(ne_type))
        else:
            setters.append(threading.Thread(target=_set_when_started, daemon=True, args=(
                rel_sim, campaign_id, ne, cell, cell.params_for(ne_type), stop)))
    for setter in setters:
        setter.start()
    try:
        summary = summary_of(models=all_at_once, inventory=str(rel_sim.inventory_path), targets=",".join(nes.values()),
                           campaign_id=campaign_id, params={"image_repo": str(rel_images)}, concurrency_cap=3)
    finally:
        stop.set()
        for setter in setters:
            setter.join(5)
    report = build_report(campaign_id)
    statuses = {}
    for ne_type, ne in nes.items():
        statuses[ne] = check_ne(rel_sim, campaign_id, ne, ne_type, before[ne], report)
        assert statuses[ne] == summary["nes"][ne]["status"]
        assert next(e for e in report["nes"] if e["ne"] == ne)["reason"] == summary["nes"][ne]["reason"]
    print(f"cell {cell.id} ({cell.kind} -> {cell.atom}): {statuses}")

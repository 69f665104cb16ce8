"""NEs run on workers: `changeline run --on-workers ne-change/worker` hands each NE to a run of
that deployment, which any `changeline serve` process - on this machine or another - picks up.

Nothing travels through files: the worker and the campaign share the state store
(CHANGELINE_STATE_URL, flows.stores). The campaign hands the NE to an attempt in the store
before it dispatches the run; the worker's run takes that attempt, gives a heartbeat every few
seconds while it works, and leaves the NE's outcome there when it ends.

A worker can die mid-NE (SIGKILL, a machine lost). Prefect then shows its run Running for
ever - the runner that would report the crash died with it, and nothing on the server acts on
a missing flow-run heartbeat unless an automation is set up - so the campaign would wait for
ever, holding the NE's lock. Instead the campaign watches the heartbeats: once the run's flow
runs, heartbeats that stop moving for a lease (CHANGELINE_WORKER_LEASE_S, measured on the
campaign's own clock, so no two machines' clocks are compared) mean the worker is gone (a run a
worker took but whose process has not started gets a few leases: engine.policy.Liveness). The
run is marked Crashed with the reason, and the NE is handed to a new attempt and dispatched
again: the new run goes on from where the journal says the dead one stood (finished steps are
kept, the step it was caught in is entered again - atoms are idempotent - and a rollback
already decided is finished). The campaign keeps the NE's lock throughout, so nothing else
touches the NE in between. A run that was only slow, not dead, finds at its next heartbeat (or
when it starts) that another attempt holds the NE, and ends its process at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from prefect import flow

from changeline.errors import ChangelineError
from changeline.engine import policy
from changeline.flows import stores
from changeline.flows.ne_flow import ne_change
from changeline.engine.outcomes import NEOutcome

log = logging.getLogger("changeline.workers")

# Dispatches of one NE in a row that may each lose their worker before the NE is left for
# `changeline resume` (a worker pool that keeps dying is not one to keep feeding).
ATTEMPTS = 3
EXIT_SUPERSEDED = 75  # EX_TEMPFAIL: this run's NE was handed to another worker


# --- the worker's side ------------------------------------------------------------------------

def worker_name() -> str:
    """Where an NE's run works, for the operator: the host, the flow run's process and the
    `changeline serve` process that started it."""
    return f"{socket.gethostname()} pid {os.getpid()} (served by pid {os.getppid()})"


@contextmanager
def heartbeats(journal, campaign_id: str, ne: str, holder: str, every_s: float,
               superseded: Callable[[], None]) -> Iterator[None]:
    """Beat every `every_s` while the block runs; `superseded()` once another run holds the NE.
    A store that does not answer is retried at the next beat (the campaign's lease decides)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                if not journal.beat(campaign_id, ne, holder):
                    superseded()
                    return
            except ChangelineError as err:
                log.warning("%s: heartbeat not recorded: %s", ne, err.reason)

    beater = threading.Thread(target=loop, name=f"heartbeat-{ne}", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join(every_s + 5)


def _give_up_the_ne(ne: str) -> None:
    # Another run works on this NE now (the campaign took this one for dead): going on beside it
    # would send a second stream of changes to one NE. Stop this process at once.
    log.error("%s: another worker's run holds this NE now; this run stops", ne)
    os._exit(EXIT_SUPERSEDED)


@flow(name="ne-change", flow_run_name="{ne}", persist_result=False, validate_parameters=True)
def ne_change_on_worker(model: str, inventory: str, ne: str, campaign_id: str, params: dict[str, Any] | None = None,
                        on_anomaly: str | None = None, pause_timeout_s: int = 3600, attempt: str = "",
                        heartbeat_s: float = 10.0):
    """Change one NE for a campaign that runs elsewhere: ne_flow.ne_change as attempt `attempt`,
    with heartbeats and its outcome in the shared state store."""
    journal = stores.journal()
    if not journal.take_run(campaign_id, ne, attempt, worker_name()):
        raise ChangelineError(f"{ne}: the campaign handed this NE to another run; this one does nothing")
    with heartbeats(journal, campaign_id, ne, attempt, heartbeat_s, lambda: _give_up_the_ne(ne)):
        state = ne_change.fn(model=model, inventory=inventory, ne=ne, campaign_id=campaign_id, params=params,
                             on_anomaly=on_anomaly, pause_timeout_s=pause_timeout_s)
    journal.end_run(campaign_id, ne, attempt, state.data)
    return state


# --- the campaign's side ----------------------------------------------------------------------

def _untouched(host, campaign_id: str, status: str, reason: str) -> dict[str, Any]:
    return NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id, status=status, reason=reason,
                     from_version=host.software_version).to_dict()


def run_on_worker(deployment: str, model_file: str, inventory: str, host, campaign_id: str,
                  params: dict[str, Any], on_anomaly: str | None, pause_timeout_s: int, *,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """One NE as a run of the `deployment` (ne-change/worker) on whatever worker takes it; its
    outcome comes back through the state store. A run whose worker dies is dispatched again."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.logging import get_run_logger
    from prefect.states import Crashed

    lease = policy.worker_lease_s(os.environ.get(policy.WORKER_LEASE_SETTING))
    look_every = min(2.0, lease / policy.BEATS_PER_LEASE)
    journal = stores.journal()
    parameters = {"model": model_file, "inventory": inventory, "ne": host.name, "campaign_id": campaign_id,
                  "params": params, "on_anomaly": on_anomaly, "pause_timeout_s": pause_timeout_s,
                  "heartbeat_s": lease / policy.BEATS_PER_LEASE}
    lost_runs: list[str] = []
    with get_client(sync_client=True) as client:
        for _ in range(ATTEMPTS):
            attempt = uuid.uuid4().hex
            journal.assign_run(campaign_id, host.name, attempt)  # before the run exists: no worker can beat it
            run = run_deployment(deployment, parameters={**parameters, "attempt": attempt}, timeout=0,
                                 as_subflow=True)
            alive = policy.Liveness(lease)
            while True:
                state = client.read_flow_run(run.id).state
                record = journal.run_of(campaign_id, host.name)
                mine = record is not None and record.holder == attempt
                if state is not None and state.is_final():
                    if mine and record.outcome:
                        return record.outcome
                    return _untouched(host, campaign_id, policy.FAILED,
                                      f"worker run {run.name} ended {state.name} without an outcome")
                if alive.lost(clock(), phase=_phase(state), beat=(record.worker, record.beats) if mine else None):
                    break
                time.sleep(look_every)
            where = f" on {record.worker}" if mine and record.worker else ""
            why = f"its worker{where} stopped answering (no heartbeat for {lease:.0f} s)"
            client.set_flow_run_state(run.id, Crashed(message=why), force=True)
            lost_runs.append(run.name)
            get_run_logger().warning("%s: run %s: %s; dispatching the NE again", host.name, run.name, why)
    reason = (f"interrupted: {len(lost_runs)} worker runs in a row lost their worker ({', '.join(lost_runs)}); "
              "resume the campaign")
    journal.set_ne_status(campaign_id, host.name, policy.RUNNING, reason)
    return _untouched(host, campaign_id, policy.FAILED, reason)


def _phase(state) -> str:
    """A run's phase for engine.policy.Liveness, from its Prefect state."""
    if state is not None and (state.is_running() or state.is_paused()):
        return "running"
    return "starting" if state is not None and state.is_pending() else "waiting"

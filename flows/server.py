"""Start or attach to a standalone Prefect server, so operators see every run in the UI.

Ephemeral mode (no PREFECT_API_URL) loses task runs when a short process exits and
starts slowly (../shared/MACHINE.md), so changeline always uses a standalone server:
the one PREFECT_API_URL points at, or its own under CHANGELINE_HOME/prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from changeline.errors import ChangelineError
from changeline.flows import stores

DEFAULT_PORT = 4200
# Stock Prefect writes every task-run state event in a transaction of its own (batch size 1)
# and persists events 20 at a time; on SQLite those transactions race the API's own writes,
# which then fail with "database is locked" (503, retried by the client after 2, 4, 8 s).
# Batches flushed every second cut the transactions and keep recording within ~1 s
# (measured with bench/campaign_bench.py). Values already in the environment win.
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def ensure_server(port: int | None = None, *, wait_s: float = 120.0) -> str:
    """Return a healthy API URL, starting a server in the background if none answers."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured and healthy(configured):
        return configured
    port = port or int(os.environ.get("CHANGELINE_PREFECT_PORT", DEFAULT_PORT))
    api_url = configured or f"http://127.0.0.1:{port}/api"
    if not healthy(api_url):
        _start(port)
        deadline = time.monotonic() + wait_s
        while not healthy(api_url):
            if time.monotonic() > deadline:
                log = stores.home() / "prefect" / "server.log"
                raise ChangelineError(f"Prefect server did not answer on {api_url} within {wait_s:.0f} s; see {log}")
            time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = api_url
    for name, value in engine_settings(api_url).items():
        os.environ.setdefault(name, value)
    return api_url


def engine_settings(api_url: str) -> dict[str, str]:
    """Prefect settings for a process that runs campaigns (before Prefect is imported):
    the terminal shows Prefect's warnings and errors only - `changeline run` draws progress
    bars, and the UI keeps every log line (rendering thousands of per-task INFO lines cost
    ~3% of a 200-NE campaign's engine time) - plus what suits this server."""
    return {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING", **client_settings(api_url)}


def client_settings(api_url: str) -> dict[str, str]:
    """Client settings that suit this server.

    Prefect's client asks for a CSRF token before its first write on every new client
    object, and the concurrency-limit helpers make a new client per call: against a server
    without CSRF protection (the default) that was one wasted request per lock acquire,
    renew and release (900 of 4,363 requests in a 200-NE campaign).
    """
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/csrf-token?client=changeline-probe", timeout=5):
            return {}  # protection is on: the client needs its tokens
    except urllib.error.HTTPError as err:
        if err.code == 422 and b"disabled" in err.read():
            return {"PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false"}
        return {}
    except OSError:
        return {}


def server_env(port: int) -> dict[str, str]:
    home = stores.home() / "prefect"
    env = {**SERVER_SETTINGS, **os.environ}
    env.setdefault("PREFECT_HOME", str(home))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    env.pop("PREFECT_API_URL", None)
    return env


def _start(port: int) -> None:
    home = stores.home() / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "ab")
    prefect = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=server_env(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=home)
    (home / "server.pid").write_text(str(proc.pid))


def ui_url(api_url: str) -> str:
    return api_url.rstrip("/").removesuffix("/api")


def flow_run_url(api_url: str, flow_run_id: str) -> str:
    return f"{ui_url(api_url)}/v2/runs/flow-run/{flow_run_id}"  # Prefect's new UI (the old one is at /)


def serve_rollback(inventory: str) -> None:
    """Serve only the one-click rollback deployment, its inventory filled in (what
    `changeline demo` leaves running in the background so the board's links work)."""
    ensure_server()  # before Prefect is imported: it reads PREFECT_API_URL once, at import
    from prefect import serve

    from changeline.flows.rollback_flow import rollback

    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    deployment = rollback.to_deployment(name="one-click", parameters={"inventory": str(Path(inventory).resolve())},
                                        description="Roll back a campaign's NEs (or named NEs) and verify")
    serve(deployment, limit=4)


def wait_for_deployment(name: str, *, wait_s: float = 60.0, alive=lambda: True) -> str:
    """The id of deployment `name` once it exists (a serve process just started registers it)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            try:
                return str(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                if time.monotonic() > deadline or not alive():
                    raise ChangelineError(f"deployment {name} did not appear within {wait_s:.0f} s") from None
                time.sleep(0.5)


if __name__ == "__main__":  # python -m changeline.flows.server serve-rollback INVENTORY
    if len(sys.argv) != 3 or sys.argv[1] != "serve-rollback":
        sys.exit("usage: python -m changeline.flows.server serve-rollback INVENTORY")
    serve_rollback(sys.argv[2])

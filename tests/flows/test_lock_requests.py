"""What a campaign asks the Prefect server for its locks: one grant per NE when nothing else
holds them (pool peers queue in the engine first), and a wait then a skip when another
campaign holds the NE's pool, and a grant whose answer was lost waited out rather than taken for
another run's. A real Prefect server, real simulators, the real model library."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.engine import ApiCalls
from changeline.flows.campaign import campaign
from changeline.flows.locks import NeLocks
from tests.flows.conftest import UPGRADE_MODELS
from tests.flows.test_campaign import paused_holder
from tests.flows.test_ne_as_task import _campaign_run, _children, _task_runs

INCREMENT = "POST /api/v2/concurrency_limits/increment-with-lease"


def test_a_campaign_asks_once_per_ne_for_its_locks_and_its_steps_for_none(prefect_api, line_home, flow_sim,
                                                                        image_repo):
    from prefect.client.orchestration import get_client

    calls = ApiCalls()  # every request this process sends, with its answer (httpx's log)
    calls.install()
    try:
        # amf-51 and amf-52 share a pool: the second waits for the first in the engine, not by
        # asking the server again and again.
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                           targets="amf-51,amf-52,smf-51", campaign_id="lock-requests",
                           params={"image_repo": str(image_repo)}, concurrency_cap=3)
    finally:
        calls.uninstall()
    assert summary["counts"] == {"done": 3}, summary["counts"]
    answers = dict(calls.by_path_status[INCREMENT])
    # 503 (the server's database busy) is retried by Prefect's client: a loaded machine's, not ours.
    granted = answers.pop(200, 0)
    answers.pop(503, None)
    assert (granted, answers) == (3, {}), dict(calls.by_path_status[INCREMENT])
    assert sum(calls.by_path_status["POST /api/v2/concurrency_limits/decrement-with-lease"].values()) >= 3

    with get_client(sync_client=True) as client:
        parent = _campaign_run(client, "lock-requests")
        nes = {run.name: run for run in _children(client, parent.id)}
        assert sorted(nes) == ["amf-51", "amf-52", "smf-51"], sorted(nes)
        for name, run in nes.items():
            assert {"campaign:lock-requests", "ne-type:" + ("AMF" if name.startswith("amf") else "SMF")} \
                <= set(run.tags), run.tags
            steps = _task_runs(client, run.id)
            assert steps, name
            # The NE's run carries the tags; a tagged step would have cost a request of its own.
            assert [(s.name, s.tags) for s in steps if s.tags] == [], name


def test_a_campaign_holding_an_nes_pool_makes_it_wait_then_skip(prefect_api, line_home, flow_sim, image_repo):
    from changeline.flows import stores

    with paused_holder(flow_sim, image_repo, "amf-53", "pool-holder", "pool check done") as first:
        second = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="amf-54",
                          campaign_id="pool-intruder", params={"image_repo": str(image_repo)}, lock_wait_s=2)
        out = second["nes"]["amf-54"]
        assert out["status"] == "skipped", out
        assert "another run holds amf-54 or its pool amf-pool-5 (waited 2 s)" in out["reason"], out
        assert stores.journal().entries("pool-intruder", "amf-54") == []
    assert first["nes"]["amf-53"]["status"] == "rolled-back"


class _SwallowFirstGrant(ThreadingHTTPServer):
    """A reverse proxy to the Prefect API that passes the first grant request on - so the
    server grants it - and never answers it, as an overloaded server or a lost reply would."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream, self.swallowed, self.release = upstream.rstrip("/"), [], threading.Event()
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        import httpx

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.request(self.command, self.server.upstream + self.path.removeprefix("/api"),
                               headers=headers, content=body, timeout=60)
        if self.path.endswith("/increment-with-lease") and not self.server.swallowed:
            self.server.swallowed.append(answer.json()["lease_id"])
            self.server.release.wait()
            self.close_connection = True
            return
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

    def log_message(self, *args) -> None:
        pass


def test_a_grant_whose_answer_was_lost_is_waited_out_not_reported_as_another_run(prefect_api, caplog):
    """The server granted the NE's lease but the answer never came (the client timed out). That
    lease holds the NE until it runs out; before, Prefect's client asked again, was refused by
    it, and the NE was skipped as held by "another run" though none was about."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT, PREFECT_API_URL, temporary_settings

    name = "ne-lost-answer"
    proxy = _SwallowFirstGrant(prefect_api)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        # Every other request answers in well under 10 s; the swallowed one never does.
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{proxy.server_port}/api",
                                 PREFECT_API_REQUEST_TIMEOUT: 10}), \
                caplog.at_level("WARNING", logger="changeline.locks"), NeLocks(lease_s=60) as locks:
            locks.ensure([name])
            with locks.hold([name], wait_s=2), get_client(sync_client=True) as client:
                assert client.read_global_concurrency_limit_by_name(name).active_slots == 1
        assert len(proxy.swallowed) == 1, proxy.swallowed
        assert "the server may have granted it" in caplog.text, caplog.text
        with get_client(sync_client=True) as client:
            assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
    finally:
        proxy.release.set()
        proxy.shutdown()

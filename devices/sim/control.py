"""The simulator's control interface: HTTP/JSON on the control address (simulator side
only; atoms never use it), and `SimControl`, its Python client.

    GET    /nes                      every NE, summarised
    GET    /nes/NAME                 one NE in full (state, faults, sessions)
    POST   /nes/NAME/faults          {"kind": ..., **params}
    DELETE /nes/NAME/faults[/KIND]
    POST   /nes/NAME/alarms          {"severity": ..., "text": ..., "id": optional}
    DELETE /nes/NAME/alarms[/ID]
    GET    /pools                    pools with members and probe counters
    GET    /pools/NAME/probe         {"attempted": n, "failed": n}
    POST   /services/NAME/call       one probe call now, to a pool or an NE in no pool: {"ok": ..., "via": NE, "reason": ...}
    POST   /speed                    {"speed": 0.01}

A small stdlib server: one request per connection, JSON in and out. Routing is a plain
function of (method, path, body) so it is testable without sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from changeline.catalogue import SEVERITIES
from changeline.errors import ChangelineError

from .faults import dial_failure, validate_fault
from .ne_xml import KNOWN_RPCS

if TYPE_CHECKING:
    from .element import SimulatedNE
    from .host import SimHost

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
Response = tuple[int, Any]


def _error(status: int, message: str, problems: list[dict] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    return status, body


def ne_summary(host: SimHost, ne: SimulatedNE) -> dict[str, Any]:
    spec = host.specs[ne.name]
    return {
        "name": ne.name, "type": ne.profile.ne_type, "domain": ne.profile.domain, "status": ne.state,
        "version": ne.running, "previous_version": ne.previous,
        "address": host.topology.client_address(spec), "netconf_port": ne.netconf_port, "ssh_port": ne.ssh_port,
        "pool": ne.pool.name if ne.pool else None,
        "drained": bool(ne.pool and ne.pool.members[ne.name].drained),
        "faults": [f.kind for f in ne.faults],
        "restarts": ne.restarts,
    }


def ne_detail(host: SimHost, ne: SimulatedNE) -> dict[str, Any]:
    return {
        **ne_summary(host, ne),
        "state": ne.status().to_json(),
        "faults": [f.to_json() for f in ne.faults],
        "sessions": ne.session_counts(),
    }


def route(host: SimHost, method: str, path: str, body: Any) -> Response:
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts == ["nes"] and method == "GET":
        return 200, {"nes": [ne_summary(host, ne) for ne in host.nes.values()]}
    if parts == ["pools"] and method == "GET":
        return 200, {"pools": [{"name": p.name, "type": p.ne_type, "calls_per_second": p.calls_per_second,
                                "members": [{"name": n, "up": m.up, "drained": m.drained}
                                            for n, m in p.members.items()],
                                "probe": p.probe()} for p in host.pools.values()]}
    if len(parts) == 3 and parts[0] == "pools" and parts[2] == "probe" and method == "GET":
        pool = host.pools.get(parts[1])
        return (200, pool.probe()) if pool else _error(404, f"no pool {parts[1]!r}")
    if len(parts) == 3 and parts[0] == "services" and parts[2] == "call" and method == "POST":
        return service_call(host, parts[1])
    if parts == ["speed"] and method == "POST":
        speed = body.get("speed") if isinstance(body, dict) else None
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or speed <= 0:
            return _error(400, "body must be {\"speed\": a positive number}")
        host.clock.set_speed(float(speed))
        return 200, {"speed": host.clock.speed}
    if len(parts) >= 2 and parts[0] == "nes":
        ne = host.nes.get(parts[1])
        if ne is None:
            return _error(404, f"no NE {parts[1]!r}")
        return _route_ne(host, ne, method, parts[2:], body)
    return _error(404, f"no route {method} {path}")


def service_call(host: SimHost, name: str) -> Response:
    """One probe call, in real time, to a service: a pool (through its balancer) or an NE in no
    pool. It fails when it has nowhere to go, its NE is not up, or a fault stops the NE answering."""
    pool = host.pools.get(name)
    if pool is not None:
        via = pool.next_probe_target()
    elif name in host.nes and host.nes[name].pool is None:
        via = name
    else:
        return _error(404, f"no pool and no NE outside a pool named {name!r}")
    if via is None:
        return 200, {"service": name, "ok": False, "via": None, "reason": "every member drained"}
    ne = host.nes[via]
    reason = f"{via} is {ne.state}" if ne.state != "up" else dial_failure(ne.faults, ne.running)
    return 200, {"service": name, "ok": reason is None, "via": via, "reason": reason}


def _route_ne(host: SimHost, ne: SimulatedNE, method: str, rest: list[str], body: Any) -> Response:
    if not rest and method == "GET":
        return 200, ne_detail(host, ne)
    if rest == ["faults"] and method == "POST":
        fault, problems = validate_fault(body, kpis=[k.name for k in ne.profile.kpis],
                                         alarm_ids=[a.id for a in ne.profile.alarms], rpcs=KNOWN_RPCS)
        if fault is None:
            return _error(400, "invalid fault", [{"field": f, "message": m} for f, m in problems])
        ne.add_fault(fault)
        return 201, {"faults": [f.to_json() for f in ne.faults]}
    if rest[:1] == ["faults"] and len(rest) <= 2 and method == "DELETE":
        removed = ne.clear_faults(rest[1] if len(rest) == 2 else None)
        return 200, {"cleared": len(removed)}
    if rest == ["alarms"] and method == "POST":
        if not isinstance(body, dict) or body.get("severity") not in SEVERITIES or not isinstance(body.get("text"), str):
            return _error(400, f"body must be {{\"severity\": one of {', '.join(SEVERITIES)}, \"text\": ...}}")
        alarm_id = body.get("id")
        alarm = ne.raise_alarm(body["severity"], body["text"], alarm_id if isinstance(alarm_id, str) else None)
        return 201, {"alarm": asdict(alarm)}
    if rest[:1] == ["alarms"] and len(rest) <= 2 and method == "DELETE":
        return 200, {"cleared": ne.clear_alarms(rest[1] if len(rest) == 2 else None)}
    return _error(404, f"no route {method} /nes/{ne.name}/{'/'.join(rest)}")


class ControlServer:
    def __init__(self, host: SimHost) -> None:
        self._host = host
        self._server: asyncio.base_events.Server | None = None
        self.url = ""

    async def start(self, address: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, address, port)
        bound = self._server.sockets[0].getsockname()
        self.url = f"http://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await self._respond(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            status, payload = _error(400, "malformed HTTP request")
        except Exception:  # noqa: BLE001 - a bug must answer 500, not kill the simulator
            logger.exception("control request failed")
            status, payload = _error(500, "internal error; see the simulator log")
        data = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        request_line = (await reader.readline()).decode("latin-1").split()
        if len(request_line) != 3:
            raise ValueError("bad request line")
        method, path, _ = request_line
        length = 0
        while (line := (await reader.readline()).decode("latin-1").strip()):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length > MAX_BODY:
            return _error(413, "body too large")
        body = None
        if length:
            try:
                body = json.loads(await reader.readexactly(length))
            except json.JSONDecodeError as err:
                return _error(400, f"body is not JSON: {err}")
        return route(self._host, method.upper(), path, body)


class SimControlError(ChangelineError):
    """The control interface refused a request or could not be reached."""

    def __init__(self, message: str, *, status: int = 0, problems: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


class SimControl:
    """Client of a running simulator's control interface."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_state_dir(cls, state_dir: Path | str) -> SimControl:
        info = Path(state_dir) / "sim.json"
        try:
            return cls(json.loads(info.read_text())["control_url"])
        except (OSError, ValueError, KeyError) as err:
            raise SimControlError(f"no running simulator in {state_dir} ({err})") from None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read())
            except ValueError:
                payload = {"error": err.reason}
            problems = payload.get("problems", [])
            detail = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
            raise SimControlError(f"{method} {path}: {payload.get('error')}{': ' + detail if detail else ''}",
                                  status=err.code, problems=problems) from None
        except (urllib.error.URLError, OSError) as err:
            raise SimControlError(f"control interface {self.url} not reachable: {err}") from None

    def nes(self) -> list[dict]:
        return self._call("GET", "/nes")["nes"]

    def ne(self, name: str) -> dict:
        return self._call("GET", f"/nes/{name}")

    def add_fault(self, name: str, kind: str, **params: Any) -> list[dict]:
        return self._call("POST", f"/nes/{name}/faults", {"kind": kind, **params})["faults"]

    def clear_faults(self, name: str, kind: str | None = None) -> int:
        return self._call("DELETE", f"/nes/{name}/faults" + (f"/{kind}" if kind else ""))["cleared"]

    def raise_alarm(self, name: str, severity: str, text: str, alarm_id: str | None = None) -> dict:
        body = {"severity": severity, "text": text, **({"id": alarm_id} if alarm_id else {})}
        return self._call("POST", f"/nes/{name}/alarms", body)["alarm"]

    def clear_alarms(self, name: str, alarm_id: str | None = None) -> int:
        return self._call("DELETE", f"/nes/{name}/alarms" + (f"/{alarm_id}" if alarm_id else ""))["cleared"]

    def pools(self) -> list[dict]:
        return self._call("GET", "/pools")["pools"]

    def probe(self, pool: str) -> dict[str, int]:
        return self._call("GET", f"/pools/{pool}/probe")

    def call_service(self, name: str) -> dict[str, Any]:
        return self._call("POST", f"/services/{name}/call", {})

    def set_speed(self, speed: float) -> float:
        return self._call("POST", "/speed", {"speed": speed})["speed"]

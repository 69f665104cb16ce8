"""A finished demo campaign, a Prefect server whose UI talks to its own API, and headless
Chromium that may fetch nothing but 127.0.0.1 and local files."""

from __future__ import annotations

import json
import os
import random
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from changeline.flows.server import healthy
from tests.prefectfixture import start_prefect_server, stop
from tests.simfixture import cli, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
LOCAL = ("http://127.0.0.1", "file:", "data:", "blob:")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Skipped without Chromium, except in CI (CHANGELINE_CI=1), where a missing browser fails."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"needs headless Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "needs playwright (pip install -e '.[test]')"
    if missing and os.environ.get("CHANGELINE_CI") == "1":
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture(scope="session")
def prefect_api():
    """The session's test server: another package's fixture may have started it already
    (tests/conftest.py gives the whole session one port)."""
    api = os.environ["PREFECT_API_URL"]
    if healthy(api):
        yield api
        return
    proc, api, _home = start_prefect_server()
    yield api
    stop(proc)


class Api:
    """The few Prefect REST reads the checks need (what the UI itself reads)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def post(self, path: str, body: dict) -> list | dict:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def flow_runs(self, **flow_runs) -> list[dict]:
        return self.post("/flow_runs/filter", {"flow_runs": flow_runs, "limit": 50})

    def runs_named(self, name: str) -> list[dict]:
        return self.flow_runs(name={"any_": [name]})

    def children(self, parent_id: str, *states: str) -> list[dict]:
        filters = {"parent_flow_run_id": {"any_": [parent_id]}}
        if states:
            filters["state"] = {"type": {"any_": list(states)}}
        return self.flow_runs(**filters)

    def latest_artifact(self, key: str) -> dict:
        found = self.post("/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}})
        assert found, f"no artifact {key}"
        return found[0]


@contextmanager
def env_setting(name: str, value: str) -> Iterator[None]:
    """One environment variable set for a module's demo run, then put back."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@pytest.fixture(scope="module")
def demo_run(chromium, prefect_api, tmp_path_factory):
    """`changeline demo`'s code path on test settings: 8 NEs on addresses of their own, a
    CHANGELINE_HOME in tmp, the session's Prefect server; the simulator stays up for the
    pause check and is stopped here."""
    from changeline.demo import DemoSettings, run_demo

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("demo-home")
    os.environ["CHANGELINE_HOME"] = str(home)
    settings = DemoSettings(nes=8, keep=True, address_base=f"127.{random.randint(60, 250)}.{random.randint(1, 250)}.1",
                            control_port=free_port(), campaign_id=f"ui-demo-{random.randint(1000, 9999)}")
    lines: list[str] = []
    try:
        result = run_demo(settings, echo=lines.append)
        yield result
    finally:
        from changeline.demo import stop_demo

        stop_demo(home, stop_prefect=False)  # the simulator and the rollback service; the server is the session's
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def api(prefect_api) -> Api:
    return Api(prefect_api)


@dataclass
class Browser:
    context: object
    blocked: list[str] = field(default_factory=list)  # requests that tried to leave the machine


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(chromium), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1500, "height": 1000})
        held = Browser(context)

        def only_local(route):
            if route.request.url.startswith(LOCAL):
                route.continue_()
            else:
                held.blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        try:
            yield held
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.context.new_page()
    page.set_default_timeout(30_000)
    yield page
    page.close()


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path

"""The report page in headless Chromium: the timeline renders and nothing is fetched from outside."""

from __future__ import annotations

import shutil

import pytest

from changeline.reports.build import build_campaign_report
from tests.reports.sample_run import CAMPAIGN, PROBES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs headless Chromium (apt-get install chromium)"),
]


def test_timeline_renders_one_row_per_ne_without_outside_requests(sample):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    paths = build_campaign_report(CAMPAIGN, probes=PROBES)
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda req: None if req.url.startswith("file:") else outside.append(req.url))
            page.goto(paths.html.as_uri())
            timeline = page.locator("svg#timeline")
            timeline.wait_for()
            rows = page.locator("#timeline g.ne-row")
            assert rows.count() == 4
            box = timeline.bounding_box()
            assert box and box["width"] > 600 and box["height"] > 4 * 15
            bars = page.locator("#timeline rect.bar")
            assert bars.count() >= 20 and all(bars.nth(i).bounding_box()["width"] > 0 for i in range(bars.count()))
            assert page.locator("#automation-per-ne").inner_text() == "33.3%"  # 1 of 3 targeted NEs
            assert page.locator("#automation-per-step").inner_text() == "94.7%"
            assert page.locator("#ne-smf-1").get_attribute("open") is not None
        finally:
            browser.close()
    assert outside == []

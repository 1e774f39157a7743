"""The control-room console in a real browser (Debian's chromium, driven by Playwright), in front of
the whole stack as processes, with an alert raised by the pipeline from a real video.

`make screenshots` runs this with LFR_TEST_SCREENSHOT=docs/console.png to refresh the picture of docs/alerts.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts import AUDIT_RECORDED
from lfr_contracts.clients import DeploymentClient
from lfr_platform.settings import PlatformSettings
from lfr_testing.kafka import decoded, read
from lfr_testing.stack import drained, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-background-networking",  # this machine's network is closed: no calls home
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: apt-get install chromium (`make install` does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _sign_in(page, url: str, token: str, officer: str) -> None:
    page.goto(url)
    page.fill("#officer", officer)
    page.fill("#token", token)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#console", state="visible", timeout=30_000)


def test_officers_see_a_live_alert_beside_its_watchlist_image_and_decide_it(chromium, stack, tmp_path, data_dir):
    state = stack.start(services=("deployments", "detect", "embed", "match", "alert", "console"))
    url = state.console_url
    deployments = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=60)
    request = pb.CreateDeploymentRequest(
        name="Op Console",
        purpose="wanted persons",
        authorising_officer="Supt. Example",
        location="test bench",
        where="intelligence_led",
        cameras=[pb.CameraCoverage(van_id="van-1", camera_id="cam-1")],
    )
    request.planned_end.FromSeconds(int(time.time() + 3600))
    deployment_id = deployments.create(request).deployment_id
    items = scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="Insp. B")
    list(deployments.enrol(deployment_id, iter_messages(items)))
    deployments.review(deployment_id, "Insp. Reviewer")

    officer = chromium.new_context()
    page = officer.new_page()
    _sign_in(page, url, state.tokens["officer"], "PC 1234")
    page.wait_for_function(
        "id => [...document.querySelectorAll('#deployment option')].some(o => o.value === id)", arg=deployment_id
    )
    assert page.locator("li.alert").count() == 0

    # The pipeline raises an alert from a real video: it appears without a reload.
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    camera = {"camera_id": "cam-1", "deployment_id": deployment_id, "source": str(video), "fps": 5}
    stack.start_service("ingest", cameras=[camera], van_id="van-1")
    card = page.locator("li.alert").first
    card.wait_for(timeout=180_000)
    assert "liveportrait-d0" in card.inner_text() and "waiting for a decision" in card.inner_text()
    # The scene (composed by detect from the frame, other faces covered) or why there is none, and the
    # deployment's counters from its report.
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.alert')].every(c => c.dataset.scene && c.dataset.scene !== 'loading')",
        timeout=30_000,
    )
    if card.get_attribute("data-scene") == "none":
        assert card.locator(".scene-caption").inner_text().startswith("no scene: ")
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.alert img')].filter(i => i.checkVisibility())"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    page.wait_for_function(
        "() => !document.getElementById('counters').hidden"
        " && Number(document.querySelector('[data-counter=faces_scanned]').textContent) > 0"
        " && Number(document.querySelector('[data-counter=alerts]').textContent) > 0",
        timeout=30_000,
    )
    screenshot = tmp_path / "console.png"
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("LFR_TEST_SCREENSHOT"):
        Path(os.environ["LFR_TEST_SCREENSHOT"]).write_bytes(screenshot.read_bytes())

    # The clip has played: with ingest stopped and what was in flight through every stage, the alert
    # no longer changes. The console sends the revision the officer saw with each decision, and a match
    # folded in meanwhile makes it stale: refused, as it must be ("Not recorded: ... has changed").
    stack.stop_service("ingest")
    eventually(lambda: drained(stack), timeout_s=120)
    page.reload()
    card.wait_for()

    # Images: served to this user only, never cacheable.
    alert_id = card.get_attribute("data-alert-id")
    probe = officer.request.get(f"{url}api/alerts/{alert_id}/probe.jpg")
    assert probe.status == 200 and probe.headers["cache-control"] == "no-store"
    assert probe.headers["content-type"] == "image/jpeg"
    anonymous = chromium.new_context()
    assert anonymous.request.get(f"{url}api/alerts/{alert_id}/probe.jpg").status == 401
    assert anonymous.request.get(f"{url}api/alerts/{alert_id}/reference.jpg").status == 401

    # Deciding by click, then by keyboard; both survive a reload.
    card.locator("button[data-outcome=true]").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-alert-id=\"{alert_id}\"]').dataset.state === 'adjudicated'"
    )
    assert "adjudicated true (PC 1234)" in page.locator(f'[data-alert-id="{alert_id}"]').inner_text()
    page.reload()
    again = page.locator(f'[data-alert-id="{alert_id}"]')
    again.wait_for()
    assert again.get_attribute("data-state") == "adjudicated"
    again.locator(".facts").click()  # select it
    page.wait_for_function(
        f"() => document.querySelector('[data-alert-id=\"{alert_id}\"]').classList.contains('selected')"
    )
    page.keyboard.press("y")  # engaged
    page.wait_for_function(
        f"() => document.querySelector('[data-alert-id=\"{alert_id}\"]').dataset.state === 'engaged'"
    )
    page.reload()
    page.locator(f'[data-alert-id="{alert_id}"][data-state="engaged"]').wait_for()

    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    # Playwright's sync API runs an event loop in this thread: read the topic in another one.
    with ThreadPoolExecutor(1) as pool:
        records = pool.submit(asyncio.run, read(platform, AUDIT_RECORDED, count=1, settle_s=1)).result()
    audit = decoded(AUDIT_RECORDED, records)
    decisions = [(a.event, a.actor, a.details["officer"]) for a in audit if a.event.startswith("alert.")]
    assert decisions == [
        ("alert.adjudicated", "local-officer", "PC 1234"),
        ("alert.engagement_recorded", "local-officer", "PC 1234"),
    ]

    # A viewer sees the alert but no buttons, and the server refuses a decision sent anyway.
    viewer = chromium.new_context().new_page()
    _sign_in(viewer, url, state.tokens["viewer"], "Analyst 7")
    viewer.locator(f'[data-alert-id="{alert_id}"]').wait_for()
    assert viewer.locator(f'[data-alert-id="{alert_id}"] .actions').is_hidden()
    refused = viewer.evaluate(
        """async (id) => {
            const session = await (await fetch('/api/session')).json();
            const r = await fetch(`/api/alerts/${id}/outcome`, {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf},
                body: JSON.stringify({outcome: 'arrest'})});
            return r.status;
        }""",
        alert_id,
    )
    assert refused == 403
    # A forged post without the CSRF token changes nothing either.
    forged = page.evaluate(
        """async (id) => (await fetch(`/api/alerts/${id}/outcome`, {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: JSON.stringify({outcome: 'arrest'})})).status""",
        alert_id,
    )
    assert forged == 403

    # The AlertService goes away: the page says so, and recovers by itself when it is back.
    stack.stop_service("alert")
    page.wait_for_selector("#banner:has-text('Cannot reach the AlertService')", timeout=30_000)
    stack.start_service("alert")
    stack.wait_ready(("alert",), 120)
    page.wait_for_selector("#banner", state="hidden", timeout=30_000)

    # Closed: the queue empties by itself, the images are gone.
    deployments.close(deployment_id, "operation over")
    page.wait_for_function("() => document.querySelectorAll('li.alert').length === 0", timeout=30_000)
    assert officer.request.get(f"{url}api/alerts/{alert_id}/probe.jpg").status == 410
    assert officer.request.get(f"{url}api/alerts/{alert_id}/reference.jpg").status == 410

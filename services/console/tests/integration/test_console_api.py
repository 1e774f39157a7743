"""The console over real HTTP, in front of a real AlertService and DeploymentService (deployments and alert
in this loop, on the real broker and Redis): sessions, CSRF, headers, images, and bad requests."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from lfr.v1 import deployments_pb2 as pb
from lfr_alert.app import build as build_alert
from lfr_alert.settings import AlertSettings
from lfr_console.app import build as build_console
from lfr_console.settings import ConsoleSettings
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND
from lfr_deployments.app import build as build_deployments
from lfr_platform.signing import new_alert_key, sign_alert
from lfr_testing.deployments import (
    MANAGER_TOKEN,
    OFFICER_TOKEN,
    TEST_GRANTS,
    VIEWER_TOKEN,
    Api,
    create_request,
    deployments_settings,
    provenance,
)
from lfr_testing.kafka import produce, read
from lfr_testing.media import lfw
from lfr_testing.messages import match_record
from lfr_testing.plugin import Eventually
from lfr_testing.services import deployment_key, running

pytestmark = pytest.mark.integration


class Browser:
    """An HTTP client with a cookie jar, as a browser on the console's origin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def call(self, method: str, path: str, *, json_body=None, headers=None, data=None):
        headers = {"Origin": self.base, **(headers or {})}
        async with self.session.request(method, self.base + path, json=json_body, data=data, headers=headers) as r:
            body = await r.read()
            return r.status, r.headers, body

    async def sign_in(self, token: str, officer: str = "PC 1234"):
        status, headers, body = await self.call("POST", "/api/session", json_body={"token": token, "officer": officer})
        if status == 200:
            self.csrf = json.loads(body)["csrf"]
        return status, headers, body

    async def decide(self, alert_id: str, step: str, body: dict, csrf: str | None = None):
        return await self.call(
            "POST",
            f"/api/alerts/{alert_id}/{step}",
            json_body=body,
            headers={"X-CSRF-Token": self.csrf if csrf is None else csrf},
        )

    async def close(self) -> None:
        await self.session.close()


SCOPED_TOKEN = "scoped-token-for-tests-0123456789"


@pytest.fixture
async def stack(platform, tmp_path):
    """deployments, alert and console, each as it runs in production, in this loop, sharing a token file
    that also grants an officer of another deployment only."""
    tokens = tmp_path / "tokens.json"
    scoped = {"token": SCOPED_TOKEN, "identity": "officer-elsewhere", "role": "officer", "deployments": ["dep-none*"]}
    tokens.write_text(json.dumps([*TEST_GRANTS, scoped]))
    platform = platform.model_copy(update={"auth_tokens": "[]", "auth_tokens_file": tokens})
    deployments = build_deployments(platform, deployments_settings(tmp_path))
    alert = build_alert(platform, AlertSettings(http_port=0, grpc_port=0, sweep_interval_s=0.2))
    async with running(deployments), running(alert):
        console = build_console(
            platform,
            ConsoleSettings(
                http_port=0,
                web_port=0,
                alert_address=f"127.0.0.1:{alert.control.port}",
                deployment_address=f"127.0.0.1:{deployments.control.port}",
                refresh_s=0.2,
                session_idle_s=60,
            ),
        )
        async with running(console):
            yield deployments, alert, console


@pytest.fixture
async def browser(stack):
    _, _, console = stack
    browser = Browser(f"http://127.0.0.1:{console.web.port}")
    yield browser
    await browser.close()


async def _alert(platform, stack, data_dir):
    """A deployment with one enrolled person, and an alert for them (from a produced match)."""
    deployments, _, _ = stack
    api = Api(deployments.control.port, MANAGER_TOKEN)
    deployment = await api("create", create_request())
    image = pb.WatchlistImage(
        **provenance(),
        client_ref="1",
        subject_id="S-1",
        category="wanted",
        source_reference="PNC/1",
        approved_by="Insp. B",
        image=lfw(data_dir, "Colin_Powell", 1).read_bytes(),
    )
    [enrolled] = await api.enrol(deployment.deployment_id, [image])
    await api("review", deployment.deployment_id, "Insp. R")
    data_key = await deployment_key(platform, deployment.deployment_id)
    key, value = match_record(
        deployment.deployment_id, "cam-1", "S-1", 1, 0.9, entry_id=enrolled.entry_id, key=data_key
    )
    await produce(platform, MATCHES_FOUND, [(key, value)])
    return deployment.deployment_id, api


class EventStream:
    """The page's event stream (/api/events), read event by event."""

    def __init__(self, browser: Browser, deployment_id: str) -> None:
        self.browser = browser
        self.deployment_id = deployment_id
        self.events: list[tuple[str, dict]] = []
        self.ended = False

    async def __aenter__(self) -> EventStream:
        self._response = await self.browser.session.get(
            f"{self.browser.base}/api/events?deployment={self.deployment_id}", headers={"Origin": self.browser.base}
        )
        assert self._response.status == 200
        await self.until(lambda kind, _: kind == "status")  # subscribed
        return self

    async def __aexit__(self, *_) -> None:
        self._response.close()

    async def until(self, wanted, timeout_s: float = 30.0) -> tuple[str, dict] | None:
        """Read until an event `wanted(kind, data)` arrives (returned) or the stream ends (None)."""
        kind = ""
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self._response.content.readline()
                if not line:
                    self.ended = True
                    return None
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: ") :])
                    self.events.append((kind, data))
                    if wanted(kind, data):
                        return kind, data


async def _alerts(browser: Browser, deployment_id: str, count: int = 1) -> list[dict]:
    async def listed():
        status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
        assert status == 200, body
        alerts = json.loads(body)
        assert len(alerts) >= count, alerts
        return alerts

    return await Eventually()(listed, timeout_s=30)


async def test_sign_in_gives_a_strict_cookie_and_every_answer_is_locked_down(browser):
    status, headers, body = await browser.sign_in(OFFICER_TOKEN)
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP here
    assert (
        "default-src 'none'" in headers["Content-Security-Policy"]
        and "script-src 'self'" in headers["Content-Security-Policy"]
    )
    assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
    status, headers, page = await browser.call("GET", "/")
    assert status == 200 and b'<script src="/static/console.js"' in page and b"<script>" not in page
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    session = json.loads((await browser.call("GET", "/api/session"))[2])
    assert (session["identity"], session["role"], session["officer"], session["may_decide"]) == (
        "control-room-1",
        "officer",
        "PC 1234",
        True,
    )


@pytest.mark.parametrize(
    "body, headers, status",
    [
        ({"token": "not-a-token-of-anyone-at-all", "officer": "PC 1"}, {}, 401),
        ({"token": OFFICER_TOKEN, "officer": ""}, {}, 400),
        ({"token": OFFICER_TOKEN, "officer": "PC 1"}, {"Origin": "https://evil.example"}, 403),
    ],
)
async def test_bad_sign_ins_are_refused(browser, body, headers, status):
    got, _, answer = await browser.call("POST", "/api/session", json_body=body, headers=headers)
    assert got == status and json.loads(answer)["error"]
    assert (await browser.call("GET", "/api/session"))[0] == 401


async def test_malformed_and_huge_requests_are_refused(browser):
    status, _, _ = await browser.call("POST", "/api/session", data=b"token=x", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = await browser.call(
        "POST", "/api/session", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    status, _, _ = await browser.call(
        "POST", "/api/session", data=b"x" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert status == 413


async def test_decisions_need_the_csrf_token_and_an_officer_role(platform, stack, browser, data_dir):
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    [alert] = await _alerts(browser, deployment_id)
    # A forged post (no token, a wrong one, another origin) changes nothing.
    for csrf, headers in (("", {}), ("forged", {}), (None, {"Origin": "https://evil.example"})):
        status, _, _ = await browser.call(
            "POST",
            f"/api/alerts/{alert['alert_id']}/adjudication",
            json_body={"outcome": "true"},
            headers={"X-CSRF-Token": browser.csrf if csrf is None else csrf, **headers},
        )
        assert status == 403
    assert (await _alerts(browser, deployment_id))[0]["state"] == "raised"
    status, _, body = await browser.decide(alert["alert_id"], "adjudication", {"outcome": "maybe"})
    assert status == 400
    status, _, body = await browser.decide(alert["alert_id"], "engagement", {"engaged": True})
    assert status == 409 and "not adjudicated yet" in json.loads(body)["error"]  # out of order
    status, _, body = await browser.decide(alert["alert_id"], "adjudication", {"outcome": "true"})
    decided = json.loads(body)
    assert status == 200 and decided["state"] == "adjudicated" and decided["outcome"] == "true"
    assert decided["adjudication"]["officer"] == "PC 1234"

    viewer = Browser(browser.base)
    try:
        await viewer.sign_in(VIEWER_TOKEN, "Analyst 7")
        session = json.loads((await viewer.call("GET", "/api/session"))[2])
        assert session["may_decide"] is False
        status, _, _ = await viewer.decide(alert["alert_id"], "engagement", {"engaged": True})
        assert status == 403
    finally:
        await viewer.close()


async def test_images_only_to_a_signed_in_user_never_cached_and_gone_after_close(platform, stack, browser, data_dir):
    deployment_id, api = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    [alert] = await _alerts(browser, deployment_id)
    path = f"/api/alerts/{alert['alert_id']}"
    anonymous = Browser(browser.base)
    try:
        assert (await anonymous.call("GET", f"{path}/probe.jpg"))[0] == 401
    finally:
        await anonymous.close()
    for image, expected in (("probe", b"crop-1"), ("reference", b"\xff\xd8")):
        status, headers, body = await browser.call("GET", f"{path}/{image}.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and body.startswith(expected)
        assert headers["Cache-Control"] == "no-store"
    assert (await browser.call("GET", f"{path}/other.jpg"))[0] == 404

    closed = await api("close", deployment_id, "operation over")
    assert closed.deletion.reference_images_deleted == 1
    for image in ("probe", "reference"):
        assert (await browser.call("GET", f"{path}/{image}.jpg"))[0] == 410
    status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
    assert status == 200 and json.loads(body) == []
    assert (await browser.call("GET", f"/api/events?deployment={deployment_id}"))[0] == 410


async def test_an_ended_session_and_an_unreachable_service_get_a_clear_answer(platform, stack, browser, data_dir):
    deployments, alert, console = stack
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    [first] = await _alerts(browser, deployment_id)
    client = aioredis.from_url(platform.redis_url)
    async for key in client.scan_iter(match=f"{platform.redis_prefix}:console:session:*"):
        await client.delete(key)  # as when the idle time or the shift runs out
    await client.aclose()
    status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
    assert status == 401 and "sign in again" in json.loads(body)["error"]
    status, _, _ = await browser.decide(first["alert_id"], "adjudication", {"outcome": "true"})
    assert status == 401

    await browser.sign_in(OFFICER_TOKEN)
    await alert.control.server.stop(grace_s=0)  # the AlertService goes away
    status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
    assert status == 503 and "cannot be reached" in json.loads(body)["error"]


async def test_a_token_limited_to_other_deployments_sees_nothing_of_this_one(platform, stack, browser, data_dir):
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    [alert] = await _alerts(browser, deployment_id)
    other = Browser(browser.base)
    try:
        assert (await other.sign_in(SCOPED_TOKEN))[0] == 200
        assert json.loads((await other.call("GET", "/api/deployments"))[2]) == []
        assert (await other.call("GET", f"/api/alerts?deployment={deployment_id}"))[0] == 403
        assert (await other.call("GET", f"/api/events?deployment={deployment_id}"))[0] == 403
        # An alert of a deployment it may not see answers as an unknown id would: 404, not 403.
        for alert_id in (alert["alert_id"], "no-such-alert"):
            assert (await other.call("GET", f"/api/alerts/{alert_id}/probe.jpg"))[0] == 404
            status, _, _ = await other.decide(alert_id, "adjudication", {"outcome": "false"})
            assert status == 404
    finally:
        await other.close()
    assert (await _alerts(browser, deployment_id))[0]["state"] == "raised"


def _refused(reason: str) -> float:
    return REGISTRY.get_sample_value("lfr_alert_revisions_refused_total", {"reason": reason}) or 0.0


async def test_the_console_drops_forged_and_out_of_order_revisions(platform, stack, browser, data_dir):
    """Bus failure 3: a record produced onto alerts.raised.v1 put a forged subject into officers'
    queues, and revision 999 of a real alert hid its buttons."""
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    [alert] = await _alerts(browser, deployment_id)
    forged_before, older_before = _refused("forged"), _refused("out_of_order")
    async with EventStream(browser, deployment_id) as stream:
        # Revision 2, seen on the stream: the feed has read revisions 1 and 2 (one partition, in order).
        status, _, body = await browser.decide(alert["alert_id"], "adjudication", {"outcome": "true"})
        assert status == 200, body
        await stream.until(lambda kind, data: kind == "alert" and data["revision"] == 2)
        seen = len(stream.events)
        genuine = await read(platform, ALERTS_RAISED, count=2)
        forged = ALERTS_RAISED.decode(genuine[0].value)
        forged.subject_id, forged.score = "FORGED-subject", 0.99  # altered under a genuine signature
        ahead = ALERTS_RAISED.decode(genuine[1].value)
        ahead.revision, ahead.state = 999, ahead.state + 1  # a later revision, its signature kept
        other = ALERTS_RAISED.decode(genuine[0].value)
        other.subject_id = "FORGED-other-key"
        sign_alert(new_alert_key()[0], other)  # signed, but not with this deployment's key
        unsigned = ALERTS_RAISED.decode(genuine[0].value)
        unsigned.ClearField("signature")
        replays = [r.value for r in genuine]  # genuine, but not newer than what was shown
        records = [m.SerializeToString() for m in (forged, ahead, other, unsigned)] + replays
        await produce(platform, ALERTS_RAISED, [(genuine[0].key, value) for value in records])
        # A genuine later revision, on the same partition after them all: the sign that they were read.
        status, _, body = await browser.decide(alert["alert_id"], "engagement", {"engaged": True})
        assert status == 200, body
        await stream.until(lambda kind, data: kind == "alert" and data["revision"] == 3)
    shown = [data for kind, data in stream.events[seen:] if kind == "alert"]
    assert [(a["alert_id"], a["revision"], a["subject_id"]) for a in shown] == [(alert["alert_id"], 3, "S-1")]
    # (out_of_order: the two replays, and any revision the outbox delivered twice: at least once.)
    assert _refused("forged") - forged_before == 4 and _refused("out_of_order") - older_before >= 2
    assert (await _alerts(browser, deployment_id))[0]["state"] == "engaged"


async def test_sign_out_ends_every_open_event_stream_at_once(platform, stack, browser, data_dir):
    """Bus failure 5: alert events kept arriving 69 s after sign-out (the session was re-checked only
    after 15 s without events)."""
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    first_alert = (await _alerts(browser, deployment_id))[0]["alert_id"]
    watcher = Browser(browser.base)  # another officer, still signed in
    try:
        await watcher.sign_in(OFFICER_TOKEN, "PC 9")
        async with EventStream(browser, deployment_id) as first, EventStream(browser, deployment_id) as second:
            async with EventStream(watcher, deployment_id) as watching:
                status, _, _ = await browser.call("DELETE", "/api/session", headers={"X-CSRF-Token": browser.csrf})
                assert status == 200
                # A later pass (five minutes after the first): a new alert, on every open stream.
                data_key = await deployment_key(platform, deployment_id)
                later = match_record(deployment_id, "cam-1", "S-1", 2, 0.9, time.time() + 300, key=data_key)
                await produce(platform, MATCHES_FOUND, [later])
                await watching.until(lambda kind, data: kind == "alert" and data["alert_id"] != first_alert)
                # ... but not on the streams of the session signed out before it: they ended at once.
                # (The first alert's event may have reached them before the sign-out: it was theirs.)
                for stream in (first, second):
                    assert (
                        await stream.until(lambda kind, data: kind == "alert" and data["alert_id"] != first_alert)
                        is None
                    )
                    assert stream.events[-1][0] == "signed_out"
        assert not any(
            kind == "alert" and data["alert_id"] != first_alert for kind, data in first.events + second.events
        )
    finally:
        await watcher.close()


async def test_an_event_stream_left_early_is_closed_quietly(platform, stack, browser, data_dir, caplog, eventually):
    """Bus gap: the console logged a traceback when an event-stream client left early."""
    _, _, console = stack
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    first_alert = (await _alerts(browser, deployment_id))[0]["alert_id"]
    feed = console.web.console.feed
    watcher = Browser(browser.base)
    try:
        await watcher.sign_in(OFFICER_TOKEN, "PC 9")
        async with EventStream(watcher, deployment_id) as watching:
            async with EventStream(browser, deployment_id):
                pass  # the page goes away at once: its connection is closed under the stream
            data_key = await deployment_key(platform, deployment_id)
            later = match_record(deployment_id, "cam-1", "S-1", 2, 0.9, time.time() + 300, key=data_key)
            await produce(platform, MATCHES_FOUND, [later])  # an event to write to the stream that left
            await watching.until(lambda kind, data: kind == "alert" and data["alert_id"] != first_alert)

            async def only_the_watcher_left():
                assert feed.streams == 1

            await eventually(only_the_watcher_left, timeout_s=30)
    finally:
        await watcher.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text[-2000:]


async def _lookalike_alert(platform, stack, data_dir, min_margin: float = 0.05):
    """A deployment whose policy holds alerts within `min_margin`, and an alert for S-1 whose runner-up
    (another subject, its id with markup in it: shown as text) scores 0.71 against its 0.73: held."""
    from lfr_platform.registry import RedisKeys

    deployments, _, _ = stack
    api = Api(deployments.control.port, MANAGER_TOKEN)
    deployment_id = (await api("create", create_request())).deployment_id
    image = pb.WatchlistImage(
        **provenance(),
        client_ref="1",
        subject_id="S-1",
        category="wanted",
        source_reference="PNC/1",
        approved_by="Insp. B",
        image=lfw(data_dir, "Colin_Powell", 1).read_bytes(),
    )
    [enrolled] = await api.enrol(deployment_id, [image])
    await api("review", deployment_id, "Insp. R")  # nothing is matched or alerted before the review
    client = aioredis.from_url(platform.redis_url)
    try:  # the policy's min_margin, as the deployments service copies it into the deployment's record
        await client.hset(RedisKeys(platform.redis_prefix).deployment(deployment_id), "min_margin", repr(min_margin))
    finally:
        await client.aclose()
    data_key = await deployment_key(platform, deployment_id)
    key, value = match_record(
        deployment_id, "cam-1", "S-1", 1, 0.73, entry_id=enrolled.entry_id, key=data_key,
        runner_up="S-2 <b>brother</b>", runner_up_score=0.71,
    )  # fmt: skip
    await produce(platform, MATCHES_FOUND, [(key, value)])
    return deployment_id


async def test_an_alert_shows_its_runner_up_and_margin_and_a_held_one_is_a_supervisors_to_decide(
    platform, stack, browser, data_dir
):
    """Issue 18 (lookalikes): the console's alerts carry the runner-up, the margin and the hold with its
    reason; an officer's adjudication of a held alert is refused (409), a supervisor's recorded."""
    from lfr_testing.deployments import SUPERVISOR_TOKEN

    deployment_id = await _lookalike_alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    session = json.loads((await browser.call("GET", "/api/session"))[2])
    assert (session["may_decide"], session["may_decide_held"]) == (True, False)
    [alert] = await _alerts(browser, deployment_id)
    assert (alert["runner_up_subject_id"], alert["runner_up_score"], alert["margin"]) == (
        "S-2 <b>brother</b>",
        0.71,
        0.02,
    )
    assert alert["held_for_supervisor"] is True
    assert alert["hold_reason"] == (
        "runner-up S-2 <b>brother</b> scores 0.710, within 0.020 of 0.730 (the policy's min_margin 0.05): "
        "a supervisor decides"
    )
    status, _, body = await browser.decide(alert["alert_id"], "adjudication", {"outcome": "true"})
    assert status == 409 and "held for a supervisor" in json.loads(body)["error"]

    supervisor = Browser(browser.base)
    try:
        await supervisor.sign_in(SUPERVISOR_TOKEN, "Sgt 9")
        assert json.loads((await supervisor.call("GET", "/api/session"))[2])["may_decide_held"] is True
        status, _, body = await supervisor.decide(alert["alert_id"], "adjudication", {"outcome": "false"})
        decided = json.loads(body)
        assert status == 200 and decided["outcome"] == "false" and decided["adjudication"]["role"] == "supervisor"
        assert decided["held_for_supervisor"] is True and decided["runner_up_subject_id"] == "S-2 <b>brother</b>"
    finally:
        await supervisor.close()


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _cards(url: str, logins: list[tuple[str, str]]) -> list[dict]:
    """Each user's first alert card as the page renders it (Playwright's sync API: in a thread of its own)."""
    import shutil

    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: apt-get install chromium (`make install` does it)")
    seen = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            for token, officer in logins:
                page = chromium.new_context().new_page()
                page.goto(url)
                page.fill("#officer", officer)
                page.fill("#token", token)
                page.click("#sign-in button[type=submit]")
                card = page.locator("li.alert").first
                card.wait_for(timeout=30_000)
                seen.append(
                    {
                        "runner_up": card.locator(".runner-up").inner_text(),
                        "hold": card.locator(".hold").inner_text() if card.locator(".hold").is_visible() else None,
                        "state": card.locator(".state").inner_text(),
                        "adjudicate": card.locator(".step.adjudication").is_visible(),
                        "markup": card.locator(".facts b").count(),
                    }
                )
        finally:
            chromium.close()
    return seen


@pytest.mark.browser
async def test_the_alert_card_shows_the_runner_up_the_margin_and_the_hold_without_buttons_for_an_officer(
    platform, stack, data_dir
):
    """The card, rendered in a real browser: the runner-up and the margin as text (its markup escaped),
    the hold and its reason, and the adjudication buttons for a supervisor only."""
    from lfr_testing.deployments import SUPERVISOR_TOKEN

    _, _, console = stack
    await _lookalike_alert(platform, stack, data_dir)
    officer, supervisor = await asyncio.to_thread(
        _cards, f"http://127.0.0.1:{console.web.port}/", [(OFFICER_TOKEN, "PC 1234"), (SUPERVISOR_TOKEN, "Sgt 9")]
    )
    for card in (officer, supervisor):
        assert card["runner_up"] == "runner-up S-2 <b>brother</b> 0.710 \u00b7 margin 0.020"
        assert card["hold"].startswith("Held for a supervisor: runner-up S-2 <b>brother</b> scores 0.710")
        assert card["state"] == "waiting for a supervisor's decision" and card["markup"] == 0
    assert (officer["adjudicate"], supervisor["adjudicate"]) == (False, True)


async def test_an_adjudication_carries_the_officers_perceived_groups_from_the_deployments_lists(
    platform, stack, browser, data_dir
):
    """Issue 19 (the equity monitor): the console offers the deployment's lists (the policy's) and sends
    the chosen values with the adjudication; a value outside them is refused with the list named."""
    deployment_id, _ = await _alert(platform, stack, data_dir)
    await browser.sign_in(OFFICER_TOKEN)
    listed = json.loads((await browser.call("GET", "/api/deployments"))[2])
    lists = next(d for d in listed if d["deployment_id"] == deployment_id)["perceived_groups"]
    assert lists == {"sex": ["female", "male"], "ethnicity": ["IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9"]}
    [alert] = await _alerts(browser, deployment_id)
    for body, status, error in (
        ({"outcome": "false", "perceived_ethnicity": "IC7"}, 400, "IC1, IC2, IC3, IC4, IC5, IC6, IC9"),
        ({"outcome": "false", "perceived_sex": ["male"]}, 400, "values of the deployment's lists"),
    ):
        answer, _, text = await browser.decide(alert["alert_id"], "adjudication", body)
        assert answer == status and error in json.loads(text)["error"]
    answer, _, text = await browser.decide(
        alert["alert_id"], "adjudication", {"outcome": "false", "perceived_sex": "male", "perceived_ethnicity": "IC3"}
    )
    decided = json.loads(text)
    assert answer == 200 and (decided["perceived_sex"], decided["perceived_ethnicity"]) == ("male", "IC3")


def _choose_and_decide(url: str) -> str:
    """An officer chooses a perceived ethnicity on the first card and clicks False; the card's state text."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_context().new_page()
            page.goto(url)
            page.fill("#officer", "PC 1234")
            page.fill("#token", OFFICER_TOKEN)
            page.click("#sign-in button[type=submit]")
            card = page.locator("li.alert").first
            card.wait_for(timeout=30_000)
            card.locator(".perceived-ethnicity").select_option("IC4")
            card.locator("button[data-outcome=false]").click()
            state = page.locator("li.alert .state").first
            state.filter(has_text="perceived").wait_for(timeout=30_000)
            return state.inner_text()
        finally:
            chromium.close()


@pytest.mark.browser
async def test_an_officer_records_a_perceived_group_on_the_card(platform, stack, data_dir):
    _, _, console = stack
    await _alert(platform, stack, data_dir)
    text = await asyncio.to_thread(_choose_and_decide, f"http://127.0.0.1:{console.web.port}/")
    assert text == "adjudicated false (PC 1234; perceived IC4)"

"""The card's scene and the deployment's counters, in a real browser (Chromium, through Playwright) in front
of deployments, alert and console as they run in production: a scene that enlarges by click and by key,
the reason on a card whose alert has none, the counters from the deployment's report, and keyboard-only
use around the enlarged scene."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest
import redis.asyncio as aioredis

from lfr.v1 import common_pb2, matches_pb2
from lfr_contracts import MATCHES_FOUND
from lfr_platform import sealing
from lfr_platform.registry import DeploymentStats, RedisKeys
from lfr_testing.console import CHROMIUM_ARGS, chromium_path
from lfr_testing.deployments import MANAGER_TOKEN, OFFICER_TOKEN, Api, create_request, watchlist_image
from lfr_testing.kafka import produce
from lfr_testing.media import lfw
from lfr_testing.messages import match_record
from lfr_testing.services import deployment_key

pytestmark = [pytest.mark.integration, pytest.mark.browser]

FACES_SCANNED = 41


def _scene_jpeg() -> bytes:
    """A plain 320 x 240 JPEG standing in for a composed scene (the console passes it on as it is)."""
    image = np.full((240, 320, 3), (90, 120, 150), np.uint8)
    cv2.rectangle(image, (130, 60), (190, 130), (4, 142, 217), 2)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _with_scene(record: tuple[bytes, bytes], key: bytes, deployment_id: str, status: int) -> tuple[bytes, bytes]:
    """The MatchFound of `record` carrying a scene of `status` (its image sealed when composed), re-signed."""
    message = matches_pb2.MatchFound.FromString(record[1])
    scene = common_pb2.SceneImage(status=status)
    if status == common_pb2.SCENE_STATUS_COMPOSED:
        scene.image = sealing.seal(key, _scene_jpeg(), deployment_id)
        scene.face.CopyFrom(common_pb2.BoundingBox(x=130, y=60, width=60, height=70))
        scene.region.CopyFrom(common_pb2.BoundingBox(x=0, y=0, width=320, height=240))
    message.scene.CopyFrom(scene)
    sealing.sign_message(key, message, "match")
    return record[0], message.SerializeToString()


@pytest.fixture
def scene_alerts(platform, stack, data_dir):
    """`await scene_alerts()`: a deployment with S-1 and S-2 enrolled, faces scanned counted, and two
    alerts: S-1's with a composed scene, S-2's whose face was not clear in its frame."""

    async def raise_two():
        deployments, _, _ = stack
        api = Api(deployments.control.port, MANAGER_TOKEN)
        deployment_id = (await api("create", create_request())).deployment_id
        images = [
            watchlist_image(
                lfw(data_dir, person, 1), subject, subject, source_reference=f"PNC/{subject}", approved_by="Insp. B"
            )
            for person, subject in (("Colin_Powell", "S-1"), ("George_W_Bush", "S-2"))
        ]
        entries = {e.subject_id: e.entry_id for e in await api.enrol(deployment_id, images)}
        await api("review", deployment_id, "Insp. R")
        key = await deployment_key(platform, deployment_id)
        composed = match_record(deployment_id, "cam-1", "S-1", 1, 0.9, entry_id=entries["S-1"], key=key)
        unclear = match_record(deployment_id, "cam-1", "S-2", 2, 0.8, entry_id=entries["S-2"], key=key)
        await produce(
            platform,
            MATCHES_FOUND,
            [
                _with_scene(composed, key, deployment_id, common_pb2.SCENE_STATUS_COMPOSED),
                _with_scene(unclear, key, deployment_id, common_pb2.SCENE_STATUS_FACE_NOT_FOUND),
            ],
        )
        client = aioredis.from_url(platform.redis_url)
        try:  # as match counts them
            await DeploymentStats(client, RedisKeys(platform.redis_prefix)).add(
                deployment_id, "van-1", faces_scanned=FACES_SCANNED
            )
        finally:
            await client.aclose()
        return deployment_id

    return raise_two


def _counters(page) -> dict[str, str]:
    return page.eval_on_selector_all(
        "#counters [data-counter]", "cells => Object.fromEntries(cells.map(c => [c.dataset.counter, c.textContent]))"
    )


def _use_the_card(url: str) -> dict:
    """Sign in, look at both cards, enlarge and close the scene by key and by click, adjudicate by key."""
    from playwright.sync_api import sync_playwright

    seen: dict = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_context().new_page()
            page.goto(url)
            page.fill("#officer", "PC 1234")
            page.fill("#token", OFFICER_TOKEN)
            page.keyboard.press("Enter")  # signing in by keyboard too
            page.wait_for_function("() => document.querySelectorAll('li.alert').length === 2", timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('li.alert')].every(c => c.dataset.scene !== 'loading')",
                timeout=30_000,
            )
            with_scene = page.locator("li.alert[data-scene=composed]")
            without = page.locator("li.alert[data-scene=none]")
            page.wait_for_function(
                "() => { const i = document.querySelector('li.alert[data-scene=composed] .scene-image');"
                " return i && i.complete && i.naturalWidth === 320; }",
                timeout=30_000,
            )
            seen["scene_score"] = with_scene.locator(".score").inner_text()
            seen["no_scene_score"] = without.locator(".score").inner_text()
            seen["no_scene_caption"] = without.locator(".scene-caption").inner_text()
            seen["no_scene_button"] = without.locator(".scene-open").is_visible()
            page.wait_for_function("() => !document.getElementById('counters').hidden", timeout=30_000)
            seen["counters"] = _counters(page)

            # Keyboard only: j selects the newest card, v enlarges its scene (if it has one), Esc closes it.
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("j")
            selected = page.locator("li.alert.selected")
            seen["selected_has_scene"] = selected.get_attribute("data-scene")
            if seen["selected_has_scene"] != "composed":
                page.keyboard.press("j")
            page.keyboard.press("v")
            dialog = page.locator("#scene-large")
            dialog.wait_for(state="visible", timeout=10_000)
            page.wait_for_function(
                "() => document.getElementById('scene-large-image').naturalWidth === 320", timeout=10_000
            )
            page.keyboard.press("t")  # nothing acts under the enlarged scene
            seen["state_under_dialog"] = page.locator("li.alert.selected").get_attribute("data-state")
            page.keyboard.press("Escape")
            dialog.wait_for(state="hidden", timeout=10_000)

            # By click (and then by the keyboard's Enter on the focused thumbnail).
            page.locator("li.alert[data-scene=composed] .scene-open").click()
            dialog.wait_for(state="visible", timeout=10_000)
            page.keyboard.press("Escape")
            dialog.wait_for(state="hidden", timeout=10_000)
            page.locator("li.alert[data-scene=composed] .scene-open").focus()
            page.keyboard.press("Enter")
            dialog.wait_for(state="visible", timeout=10_000)
            page.keyboard.press("v")
            dialog.wait_for(state="hidden", timeout=10_000)
            seen["focus_after_close"] = page.evaluate("() => document.activeElement.className")

            # Deciding by keyboard still works, and the counters follow.
            page.keyboard.press("j")
            alert_id = page.locator("li.alert.selected").get_attribute("data-alert-id")
            page.keyboard.press("t")
            page.wait_for_function(
                "id => document.querySelector(`[data-alert-id=\"${id}\"]`).dataset.state === 'adjudicated'",
                arg=alert_id,
                timeout=30_000,
            )
            page.wait_for_function(
                "() => document.querySelector('[data-counter=decided]').textContent === '1'", timeout=30_000
            )
            seen["counters_after"] = _counters(page)
        finally:
            chromium.close()
    return seen


async def test_the_card_shows_the_scene_or_why_not_and_the_counters_and_keys_still_work(
    scene_alerts, stack, browser, eventually
):
    _, _, console = stack
    deployment_id = await scene_alerts()
    assert (await browser.sign_in(OFFICER_TOKEN))[0] == 200

    async def both_listed():
        status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
        alerts = json.loads(body) if status == 200 else []
        assert len(alerts) == 2
        return alerts

    alerts = await eventually(both_listed, timeout_s=30)
    by_score = {round(a["score"], 1): a["alert_id"] for a in alerts}

    # The HTTP side: one kind at a time, never cacheable, the reason when there is none.
    path = f"/api/alerts/{by_score[0.9]}"
    status, headers, body = await browser.call("GET", f"{path}/scene.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body.startswith(b"\xff\xd8")
    assert headers["Cache-Control"] == "no-store"
    status, headers, body = await browser.call("GET", f"{path}/scene")
    assert status == 200 and json.loads(body) == {"status": "composed", "composed": True, "reason": ""}
    assert headers["Cache-Control"] == "no-store"
    status, _, body = await browser.call("GET", f"/api/alerts/{by_score[0.8]}/scene.jpg")
    assert status == 404 and json.loads(body)["error"] == "no scene: the face was not clear in its frame"
    status, _, body = await browser.call("GET", f"/api/alerts/{by_score[0.8]}/scene")
    assert json.loads(body)["reason"] == "no scene: the face was not clear in its frame"
    status, headers, body = await browser.call("GET", f"/api/counters?deployment={deployment_id}")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert json.loads(body) == {
        "faces_scanned": FACES_SCANNED,
        "alerts": 2,
        "decided": 0,
        "true": 0,
        "false": 0,
        "held": 0,
    }

    anonymous = type(browser)(browser.base)
    try:
        assert (await anonymous.call("GET", f"{path}/scene.jpg"))[0] == 401
        assert (await anonymous.call("GET", f"{path}/scene"))[0] == 401
        assert (await anonymous.call("GET", f"/api/counters?deployment={deployment_id}"))[0] == 401
    finally:
        await anonymous.close()

    seen = await asyncio.to_thread(_use_the_card, f"http://127.0.0.1:{console.web.port}/")
    assert seen["scene_score"].startswith("score 0.900") and seen["no_scene_score"].startswith("score 0.800")
    assert seen["no_scene_caption"] == "no scene: the face was not clear in its frame"
    assert seen["no_scene_button"] is False
    expected = {
        "faces_scanned": str(FACES_SCANNED),
        "alerts": "2",
        "decided": "0",
        "true": "0",
        "false": "0",
        "held": "0",
    }
    assert seen["counters"] == expected
    assert seen["state_under_dialog"] == "raised"
    assert "scene-open" in seen["focus_after_close"]
    assert seen["counters_after"] == {**expected, "decided": "1", "true": "1"}

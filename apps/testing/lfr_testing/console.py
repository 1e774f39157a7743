"""Helpers for tests of the console over real HTTP: a browser-like client with its cookie jar and CSRF
token, the page's event stream, and the alerts a signed-in user is listed."""

from __future__ import annotations

import asyncio
import json
import shutil

import aiohttp
import pytest

from lfr_testing.plugin import Eventually

# A token the console tests' token file grants an officer of other deployments only ("dep-none*").
SCOPED_TOKEN = "scoped-token-for-tests-0123456789"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


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


async def listed_alerts(browser: Browser, deployment_id: str, count: int = 1) -> list[dict]:
    async def listed():
        status, _, body = await browser.call("GET", f"/api/alerts?deployment={deployment_id}")
        assert status == 200, body
        alerts = json.loads(body)
        assert len(alerts) >= count, alerts
        return alerts

    return await Eventually()(listed, timeout_s=30)


def chromium_path() -> str:
    """The system Chromium a Playwright test drives; the test fails (never skips) without it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: apt-get install chromium (`make install` does it)")
    return path

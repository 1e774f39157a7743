"""Fixtures of the console's integration tests: deployments, alert and console as they run in
production (in this loop, on the real broker and Redis), a browser-like client, and alerts to show."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from lfr_alert.app import build as build_alert
from lfr_alert.settings import AlertSettings
from lfr_console.app import build as build_console
from lfr_console.settings import ConsoleSettings
from lfr_contracts import MATCHES_FOUND
from lfr_deployments.app import build as build_deployments
from lfr_platform.registry import RedisKeys
from lfr_testing.console import SCOPED_TOKEN, Browser
from lfr_testing.deployments import (
    MANAGER_TOKEN,
    TEST_GRANTS,
    Api,
    create_request,
    deployments_settings,
    watchlist_image,
)
from lfr_testing.kafka import produce
from lfr_testing.media import lfw
from lfr_testing.messages import match_record
from lfr_testing.services import deployment_key, running


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


async def _enrolled(stack, data_dir):
    """A deployment with S-1 enrolled (a photo of Colin Powell) and its watchlist reviewed."""
    deployments, _, _ = stack
    api = Api(deployments.control.port, MANAGER_TOKEN)
    deployment_id = (await api("create", create_request())).deployment_id
    image = watchlist_image(
        lfw(data_dir, "Colin_Powell", 1), "S-1", "1", source_reference="PNC/1", approved_by="Insp. B"
    )
    [enrolled] = await api.enrol(deployment_id, [image])
    await api("review", deployment_id, "Insp. R")  # nothing is matched or alerted before the review
    return deployment_id, enrolled.entry_id, api


@pytest.fixture
def raise_alert(platform, stack, data_dir):
    """`await raise_alert()`: a deployment with one enrolled person, and an alert for them (from a
    produced match); returns the deployment id and a manager's Api."""

    async def raise_one():
        deployment_id, entry_id, api = await _enrolled(stack, data_dir)
        data_key = await deployment_key(platform, deployment_id)
        record = match_record(deployment_id, "cam-1", "S-1", 1, 0.9, entry_id=entry_id, key=data_key)
        await produce(platform, MATCHES_FOUND, [record])
        return deployment_id, api

    return raise_one


@pytest.fixture
def lookalike_alert(platform, stack, data_dir):
    """`await lookalike_alert(min_margin)`: a deployment whose policy holds alerts within `min_margin`,
    and an alert for S-1 whose runner-up (another subject, its id with markup in it: shown as text)
    scores 0.71 against its 0.73: held. Returns the deployment id."""

    async def raise_held(min_margin: float = 0.05):
        deployment_id, entry_id, _ = await _enrolled(stack, data_dir)
        client = aioredis.from_url(platform.redis_url)
        try:  # the policy's min_margin, as the deployments service copies it into the deployment's record
            key = RedisKeys(platform.redis_prefix).deployment(deployment_id)
            await client.hset(key, "min_margin", repr(min_margin))
        finally:
            await client.aclose()
        data_key = await deployment_key(platform, deployment_id)
        record = match_record(
            deployment_id, "cam-1", "S-1", 1, 0.73, entry_id=entry_id, key=data_key,
            runner_up="S-2 <b>brother</b>", runner_up_score=0.71,
        )  # fmt: skip
        await produce(platform, MATCHES_FOUND, [record])
        return deployment_id

    return raise_held

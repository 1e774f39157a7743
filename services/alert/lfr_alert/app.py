"""Wires alert: matches.found.v1 -> fold in Redis -> alerts.raised.v1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import redis.asyncio as aioredis

from lfr.v1 import matches_pb2
from lfr_alert.alerting import AlertStore
from lfr_alert.settings import AlertSettings
from lfr_alert.store import RedisAlertStore
from lfr_alert.wire import alert_raised, match_to_fold
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND, camera_key
from lfr_platform import metrics
from lfr_platform.registry import DeploymentRegistry, RedisKeys, admit
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_platform.stage import Incoming, Outcome, Output, Rejected, Skipped


class AlertHandler:
    input = MATCHES_FOUND

    def __init__(self, store: AlertStore, registry: DeploymentRegistry, settings: AlertSettings) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings

    async def handle(self, batch: Sequence[Incoming[matches_pb2.MatchFound]]) -> list[Outcome]:
        return [await self._one(item.message) for item in batch]

    async def _one(self, match: matches_pb2.MatchFound) -> Outcome:
        deployment = await admit(self.registry, match.camera)
        if isinstance(deployment, Rejected | Skipped):
            return deployment
        if not match.match_id or not match.subject_id:
            return Rejected("invalid_match", "match_id and subject_id are required")
        now = time.time()
        state = await self.store.fold(match_to_fold(match), now, self.settings.window_s, uuid.uuid4().hex)
        labels = metrics.camera_labels(match.camera)
        metrics.ALERT_REVISIONS.labels(**labels).inc()
        if state.is_new:
            metrics.ALERTS.labels(**labels).inc()
            metrics.CAPTURE_TO_ALERT_SECONDS.observe(max(0.0, now - state.first_captured_at))
        return [Output(ALERTS_RAISED, camera_key(match.camera), alert_raised(match, state))]


def build(platform: PlatformSettings, settings: AlertSettings, *, redis: aioredis.Redis | None = None) -> ServiceShell:
    redis = redis or aioredis.from_url(platform.redis_url)
    keys = RedisKeys(platform.redis_prefix)
    handler = AlertHandler(RedisAlertStore(redis, keys), DeploymentRegistry(redis, keys), settings)
    return ServiceShell.for_stage("alert", handler, platform, settings.http_host, settings.http_port, [redis.aclose])

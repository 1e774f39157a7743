"""Per-camera counters of match (faces scanned, matches) started at 0 for every camera an open
deployment covers, and removed when it closes: a counter that appears at its first value hides that
value from Prometheus's increase(), and with it faces from the false-alert rate per face scanned."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from lfr_platform import metrics
from lfr_platform.registry import CLOSED, EXPIRED, LOST, DeploymentRegistry, RedisKeys
from lfr_platform.runtime import pause
from lfr_platform.stage import TRANSIENT_ERRORS

log = logging.getLogger(__name__)


async def keep_camera_series(redis: aioredis.Redis, keys: RedisKeys, registry: DeploymentRegistry, interval_s: float):
    series = metrics.CameraSeries((metrics.FACES_SCANNED, ((),)), (metrics.MATCHES, ((),)))
    while True:
        try:
            cameras: set[tuple[str, str, str]] = set()
            for raw in await redis.zrange(keys.all_deployments(), 0, -1):
                view = await registry.lookup(raw.decode() if isinstance(raw, bytes) else raw)
                if view is not None and view.state not in (CLOSED, EXPIRED, LOST):
                    cameras.update((view.deployment_id, van, camera) for van, camera in view.cameras)
            series.keep(cameras)
        except TRANSIENT_ERRORS as exc:
            log.warning("per-camera series not refreshed: %s", exc)
        await pause(interval_s)

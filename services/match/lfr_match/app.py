"""Wires match: the match stage over this replica's copy of the watchlists (or the shared Qdrant
server), and one Redis. The deployments themselves are the deployments service's."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr_match.handler import MatchHandler
from lfr_match.series import keep_camera_series
from lfr_match.settings import MatchSettings
from lfr_match.tracks import TrackTemplates
from lfr_match.watchlists import WatchlistCopy, empty
from lfr_platform.http import Health, HttpServer
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.replicas import Replicas, replica_name
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_platform.stage import StageRunner
from lfr_watchlist import EXACT_RECHECK_MARGIN, WatchlistIndex, open_index


@dataclass
class MatchShell(ServiceShell):
    """match's shell, with its copy of the watchlists reachable (None on a Qdrant server)."""

    copy: WatchlistCopy | None = None
    handler: MatchHandler | None = None


# Candidates searched per face: the decision needs the best; a few more show runner-ups.
TOP_K = 5


def build(
    platform: PlatformSettings,
    settings: MatchSettings,
    *,
    index: WatchlistIndex | None = None,
    redis: aioredis.Redis | None = None,
) -> MatchShell:
    redis = redis or platform.redis_client()
    keys = RedisKeys(platform.redis_prefix)
    registry = DeploymentRegistry(redis, keys, platform.key_wrap())
    copy: WatchlistCopy | None = None
    handler: MatchHandler | None = None
    if index is None and platform.watchlist.qdrant_url:
        # The deployments service's collections, shared by every replica: nothing to copy.
        index = open_index(platform.watchlist, settings.data_dir)
        health = Health("kafka", "topics")
    else:
        left = empty(settings.data_dir) if index is None else []
        index = index or open_index(platform.watchlist, settings.data_dir)
        health = Health("kafka", "topics", "watchlists")
        copy = WatchlistCopy(
            platform,
            index,
            registry,
            Replicas(redis, keys, "match", replica_name(platform.replica_name)),
            health,
            sweep_interval_s=settings.heartbeat_interval_s,
            left_by_earlier_run=left,
        )
    handler = MatchHandler(
        index,
        registry,
        TOP_K,
        EXACT_RECHECK_MARGIN,
        TrackTemplates(),
    )
    runner = StageRunner("match", handler, platform, health)

    async def stage() -> None:
        if copy is not None:  # faces are matched only against a copy that has read the whole log
            await copy.caught_up.wait()
        await runner.run()

    async def series() -> None:
        await keep_camera_series(redis, keys, registry, settings.heartbeat_interval_s)

    async def close_index() -> None:
        index.close()

    return MatchShell(
        name="match",
        platform=platform,
        health=health,
        http=HttpServer(health, settings.http_host, settings.http_port),
        tasks=[copy.run, stage, series] if copy is not None else [stage, series],
        closers=[redis.aclose, close_index],
        copy=copy,
        handler=handler,
    )

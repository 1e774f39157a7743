"""The watchlist log's writer: each change of a watchlist, published before it is acknowledged, and
the match replicas' deletions of their copies, collected for the deletion report.

The deployments service's own index is the copy enrolment searches (duplicates) and counts; every
match replica builds its copy from the log (lfr_match.copy). See docs/decisions/0011-watchlist-log.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lfr.v1 import watchlist_pb2
from lfr_contracts import WATCHLIST_CHANGED, deployment_key
from lfr_platform.registry import RedisKeys
from lfr_platform.replicas import Replicas
from lfr_platform.rpc import Unavailable

log = logging.getLogger(__name__)


class WatchlistLog:
    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, topic_prefix: str, *, send_timeout_s: float = 15.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.topic = WATCHLIST_CHANGED.name(topic_prefix)
        self.send_timeout_s = send_timeout_s
        self.producer: AIOKafkaProducer | None = None  # set once the broker is reached
        self.match_replicas = Replicas(redis, keys, "match", name="")

    async def publish(self, change: watchlist_pb2.WatchlistChanged) -> None:
        """Acknowledged by the broker, or Unavailable: the caller undoes what it did and says so."""
        if self.producer is None:
            raise Unavailable("the watchlist log (Kafka) is not reachable yet; retry")
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self.producer.send_and_wait(
                    self.topic, WATCHLIST_CHANGED.encode(change), key=deployment_key(change.deployment_id)
                )
        except (KafkaError, TimeoutError) as exc:
            raise Unavailable(f"the watchlist log (Kafka) did not take the change; retry: {exc!r}") from exc

    async def live_replicas(self) -> list[str]:
        """The match replicas whose heartbeat is recent: whose copies a close waits for."""
        return sorted(await self.match_replicas.live())

    async def copies_deleted(
        self, deployment_id: str, replicas: list[str], wait_s: float
    ) -> tuple[dict[str, dict], list[str]]:
        """The replicas' deletions of their copies, waiting up to `wait_s` for those of `replicas`.
        Returns (replica -> {entries, deleted_at}, replicas that did not report in time)."""
        deadline = time.monotonic() + wait_s
        while True:
            raw = await self.redis.hgetall(self.keys.index_copies(deployment_id))
            copies = {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
            pending = [r for r in replicas if r not in copies]
            if not pending or time.monotonic() >= deadline:
                return copies, pending
            await asyncio.sleep(0.1)

"""A stage's live replicas, as each one announces itself in Redis: its name, a heartbeat, and the
facts its peers must agree on (the model id of embed's replicas).

Used to refuse a replica that disagrees with the running ones (vectors of two models on one topic
would all be refused by match, one message at a time), and by a close to know whose copies of a
watchlist to wait for. A replica that stops heartbeating is forgotten after STALE_S.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import redis.asyncio as aioredis
import redis.exceptions

from lfr_platform.registry import RedisKeys
from lfr_platform.runtime import StartRefused, pause

log = logging.getLogger(__name__)

STALE_S = 30.0
FORGOTTEN_S = 24 * 3600.0


def replica_name(configured: str) -> str:
    """The configured name, or the host name (a pod's name in Kubernetes)."""
    return configured or socket.gethostname()


class Replicas:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, stage: str, name: str, **facts: str) -> None:
        self.redis = redis
        self.key = keys.replicas(stage)
        self.stage = stage
        self.name = name
        self.facts = facts

    async def _announced(self, now: float) -> dict[str, tuple[float, dict]]:
        """name -> (seconds since its heartbeat, what it announced); unreadable entries as never seen."""
        out = {}
        for name, value in (await self.redis.hgetall(self.key)).items():
            name = name.decode() if isinstance(name, bytes) else name
            try:
                entry = json.loads(value)
                out[name] = (now - float(entry["heartbeat"]), entry)
            except (ValueError, KeyError, TypeError):
                out[name] = (float("inf"), {})
        return out

    async def live(self, now: float | None = None) -> dict[str, dict]:
        """name -> what it announced, for the replicas whose heartbeat is recent."""
        announced = await self._announced(time.time() if now is None else now)
        return {name: entry for name, (age, entry) in announced.items() if age <= STALE_S}

    async def join(self) -> None:
        """Refuse to start if a live replica of the stage announced other facts; else announce.
        Replicas gone for a day are forgotten (pod names change with every restart)."""
        announced = await self._announced(time.time())
        gone = [name for name, (age, _) in announced.items() if age > FORGOTTEN_S]
        if gone:
            await self.redis.hdel(self.key, *gone)
        live = {name: entry for name, (age, entry) in announced.items() if age <= STALE_S}
        for name, entry in live.items():
            if name == self.name:
                continue
            for fact, value in self.facts.items():
                theirs = entry.get(fact)
                if theirs is not None and theirs != value:
                    raise StartRefused(
                        f"{self.stage} replica {self.name!r} has {fact} {value!r}, but the running replica {name!r} "
                        f"has {theirs!r}: every replica of {self.stage} must run the same (stop the others first, "
                        f"or start this one with {theirs!r})"
                    )
        await self.beat()

    async def beat(self, **extra) -> None:
        entry = {"heartbeat": time.time(), **self.facts, **extra}
        await self.redis.hset(self.key, self.name, json.dumps(entry))

    async def leave(self) -> None:
        await self.redis.hdel(self.key, self.name)


async def announced(replicas: Replicas, joined: asyncio.Event, interval_s: float = 5.0) -> None:
    """Join (or refuse to start), then keep the heartbeat fresh until cancelled. A Redis that is slow
    or away when the replica starts is waited for, not fatal: on a loaded 2-core machine a join's read
    timed out and the replica exited before it was ready (a fresh clone's make test saw embed-1 do it)."""
    while True:
        try:
            await replicas.join()
            break
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("joining the %s replicas postponed: %s", replicas.stage, exc)
            await pause(1.0)
    joined.set()
    try:
        while True:
            await pause(interval_s)
            try:
                await replicas.beat()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("heartbeat postponed: %s", exc)
    finally:
        try:
            async with asyncio.timeout(2):
                await replicas.leave()
        except (TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            pass  # forgotten once its heartbeat is stale

"""Records that must reach the broker even when it is down now, or the process dies before sending.

A Redis stream holds them (a transactional outbox): a state change and the records announcing it are
written in one Redis transaction (`Outbox.add` on a pipeline), then sent by `drain`. The stream is
read through a consumer group, so several processes drain it together, each record is acknowledged
only after the broker acknowledged it, and records a process claimed before it died are claimed
again by another after `reclaim_idle_s`. Delivery is at least once; every consumer of these topics
tolerates a repeat (audit events carry an event id, alert revisions a revision number). A topic may
have a sender of its own: audit events are chained as they are produced (lfr_platform.audit_chain),
which also makes their delivery once per event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lfr_platform import metrics
from lfr_platform.runtime import pause

log = logging.getLogger(__name__)

_GROUP = "drainers"
# How often a record held in memory (Redis away) is tried again.
HELD_RETRY_S = 1.0


@dataclass(frozen=True)
class OutboxRecord:
    topic: str  # the full topic name (prefix applied)
    key: bytes
    value: bytes


class Outbox:
    def __init__(
        self,
        client: aioredis.Redis,
        stream: str,
        *,
        send_timeout_s: float = 10.0,
        reclaim_idle_s: float = 30.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.producer: AIOKafkaProducer | None = None  # set once started by the service
        self.send_timeout_s = send_timeout_s
        self.reclaim_idle_s = reclaim_idle_s
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        # Topics whose records are produced by a sender of their own (the audit chain: AuditLog sets
        # it), bounding its own waits; the rest are sent here.
        self.senders: dict[str, Callable[[AIOKafkaProducer, OutboxRecord], Awaitable[None]]] = {}
        self._group_ready = False
        self._lock = asyncio.Lock()
        # Records that reached neither the broker nor Redis (the audit chain needs Redis to send):
        # held in memory and retried until Redis is back. Lost only if the process dies meanwhile.
        self._held: list[OutboxRecord] = []
        self._retrying: asyncio.Task | None = None

    def add(self, pipe, record: OutboxRecord) -> None:
        """Queue the record on a pipeline (or transaction) of the caller: it is kept if that commits."""
        pipe.xadd(self.stream, {"topic": record.topic, "key": record.key, "value": record.value})

    async def keep(self, record: OutboxRecord) -> None:
        # Awaited: on the client (not a pipeline) xadd is a coroutine, and one not awaited kept nothing.
        await self.client.xadd(self.stream, {"topic": record.topic, "key": record.key, "value": record.value})
        await self._ensure_group()

    async def send_or_keep(self, record: OutboxRecord) -> bool:
        """Send now; if the broker cannot take it, keep it for `drain`; if Redis cannot either, hold
        it in memory and retry until it can. True when sent now."""
        try:
            try:
                await self._send(record)
                return True
            except (KafkaError, TimeoutError) as exc:
                log.error("record for %s kept for re-sending: %s", record.topic, exc)
                await self.keep(record)
                return False
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.error("record for %s held in memory until Redis is back: %s", record.topic, exc)
            self._held.append(record)
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.get_running_loop().create_task(self._retry_held())
            return False

    async def _retry_held(self) -> None:
        while self._held:
            await pause(HELD_RETRY_S)
            record = self._held[0]
            try:
                try:
                    await self._send(record)
                except (KafkaError, TimeoutError):
                    await self.keep(record)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                continue  # Redis still away
            self._held.pop(0)
            log.info("a held record for %s reached %s", record.topic, "the broker or the outbox")

    async def _send(self, record: OutboxRecord) -> None:
        if self.producer is None:
            raise KafkaError("producer not started")
        sender = self.senders.get(record.topic)
        if sender is not None:
            await sender(self.producer, record)
        else:
            async with asyncio.timeout(self.send_timeout_s):  # never asyncio.wait_for: docs/decisions/0010
                await self.producer.send_and_wait(record.topic, record.value, key=record.key)
        metrics.MESSAGES_PRODUCED.labels(record.topic).inc()

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(self.stream, _GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def drain(self) -> int:
        """Send what is kept, oldest first; returns how many records reached the broker. Stops at the
        first record the broker refuses: the rest waits for the next drain."""
        if self.producer is None:
            return 0
        async with self._lock:
            try:
                return await self._drain()
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream and its group are gone (Redis lost its data, or was replaced): what was
                # kept there is lost with it, and the janitor audits that loss; new records are kept
                # in a new group, from the stream's start.
                log.error("the outbox's consumer group was gone from Redis; created again")
                self._group_ready = False
                return await self._drain()

    async def _drain(self) -> int:
        await self._ensure_group()
        sent = 0
        try:
            # What this process claimed before and could not send, what a dead process claimed
            # and never acknowledged, then what is new.
            mine = await self.client.xreadgroup(_GROUP, self.consumer, {self.stream: "0"}, count=100)
            sent += await self._send_all(mine[0][1] if mine else [])
            claimed = await self.client.xautoclaim(
                self.stream, _GROUP, self.consumer, min_idle_time=int(self.reclaim_idle_s * 1000), count=100
            )
            sent += await self._send_all(claimed[1])
            while True:
                fresh = await self.client.xreadgroup(_GROUP, self.consumer, {self.stream: ">"}, count=100)
                entries = fresh[0][1] if fresh else []
                if not entries:
                    break
                sent += await self._send_all(entries)
        except _StopDrain:
            pass
        if sent:
            log.info("sent %d kept record(s)", sent)
        return sent

    async def _send_all(self, entries) -> int:
        sent = 0
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile
                continue
            record = OutboxRecord(fields[b"topic"].decode(), fields[b"key"], fields[b"value"])
            try:
                await self._send(record)
            except (KafkaError, TimeoutError) as exc:
                log.warning("kept records not sent yet: %s", exc)
                raise _StopDrain from exc
            await self.client.xack(self.stream, _GROUP, entry_id)
            await self.client.xdel(self.stream, entry_id)
            sent += 1
        return sent

    async def pending(self) -> int:
        """Records kept and not yet acknowledged."""
        return int(await self.client.xlen(self.stream))

    async def run(self, interval_s: float = 1.0) -> None:
        """Drain every `interval_s` until cancelled."""
        while True:
            try:
                await self.drain()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("outbox not drained: %s", exc)
            await pause(interval_s)


class _StopDrain(Exception):
    """The broker refused a record: the rest waits for the next drain, in order."""

"""This replica's copy of every open watchlist, read from the watchlist log (watchlist.changed.v1)
and kept in step with it (docs/decisions/0011-watchlist-log.md).

- At start the copy is emptied (a copy left by an earlier run of this replica is reported deleted)
  and rebuilt by reading the whole log without a consumer group; the replica is ready, and the stage
  starts, only once it has read up to the log's end (the fetch's high-water mark).
- Entries are unsealed with their deployment's data key from Redis: an entry of a deployment that
  is closed (its key destroyed) cannot be read and is not applied.
- A copy goes when the log says its deployment was dropped, and on this replica's own sweep, every
  `heartbeat_interval_s`, of deployments that are closed, expired, lost or gone; each deletion is
  reported in Redis for the deployment's deletion report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from lfr_contracts import WATCHLIST_CHANGED
from lfr_contracts.topics import MalformedMessage
from lfr_platform import metrics, sealing
from lfr_platform.http import Health
from lfr_platform.kafka import new_consumer, start_with_retry
from lfr_platform.registry import CLOSED, EXPIRED, LOST, DeploymentRegistry, DeploymentView, RedisKeys
from lfr_platform.replicas import Replicas
from lfr_platform.runtime import honour_cancellation
from lfr_platform.settings import PlatformSettings
from lfr_platform.stage import TRANSIENT_ERRORS
from lfr_watchlist import CollectionMissing, Entry, WatchlistIndex
from lfr_watchlist import log as changes

log = logging.getLogger(__name__)

# How long a replica's report of a deleted copy is kept for its deployment's deletion report.
COPY_REPORT_TTL_S = 7 * 24 * 3600


def empty(data_dir: Path) -> list[str]:
    """Remove what an earlier run of this replica left in its folder; returns the deployment ids."""
    data_dir = Path(data_dir)
    left = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    shutil.rmtree(data_dir, ignore_errors=True)
    return left


class WatchlistCopy:
    def __init__(
        self,
        platform: PlatformSettings,
        index: WatchlistIndex,
        registry: DeploymentRegistry,
        replicas: Replicas,
        health: Health,
        *,
        sweep_interval_s: float = 5.0,
        left_by_earlier_run: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.platform = platform
        self.index = index
        self.registry = registry
        self.keys: RedisKeys = registry.keys
        self.replicas = replicas
        self.health = health
        self.sweep_interval_s = sweep_interval_s
        self.left_by_earlier_run = left_by_earlier_run or []
        self.clock = clock
        self.topic = WATCHLIST_CHANGED.name(platform.topic_prefix)
        self.caught_up = asyncio.Event()
        self.applied = 0  # changes applied since start
        self._unindexed: set[str] = set()  # deployments with entries added since their index was built

    async def run(self) -> None:
        await self.replicas.join()
        for deployment_id in self.left_by_earlier_run:
            await self._report_deleted(deployment_id, entries=-1, why="emptied at the replica's start")
        consumer = await start_with_retry(
            lambda: new_consumer(self.platform, None, max_poll_records=500), "match watchlist log"
        )
        started = time.monotonic()
        swept = 0.0
        try:
            partitions = await self._assign(consumer)
            while True:
                honour_cancellation()
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for records in batches.values():
                    await self._apply_all([r.value for r in records])
                if not self.caught_up.is_set() and await self._at_end(consumer, partitions):
                    read_s = time.monotonic() - started
                    await self._build_indexes()  # searched by HNSW from the first face on
                    self.caught_up.set()
                    self.health.set("watchlists", True)
                    log.info(
                        "watchlist copy caught up: %d change(s) read in %.2fs, indexed in %.2fs, %d watchlist(s)",
                        self.applied,
                        read_s,
                        time.monotonic() - started - read_s,
                        len(self.index.collections()),
                    )
                if time.monotonic() - swept >= self.sweep_interval_s:
                    swept = time.monotonic()
                    try:
                        await self.sweep()
                    except TRANSIENT_ERRORS as exc:
                        log.warning("watchlist copy sweep postponed: %s", exc)
        finally:
            self.health.set("watchlists", False)
            try:
                async with asyncio.timeout(5):
                    await consumer.stop()
            except TimeoutError:
                log.warning("the watchlist log's consumer took over 5 s to stop; left behind")
            try:
                async with asyncio.timeout(2):
                    await self.replicas.leave()
            except (TimeoutError, *TRANSIENT_ERRORS):
                pass  # forgotten after its heartbeat goes stale

    async def _assign(self, consumer) -> list[TopicPartition]:
        while True:
            await consumer.topics()  # refreshes the metadata
            found = consumer.partitions_for_topic(self.topic)
            if found:
                partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                log.info("reading the watchlist log %s from its start (%d partitions)", self.topic, len(partitions))
                return partitions
            await asyncio.sleep(0.5)

    async def _at_end(self, consumer, partitions: list[TopicPartition]) -> bool:
        """Every partition read up to its high-water mark (known from a fetch: ListOffsets is wrong
        on tansu)."""
        for tp in partitions:
            highwater = consumer.highwater(tp)
            if highwater is None:
                return False
            try:
                if await consumer.position(tp) < highwater:
                    return False
            except KafkaError:
                return False
        return True

    async def _apply_all(self, values: list[bytes]) -> None:
        """Apply changes in order; consecutive entries of one deployment go into the index together."""
        views: dict[str, DeploymentView | None] = {}
        pending: list[Entry] = []
        pending_of = ""

        async def view_of(deployment_id: str) -> DeploymentView | None:
            if deployment_id not in views:
                views[deployment_id] = await self._retry(lambda: self.registry.lookup(deployment_id))
            return views[deployment_id]

        async def flush() -> None:
            nonlocal pending, pending_of
            if pending:
                await self._upsert(pending_of, pending)
            pending, pending_of = [], ""

        for value in values:
            try:
                change = WATCHLIST_CHANGED.decode(value)
            except MalformedMessage as exc:
                log.error("skipped a malformed record of the watchlist log: %s", exc)
                continue
            self.applied += 1
            deployment_id = change.deployment_id
            kind = change.WhichOneof("change")
            if kind == "upserted":
                view = await view_of(deployment_id)
                if not usable(view):
                    continue  # closed: its key is gone, so are its entries (crypto-shredded)
                try:
                    entries = changes.entries(change, view.data_key)
                except sealing.SealError as exc:
                    log.error("skipped entries of the watchlist log that do not unseal: %s", exc)
                    continue
                if pending_of != deployment_id:
                    await flush()
                pending_of = deployment_id
                pending.extend(entries)
                continue
            if deployment_id == pending_of:
                await flush()
            if kind == "created":
                if usable(await view_of(deployment_id)):
                    await self._create(deployment_id, change.created.dimension)
            elif kind == "deleted":
                try:
                    await self._in_thread(self.index.delete, deployment_id, list(change.deleted.entry_ids))
                except CollectionMissing:
                    pass
            elif kind == "dropped":
                await self.drop(deployment_id, why=change.dropped.reason or "dropped")
        await flush()

    async def _upsert(self, deployment_id: str, entries: list[Entry]) -> None:
        if not self.index.exists(deployment_id):  # its `created` did not reach the log
            await self._create(deployment_id, len(entries[0].vector))
        await self._in_thread(self.index.upsert, deployment_id, entries)
        self._unindexed.add(deployment_id)

    async def _build_indexes(self) -> None:
        while self._unindexed:
            deployment_id = self._unindexed.pop()
            try:
                await self._in_thread(self.index.optimize, deployment_id)
            except CollectionMissing:
                pass

    async def _create(self, deployment_id: str, dimension: int) -> None:
        if self.index.exists(deployment_id):
            return
        # A deletion this replica reported earlier (a copy emptied at its start) is not this copy's.
        await self._retry(lambda: self.registry.client.hdel(self.keys.index_copies(deployment_id), self.replicas.name))
        await self._in_thread(self.index.create, deployment_id, dimension)

    async def drop(self, deployment_id: str, why: str) -> None:
        if not self.index.exists(deployment_id):
            return
        self._unindexed.discard(deployment_id)
        entries = await self._in_thread(self.index.drop, deployment_id)
        await self._retry(lambda: self._report_deleted(deployment_id, entries, why))
        log.info("watchlist copy deleted", extra={"deployment_id": deployment_id, "entries": entries, "reason": why})

    async def sweep(self) -> None:
        """Heartbeat, drop the copies of deployments that may no longer be matched, and index the
        entries added since the last sweep."""
        await self.replicas.beat(caught_up=self.caught_up.is_set())
        if self.caught_up.is_set():
            await self._build_indexes()
        for deployment_id in self.index.collections():
            view = await self.registry.lookup(deployment_id)
            if not usable(view):
                await self.drop(deployment_id, why="deployment closed" if view else "deployment gone")
            else:
                count = await self._in_thread(self.index.count, deployment_id)
                metrics.WATCHLIST_ENTRIES.labels(deployment_id).set(count)

    async def _report_deleted(self, deployment_id: str, entries: int, why: str) -> None:
        key = self.keys.index_copies(deployment_id)
        report = {"entries": entries, "deleted_at": self.clock(), "reason": why}
        async with self.registry.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, self.replicas.name, json.dumps(report))
            pipe.expire(key, COPY_REPORT_TTL_S)
            await pipe.execute()
        try:
            metrics.WATCHLIST_ENTRIES.remove(deployment_id)
        except KeyError:
            pass

    async def _retry(self, call):
        """Redis restarting: wait for it (the log's order must hold, so nothing is skipped)."""
        delay = 0.2
        while True:
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:
                log.warning("watchlist copy waits for Redis: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    async def _in_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def usable(view: DeploymentView | None) -> bool:
    """A deployment whose watchlist may be held: it exists, is not closed, and has its key."""
    return view is not None and view.state not in (CLOSED, EXPIRED, LOST) and view.data_key is not None

"""What must happen even when nobody calls: expiry at the planned end, unfinished deletions
finished, orphaned watchlists dropped, entries an interrupted enrolment left pending taken back
out, the start of a deployment audited, kept audit events re-sent, a loss of Redis's state
detected and audited, and the audit chains' daily roots signed.

Fail-closed, never silent: a watchlist whose deployment record is gone (Redis lost its data) can no
longer be used (its key and threshold went with the record), so it is recorded as a *lost*
deployment, audited (`deployment.state_lost`), counted (`lfr_deployments_lost_total`), and only then
deleted, with its deletion audited (`deployment.data_deleted`) like any other. Nothing is deleted
without an audit event.

Its state is the deployment records in Redis, so it carries on across restarts of the deployments service.
"""

from __future__ import annotations

import asyncio
import logging

from lfr_deployments.closing import Closer
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.store import DeploymentStore
from lfr_platform import metrics
from lfr_platform.audit import SYSTEM, AuditLog
from lfr_platform.audit_roots import DaySealer
from lfr_platform.clock import Clock, system
from lfr_platform.deployment_record import CLOSED, EXPIRED, LOST, RecordInvalid
from lfr_platform.outbox import Outbox
from lfr_platform.rpc import Unavailable
from lfr_platform.runtime import pause
from lfr_platform.stage import TRANSIENT_ERRORS
from lfr_watchlist import CollectionMissing, WatchlistIndex
from lfr_watchlist import log as changes

log = logging.getLogger(__name__)

# An entry pending longer than this was left by an enrolment that died: one image's enrolment, from
# its preparation to its record, takes at most the watchlist log's send timeout (15 s) and a Redis
# transaction.
PENDING_STALE_S = 60.0


class Janitor:
    def __init__(
        self,
        store: DeploymentStore,
        index: WatchlistIndex,
        closer: Closer,
        audit: AuditLog,
        outbox: Outbox,
        interval_s: float,
        clock: Clock = system,
        roots: DaySealer | None = None,
        watchlist_log: WatchlistLog | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.closer = closer
        self.audit = audit
        self.outbox = outbox
        self.interval_s = interval_s
        self.clock = clock
        self.roots = roots  # signs the audit chains' daily roots once their day has ended
        self.epoch: str | None = None  # Redis's epoch marker as this process first saw it
        self.watchlist_log = watchlist_log  # takes entries left pending back out of the match replicas

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
                metrics.JANITOR_SWEEPS.inc()
            except TRANSIENT_ERRORS as exc:
                log.warning("janitor sweep postponed: %s", exc)
            await pause(self.interval_s)

    async def sweep(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        epoch, changed = await self.store.check_epoch(self.epoch)
        if changed:
            metrics.STATE_LOST.inc()
            log.error(
                "Redis lost LFR's state (its epoch marker changed): deployments, keys and alert state may be gone",
                extra={"previous_epoch": self.epoch, "epoch": epoch},
            )
            await self.audit.record("state.lost", "", SYSTEM, SYSTEM, previous_epoch=self.epoch, epoch=epoch)
        self.epoch = epoch
        for deployment_id in await self.store.due_to_expire(now):
            try:
                await self.closer.close(
                    deployment_id, status=EXPIRED, actor=SYSTEM, role=SYSTEM, reason="planned end passed"
                )
            except RecordInvalid as exc:  # the others are expired all the same; this one once it is mended
                log.error("%s: not expired", exc, extra={"deployment_id": deployment_id, "field": exc.field})
        records = await self.store.list()
        open_ids = set()
        states: dict[str, int] = {"planned": 0, "active": 0, CLOSED: 0, EXPIRED: 0, LOST: 0}
        for record in records:
            deployment_id = record.deployment_id
            if record.migrated_from is not None:  # an upgrade met it: migrated once, not at every read
                await self.store.mark_migrated(deployment_id)
            states[record.state] = states.get(record.state, 0) + 1
            if record.status == LOST:
                continue
            if record.status in (CLOSED, EXPIRED):
                if record.deletion is None:  # a close in progress, or one a crash interrupted
                    await self.closer.close(
                        deployment_id,
                        status=record.status,
                        actor=SYSTEM,
                        role=SYSTEM,
                        reason="finishing an interrupted close",
                    )
                continue
            if record.urgent and not record.ratified_by and now > record.ratify_by:
                # An oral authorisation that was not ratified in writing in time: it ends here.
                await self.closer.close(
                    deployment_id,
                    status=CLOSED,
                    actor=SYSTEM,
                    role=SYSTEM,
                    reason="urgent authorisation not ratified in writing within the policy's ratify_within_h",
                )
                continue
            open_ids.add(deployment_id)
            if record.state == "active" and record.started_at is None:
                await self.store.set_field(deployment_id, started_at=now)
                await self.audit.record("deployment.started", deployment_id, SYSTEM, SYSTEM)
            await self.undo_pending(deployment_id, now)
            if self.index.exists(deployment_id):
                count = await asyncio.get_running_loop().run_in_executor(None, self.index.count, deployment_id)
                metrics.WATCHLIST_ENTRIES.labels(deployment_id).set(count)
        for state, n in states.items():
            metrics.DEPLOYMENTS.labels(state).set(n)
        for orphan in set(self.index.collections()) - open_ids:
            try:
                record = await self.store.get(orphan)  # created since the list was read?
            except RecordInvalid as exc:  # kept until its record is mended: nothing is deleted on a guess
                log.error("%s: its watchlist is kept", exc, extra={"deployment_id": orphan, "field": exc.field})
                continue
            if record is not None and record.status not in (CLOSED, EXPIRED, LOST):
                continue
            if record is None:
                await self.lost(orphan, now)
                continue
            points = await asyncio.get_running_loop().run_in_executor(None, self.index.drop, orphan)
            log.warning(
                "dropped a watchlist with no open deployment",
                extra={"deployment_id": orphan, "points": points},
            )
        await self.outbox.drain()
        if self.roots is not None:
            await self.roots.seal_due()  # their audit.day_sealed events go out with the next drain

    async def undo_pending(self, deployment_id: str, now: float) -> None:
        """Entries an enrolment prepared and never recorded (the service died between the watchlist
        log and Redis): out of this service's index and of the log (so of every match replica's
        copy), then no longer pending, each audited `watchlist.enrolment_undone`. The review was
        cleared when they were prepared, so none was ever matched."""
        if self.watchlist_log is None:
            return
        for entry_id, prepared_at in (await self.store.pending_entries(deployment_id)).items():
            if now - prepared_at < PENDING_STALE_S:
                continue  # an enrolment in progress
            if not await self.store.entry_recorded(deployment_id, entry_id):
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self.index.delete, deployment_id, [entry_id])
                except CollectionMissing:
                    pass
                try:
                    await self.watchlist_log.publish(changes.deleted(deployment_id, [entry_id]))
                except Unavailable as exc:
                    log.warning("a pending entry is taken out at the next sweep: %s", exc)
                    continue
                await self.audit.record(
                    "watchlist.enrolment_undone",
                    deployment_id,
                    SYSTEM,
                    SYSTEM,
                    entry_id=entry_id,
                    reason="the enrolment stopped between the watchlist log and its record",
                )
                log.warning("an interrupted enrolment's entry taken back out", extra={"deployment_id": deployment_id})
            await self.store.drop_pending(deployment_id, entry_id)

    async def lost(self, deployment_id: str, now: float) -> None:
        """A watchlist without any record: Redis lost the deployment. Record, audit, count, then delete."""
        loop = asyncio.get_running_loop()
        entries = await loop.run_in_executor(None, self.index.count, deployment_id)
        await self.store.mark_lost(deployment_id, now)
        metrics.DEPLOYMENTS_LOST.inc()
        log.error(
            "a watchlist's deployment record is gone from Redis: the deployment is recorded as lost, its watchlist "
            "deleted (fail-closed: nothing of it can be matched any more)",
            extra={"deployment_id": deployment_id, "entries": entries},
        )
        await self.audit.record(
            "deployment.state_lost",
            deployment_id,
            SYSTEM,
            SYSTEM,
            reason="its record and data key were gone from Redis while its watchlist remained",
            watchlist_entries=entries,
        )
        copies = await self.closer.delete_copies(deployment_id, "deployment state lost")
        keys = await self.store.erase(deployment_id)
        report = {
            **copies,
            "redis_keys_deleted": keys,
            "data_key_destroyed": True,  # it was already gone with the record
            "reference_images_deleted": 0,
            "deleted_at": self.clock(),
        }
        await self.store.finish_close(deployment_id, report)
        await self.audit.record("deployment.data_deleted", deployment_id, SYSTEM, SYSTEM, **report)

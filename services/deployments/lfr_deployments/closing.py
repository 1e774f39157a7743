"""Closing a deployment: refuse its records, drop its watchlist, erase its keys, audit what went.

Used by CloseDeployment and by the janitor (expiry, and deletions a crash left unfinished).
Every copy of the watchlist goes: this service's own, and each match replica's (told by the
watchlist log, and by its own sweep of closed deployments); the report lists each replica's deletion,
and any live replica that did not report one within `copy_wait_s`.
The order makes a crash harmless: the record is marked closed first (the pipeline refuses the
deployment from then on), and a close without a deletion report is finished by the janitor.
"""

from __future__ import annotations

import asyncio
import logging

from lfr_deployments import rules
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.report import build_report
from lfr_deployments.store import DeploymentStore
from lfr_platform import metrics
from lfr_platform.audit import AuditLog
from lfr_platform.clock import Clock, system
from lfr_platform.deployment_record import EXPIRED, DeploymentRecord
from lfr_platform.rpc import Unavailable
from lfr_watchlist import WatchlistIndex
from lfr_watchlist import log as changes

log = logging.getLogger(__name__)


class Closer:
    def __init__(
        self,
        store: DeploymentStore,
        index: WatchlistIndex,
        audit: AuditLog,
        watchlist_log: WatchlistLog,
        copy_wait_s: float = 10.0,
        clock: Clock = system,
        manifest_retention_s: float = 365 * 86400,
    ) -> None:
        self.clock = clock
        # The ids-only manifest outlives the watchlist this long (the policy's manifest_retention_days).
        self.manifest_retention_s = manifest_retention_s
        self.store = store
        self.index = index
        self.audit = audit
        self.watchlist_log = watchlist_log
        self.copy_wait_s = copy_wait_s
        self._lock = asyncio.Lock()

    async def close(self, deployment_id: str, *, status: str, actor: str, role: str, reason: str) -> DeploymentRecord:
        """Raises DeploymentNotFound (lfr_deployments.rules) for a deployment that never was."""
        async with self._lock:
            record = await self.store.get(deployment_id)
            step = rules.close_step(deployment_id, record)
            if step == rules.DONE:
                return record  # idempotent: already closed and erased
            if step == rules.FINISH:
                log.warning("finishing an interrupted deletion", extra={"deployment_id": deployment_id})
            else:
                await self.store.mark_closed(deployment_id, status, actor, reason, self.clock())
                event = "deployment.expired" if status == EXPIRED else "deployment.closed"
                await self.audit.record(event, deployment_id, actor, role, reason=reason)
            closed_at = (await self.store.get(deployment_id) or record).closed_at or self.clock()
            await self.store.keep_manifest(deployment_id, closed_at, self.manifest_retention_s)
            copies = await self.delete_copies(deployment_id, reason, record.watchlist_points_deleted)
            references = await self.store.count_reference_images(deployment_id)
            keys = await self.store.erase(deployment_id)
            rewritten = await self.store.rewrite_history()
            report = {
                **copies,
                "redis_keys_deleted": keys,
                "data_key_destroyed": True,
                "reference_images_deleted": references,
                # Redis's append-only file rewritten without the erased keys (when it keeps one).
                "redis_history_rewritten": rewritten,
                "deleted_at": self.clock(),
            }
            await self.store.finish_close(deployment_id, report)
            await self.audit.record("deployment.data_deleted", deployment_id, actor, role, **report)
            record = await self.store.get(deployment_id)
            assert record is not None
            # The report, as it stands at close, into the trail that is kept for good (decisions
            # recorded later still update it: `lfr deployment report`).
            await self.audit.record(
                "deployment.reported", deployment_id, actor, role, report=build_report(record, self.clock()).as_dict()
            )
            try:
                metrics.WATCHLIST_ENTRIES.remove(deployment_id)
            except KeyError:
                pass  # no series yet: the janitor had not counted it
            log.info("deployment closed and erased", extra={"deployment_id": deployment_id, **report})
            return record

    async def delete_copies(self, deployment_id: str, reason: str, known_points: int = 0) -> dict:
        """Every copy of the watchlist: this service's (counted and kept on the record before the
        drop, so that a close interrupted during the drop, which goes on in its thread, still reports
        what was deleted when the janitor finishes it), then each match replica's: told to drop it
        (best effort: each also drops copies of closed deployments on its own sweep), and waited for
        while it is live. Returns the deletion report's part on the watchlist."""
        replicas = await self.watchlist_log.live_replicas()
        loop = asyncio.get_running_loop()
        points = known_points
        if self.index.exists(deployment_id):
            points = max(points, await loop.run_in_executor(None, self.index.count, deployment_id))
            await self.store.set_field(deployment_id, watchlist_points_deleted=points)
        points = max(points, await loop.run_in_executor(None, self.index.drop, deployment_id))
        try:
            await self.watchlist_log.publish(changes.dropped(deployment_id, reason))
        except Unavailable as exc:
            log.warning("watchlist drop not logged (replicas drop it on their sweep): %s", exc)
        copies, pending = await self.watchlist_log.copies_deleted(deployment_id, replicas, self.copy_wait_s)
        return {
            "watchlist_points_deleted": points,
            "collection_dropped": not self.index.exists(deployment_id),
            # Each match replica's copy (docs/decisions/0011): entries it deleted, and when.
            "replica_copies_deleted": copies,
            # Live replicas that had not reported their deletion within copy_wait_s (each drops its
            # copy when it sees the deployment closed, and at its own start).
            "replica_copies_pending": pending,
        }

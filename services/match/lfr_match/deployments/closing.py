"""Closing a deployment: refuse its records, drop its watchlist, erase its keys, audit what went.

Used by CloseDeployment and by the janitor (expiry, and deletions a crash left unfinished).
The order makes a crash harmless: the record is marked closed first (the pipeline refuses the
deployment from then on), and a close without a deletion report is finished by the janitor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from lfr_match.deployments.report import build_report
from lfr_match.deployments.store import DeploymentStore
from lfr_platform import metrics
from lfr_platform.audit import AuditLog
from lfr_platform.registry import CLOSED, EXPIRED
from lfr_watchlist import WatchlistIndex

log = logging.getLogger(__name__)


class DeploymentNotFound(LookupError):
    pass


class Closer:
    def __init__(self, store: DeploymentStore, index: WatchlistIndex, audit: AuditLog) -> None:
        self.store = store
        self.index = index
        self.audit = audit
        self._lock = asyncio.Lock()

    async def close(self, deployment_id: str, *, status: str, actor: str, role: str, reason: str) -> dict[str, str]:
        async with self._lock:
            record = await self.store.get(deployment_id)
            if record is None:
                raise DeploymentNotFound(deployment_id)
            if record["status"] in (CLOSED, EXPIRED) and record.get("deletion"):
                return record  # idempotent: already closed and erased
            if record["status"] in (CLOSED, EXPIRED):
                log.warning("finishing an interrupted deletion", extra={"deployment_id": deployment_id})
            else:
                await self.store.mark_closed(deployment_id, status, actor, reason, time.time())
                event = "deployment.expired" if status == EXPIRED else "deployment.closed"
                await self.audit.record(event, deployment_id, actor, role, reason=reason)
            points = await asyncio.get_running_loop().run_in_executor(None, self.index.drop, deployment_id)
            references = await self.store.count_reference_images(deployment_id)
            keys = await self.store.erase(deployment_id)
            rewritten = await self.store.rewrite_history()
            report = {
                "watchlist_points_deleted": points,
                "collection_dropped": not self.index.exists(deployment_id),
                "redis_keys_deleted": keys,
                "data_key_destroyed": True,
                "reference_images_deleted": references,
                # Redis's append-only file rewritten without the erased keys (when it keeps one).
                "redis_history_rewritten": rewritten,
                "deleted_at": time.time(),
            }
            await self.store.finish_close(deployment_id, report)
            await self.audit.record("deployment.data_deleted", deployment_id, actor, role, **report)
            record = await self.store.get(deployment_id)
            assert record is not None
            # The report, as it stands at close, into the trail that is kept for good (decisions
            # recorded later still update it: `lfr deployment report`).
            await self.audit.record(
                "deployment.reported", deployment_id, actor, role, report=build_report(record, time.time()).as_dict()
            )
            try:
                metrics.WATCHLIST_ENTRIES.remove(deployment_id)
            except KeyError:
                pass  # no series yet: the janitor had not counted it
            log.info("deployment closed and erased", extra={"deployment_id": deployment_id, **report})
            return record


def deletion_report(record: dict[str, str]) -> dict:
    return json.loads(record["deletion"]) if record.get("deletion") else {}

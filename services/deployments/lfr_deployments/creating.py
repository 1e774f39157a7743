"""Creating a deployment, once its request is valid (lfr_deployments.lifecycle.validate_new): its
record with its keys, its watchlist (this service's copy, and the match replicas' through the
watchlist log), then its audit events. The counterpart of lfr_deployments.closing."""

from __future__ import annotations

import asyncio
import logging
import uuid

from lfr_deployments.lifecycle import NewDeployment
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.reviewing import audit_threshold
from lfr_deployments.store import DeploymentStore
from lfr_faces.enrolment import Enroller
from lfr_platform import sealing
from lfr_platform.audit import AuditLog
from lfr_platform.auth import Principal
from lfr_platform.clock import Clock, system
from lfr_platform.rpc import Unavailable
from lfr_watchlist import WatchlistIndex
from lfr_watchlist import log as changes

log = logging.getLogger(__name__)


class Creator:
    def __init__(
        self,
        *,
        store: DeploymentStore,
        index: WatchlistIndex,
        watchlist_log: WatchlistLog,
        audit: AuditLog,
        enroller: Enroller,
        rules: DeploymentPolicy,
        clock: Clock = system,
    ) -> None:
        self.store = store
        self.index = index
        self.watchlist_log = watchlist_log
        self.audit = audit
        self.rules = rules  # the force's policy file (deploy/policy.yaml)
        self.enroller = enroller  # its embedder's vectors are the watchlist's
        self.clock = clock

    async def create(self, new: NewDeployment, who: Principal) -> str:
        """The new deployment's id."""
        deployment_id = f"dep-{uuid.uuid4().hex[:16]}"
        now, dimension = self.clock(), self.enroller.embedder.dimension
        # The record first: the janitor drops any collection that has no open record.
        await self.store.create(deployment_id, new, sealing.new_data_key(), who.identity, now)
        await asyncio.get_running_loop().run_in_executor(None, self.index.create, deployment_id, dimension)
        try:  # the match replicas' copies: made at the first entry if this does not reach them
            await self.watchlist_log.publish(changes.created(deployment_id, dimension, new.model_id))
        except Unavailable as exc:
            log.warning("watchlist creation not logged: %s", exc, extra={"deployment_id": deployment_id})
        await self.audit.record(
            "deployment.created",
            deployment_id,
            who.identity,
            who.role,
            name=new.name,
            purpose=new.purpose,
            authorising_officer=new.authorising_officer,
            location=new.location,
            where=new.where,
            urgent=new.urgent,
            ratify_by=new.ratify_by if new.urgent else None,
            planned_start=new.planned_start,
            planned_end=new.planned_end,
            cameras=[f"{c.van_id}/{c.camera_id}" for c in new.cameras],
            model_id=new.model_id,
            watchlist_size_limit=new.watchlist_size_limit,
            predicted_false_alerts=new.predicted.as_dict() if new.predicted else None,
        )
        if new.predicted is not None and new.predicted.override_reason:
            await self.audit.record(
                "false_alerts.overridden",
                deployment_id,
                who.identity,
                who.role,
                per_face=new.predicted.per_face,
                expected_faces=new.predicted.expected_faces,
                expected=new.predicted.expected,
                max_false_alerts_per_deployment=self.rules.max_false_alerts_per_deployment,
                override_reason=new.predicted.override_reason,
            )
        await audit_threshold(self.audit, deployment_id, who, new.threshold, new.threshold_override_reason, "create")
        return deployment_id

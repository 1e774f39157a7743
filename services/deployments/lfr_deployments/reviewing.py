"""The pre-deployment review of a watchlist: each subject's template built from its photos as they
stand, the templates checked for lookalikes, the threshold derived again for the list as reviewed,
then the review recorded (refused if an image was enrolled meanwhile) and audited. The rules it
follows are lfr_deployments.rules; this module does their I/O."""

from __future__ import annotations

import asyncio

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments import rules
from lfr_deployments.lifecycle import CHANGED, OVERRIDDEN, Refused, Threshold, ThresholdPolicy
from lfr_deployments.provenance import pseudonym
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.store import DeploymentStore
from lfr_platform.audit import AuditLog
from lfr_platform.auth import Principal
from lfr_platform.clock import Clock, system
from lfr_platform.deployment_record import DeploymentRecord
from lfr_watchlist import CollectionMissing, Entry, WatchlistIndex
from lfr_watchlist import log as changes
from lfr_watchlist.templates import subject_templates

# Templates per record of the watchlist log: about 600 bytes each sealed, well under a record's limit.
TEMPLATES_PER_RECORD = 256


async def audit_threshold(
    audit: AuditLog,
    deployment_id: str,
    who: Principal,
    threshold: Threshold,
    reason: str,
    step: str,
    previous: float | None = None,
) -> None:
    """`threshold.overridden` (below the derived one, with its reason) or `threshold.set`, with every
    input of the operating point: entries, budget, curve version, the group that bound it."""
    await audit.record(
        "threshold.overridden" if threshold.source == OVERRIDDEN else "threshold.set",
        deployment_id,
        who.identity,
        who.role,
        step=step,
        threshold=threshold.value,
        previous_threshold=previous,
        source=threshold.source,
        derived_threshold=threshold.point.threshold,
        override_reason=reason or None,
        operating_point=threshold.point.as_audit(),
    )


class Review:
    def __init__(
        self,
        *,
        store: DeploymentStore,
        index: WatchlistIndex,
        watchlist_log: WatchlistLog,
        audit: AuditLog,
        policy: ThresholdPolicy,
        clock: Clock = system,
    ) -> None:
        self.store = store
        self.index = index
        self.watchlist_log = watchlist_log
        self.audit = audit
        self.policy = policy
        self.clock = clock

    async def review(
        self, record: DeploymentRecord, officer: str, who: Principal
    ) -> tuple[DeploymentRecord, list[pb.TemplateLookalike]]:
        """The record as reviewed, and the templates' lookalikes. Raises Refused."""
        deployment_id = record.deployment_id
        images = rules.review(record, officer)
        try:
            templates = await self._build_templates(deployment_id)
        except (CollectionMissing, LookupError):
            raise rules.closed_meanwhile(deployment_id) from None
        entries = images + len(templates)
        threshold = rules.review_threshold(self.policy, record, entries)
        try:
            lookalikes = await self._template_lookalikes(deployment_id, templates, threshold.value)
        except (CollectionMissing, LookupError):
            raise rules.closed_meanwhile(deployment_id) from None
        predicted = rules.review_prediction(self.policy, record, threshold, entries)
        if not await self.store.review(deployment_id, officer, images, self.clock(), entries, threshold, predicted):
            raise Refused(
                CHANGED, "images were enrolled while the review was recorded: review the watchlist as it stands now"
            )
        await self.audit.record(
            "watchlist.reviewed",
            deployment_id,
            who.identity,
            who.role,
            officer=officer,
            images=images,
            subjects=record.enrolled_subjects,
            templates=len(templates),
            template_lookalikes=len(lookalikes),
        )
        reason = rules.override_reason(record, threshold)
        await audit_threshold(self.audit, deployment_id, who, threshold, reason, "review", previous=record.threshold)
        photos_of = {t.subject_id: t.template_of for t in templates}
        key = await self.store.pseudonym_key(deployment_id) if lookalikes else b""
        for pair in lookalikes:
            await self.audit.record(
                "watchlist.lookalike",
                deployment_id,
                who.identity,
                who.role,
                subject=pseudonym(key, pair.subject_id),
                template_of=photos_of[pair.subject_id],
                other_subject=pseudonym(key, pair.other_subject_id),
                score=round(pair.score, 4),
            )
        return await self.store.get(deployment_id), lookalikes

    async def _build_templates(self, deployment_id: str) -> list[Entry]:
        """Each subject's template, from its photos as they stand (lfr_watchlist.templates): into this
        service's index and onto the watchlist log, for the match replicas. Built again at each review
        (a template's id follows from its subject, so it is replaced); a photo recorded is never taken
        off a watchlist, so a template never outlives its photos."""
        loop = asyncio.get_running_loop()
        entries = await loop.run_in_executor(None, self.index.entries, deployment_id)
        templates = subject_templates(deployment_id, entries)
        if not templates:
            return []
        data_key = await self.store.data_key(deployment_id)
        if data_key is None:
            raise LookupError(deployment_id)
        await loop.run_in_executor(None, self.index.upsert, deployment_id, templates)
        for start in range(0, len(templates), TEMPLATES_PER_RECORD):
            chunk = templates[start : start + TEMPLATES_PER_RECORD]
            await self.watchlist_log.publish(changes.upserted(deployment_id, data_key, chunk))
        return templates

    async def _template_lookalikes(
        self, deployment_id: str, templates: list[Entry], threshold: float
    ) -> list[pb.TemplateLookalike]:
        """Templates scoring at or above the threshold against another subject's entry: enrolment checks
        each photo for lookalikes (lfr_deployments.enrolling), a template is only made here."""

        def best_others() -> list[pb.TemplateLookalike]:
            found = []
            for template in templates:
                others = self.index.search(
                    deployment_id, template.vector, 1, exact=True, except_subject_id=template.subject_id
                )
                if others and others[0].score >= threshold:
                    found.append(
                        pb.TemplateLookalike(
                            subject_id=template.subject_id,
                            other_subject_id=others[0].subject_id,
                            score=others[0].score,
                        )
                    )
            return found

        return await asyncio.get_running_loop().run_in_executor(None, best_others) if templates else []

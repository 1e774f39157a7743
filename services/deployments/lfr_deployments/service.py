"""The gRPC DeploymentService: lifecycle calls, each authorised, validated and audited."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import grpc

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import deployments_pb2_grpc
from lfr_deployments import operating, prediction, wire
from lfr_deployments import report as reports
from lfr_deployments.closing import Closer, DeploymentNotFound
from lfr_deployments.decoding import DecoderPool
from lfr_deployments.lifecycle import (
    DERIVED,
    OVERRIDDEN,
    InvalidRequest,
    ListTooLarge,
    Threshold,
    ThresholdPolicy,
    same_name,
    valid_subject_id,
    validate_new,
)
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.provenance import Provenance, audit_row, checked, pseudonym
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.report import build_report
from lfr_deployments.store import DeploymentStore
from lfr_faces.enrolment import Enroller, EnrolRejected
from lfr_faces.images import ImageRejected
from lfr_platform import metrics, sealing
from lfr_platform.audit import AuditLog
from lfr_platform.auth import READ_DEPLOYMENTS, WRITE_DEPLOYMENTS, Authenticator, Principal
from lfr_platform.clock import Clock, system
from lfr_platform.registry import CLOSED, OPEN
from lfr_platform.rpc import Unavailable
from lfr_platform.stage import TRANSIENT_ERRORS
from lfr_watchlist import CollectionMissing, Entry, WatchlistIndex
from lfr_watchlist import log as changes
from lfr_watchlist.templates import subject_templates

log = logging.getLogger(__name__)

# Candidates looked at for lookalikes of a newly enrolled photo (other subjects scoring at or above
# the deployment's threshold): more than a few means the watchlist is unusable for those subjects anyway.
LOOKALIKE_CANDIDATES = 10
# The largest list `lfr deployment plan` is asked about (the largest size limit is far below it).
MAX_PLANNED_ENTRIES = 10_000_000
# Templates per record of the watchlist log: about 600 bytes each sealed, well under a record's limit.
TEMPLATES_PER_RECORD = 256


class DeploymentClosedDuringEnrolment(RuntimeError):
    pass


class DeploymentService(deployments_pb2_grpc.DeploymentServiceServicer):
    def __init__(
        self,
        *,
        store: DeploymentStore,
        index: WatchlistIndex,
        watchlist_log: WatchlistLog,
        enroller: Enroller,
        decoder: DecoderPool,
        closer: Closer,
        audit: AuditLog,
        auth: Authenticator,
        policy: ThresholdPolicy,
        default_size_limit: int,
        max_size_limit: int,
        duplicate_similarity: float,
        rules: DeploymentPolicy,
        max_concurrent_enrolments: int = 2,
        clock: Clock = system,
    ) -> None:
        self.clock = clock
        self.store = store
        self.index = index
        self.watchlist_log = watchlist_log
        self.enroller = enroller
        self.decoder = decoder
        self.closer = closer
        self.audit = audit
        self.auth = auth
        self.policy = policy
        self.default_size_limit = default_size_limit
        self.max_size_limit = max_size_limit
        self.duplicate_similarity = duplicate_similarity
        self.rules = rules  # the force's policy file (deploy/policy.yaml)
        # A few photos at a time, whatever the number of enrolment streams, so enrolment never takes
        # live matching down: each is decoded in a worker process the OS bounds (the decoder's pool,
        # as many workers), and this process only analyses the reduced photo it gets back.
        self._analysing = asyncio.Semaphore(max_concurrent_enrolments)
        self._enrol_locks: dict[str, asyncio.Lock] = {}

    async def CreateDeployment(self, request: pb.CreateDeploymentRequest, context) -> pb.CreateDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "create a deployment")
        await self.auth.require_every_deployment(context, who, "create a deployment")
        try:
            new = validate_new(
                name=request.name,
                purpose=request.purpose,
                authorising_officer=request.authorising_officer,
                location=request.location,
                planned_start=wire.seconds(request.planned_start),
                planned_end=wire.seconds(request.planned_end),
                cameras=[(c.van_id, c.camera_id) for c in request.cameras],
                threshold=request.threshold if request.HasField("threshold") else None,
                threshold_override_reason=request.threshold_override_reason,
                watchlist_size_limit=request.watchlist_size_limit,
                policy=self.policy,
                default_size_limit=self.default_size_limit,
                max_size_limit=self.max_size_limit,
                rules=self.rules,
                where=request.where,
                urgent=request.urgent,
                expected_faces=request.expected_faces,
                false_alert_override_reason=request.false_alert_override_reason,
                now=self.clock(),
            )
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        deployment_id = f"dep-{uuid.uuid4().hex[:16]}"
        now = self.clock()
        # The record first: the janitor drops any collection that has no open record.
        await self.store.create(deployment_id, new, sealing.new_data_key(), who.identity, now)
        dimension = self.enroller.embedder.dimension
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
        await self._audit_threshold(deployment_id, who, new.threshold, new.threshold_override_reason, "create")
        record = await self.store.get(deployment_id)
        return pb.CreateDeploymentResponse(deployment=wire.deployment(record))

    async def _audit_threshold(
        self, deployment_id: str, who: Principal, threshold: Threshold, reason: str, step: str, previous=None
    ) -> None:
        """`threshold.overridden` (below the derived one, with its reason) or `threshold.set`, with every
        input of the operating point: entries, budget, curve version, the group that bound it."""
        await self.audit.record(
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

    async def PlanDeployment(self, request: pb.PlanDeploymentRequest, context) -> pb.PlanDeploymentResponse:
        await self.auth.require(context, READ_DEPLOYMENTS, "plan deployments")
        if not 0 < request.entries <= MAX_PLANNED_ENTRIES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"entries must be 1 to {MAX_PLANNED_ENTRIES:,}: the watchlist entries planned (images and templates)",
            )
        threshold = self.policy.resolve(None, "", request.entries)
        predicted = prediction.predict(
            self.policy.calibration, threshold.value, request.entries, request.expected_faces
        )
        return pb.PlanDeploymentResponse(
            operating_point=wire.operating_point(json.loads(operating.encode(threshold))),
            predicted_false_alerts=wire.prediction(predicted) if request.expected_faces else None,
        )

    async def GetDeployment(self, request: pb.GetDeploymentRequest, context) -> pb.GetDeploymentResponse:
        await self.auth.require(context, READ_DEPLOYMENTS, "read deployments", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        return pb.GetDeploymentResponse(deployment=wire.deployment(record))

    async def ListDeployments(self, request: pb.ListDeploymentsRequest, context) -> pb.ListDeploymentsResponse:
        who = await self.auth.require(context, READ_DEPLOYMENTS, "read deployments")
        visible = [r for r in await self.store.list() if who.may_see(r["deployment_id"])]
        return pb.ListDeploymentsResponse(deployments=[wire.deployment(r) for r in visible])

    async def CloseDeployment(self, request: pb.CloseDeploymentRequest, context) -> pb.CloseDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "close deployments", request.deployment_id)
        try:
            record = await self.closer.close(
                request.deployment_id,
                status=CLOSED,
                actor=who.identity,
                role=who.role,
                reason=request.reason or "closed by request",
            )
        except DeploymentNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no deployment {request.deployment_id!r}")
        return pb.CloseDeploymentResponse(deployment=wire.deployment(record))

    async def RatifyDeployment(self, request: pb.RatifyDeploymentRequest, context) -> pb.RatifyDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "ratify deployments", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        officer = request.officer.strip()

        refuse = self._refusal("deployment.ratification_refused", request.deployment_id, who, officer, context)
        if not officer or len(officer) > 200 or not officer.isprintable():
            await refuse(grpc.StatusCode.INVALID_ARGUMENT, "officer is required: the officer who ratifies in writing")
        if record.get("urgent") != "1":
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"deployment {request.deployment_id} was not authorised as urgent: there is nothing to ratify",
            )
        if record.get("ratified_by"):
            if record["ratified_by"] == officer:
                return pb.RatifyDeploymentResponse(deployment=wire.deployment(record))  # a repeat
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"deployment {request.deployment_id} was ratified by {record['ratified_by']} already",
            )
        if record["status"] != OPEN:
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"deployment {request.deployment_id} is {record['state']}: too late to ratify "
                f"({record.get('close_reason', '')})",
            )
        creator = record.get("created_by", "")
        if creator and who.identity == creator:
            # On the caller's token identity, not on the names typed: "Supt A Example" and
            # "Supt. A. Example" are one person, whose token is one principal.
            await refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{who.identity} created deployment {request.deployment_id}: it must be ratified by another "
                "principal (a different token holder), whatever officer name is given",
            )
        if same_name(officer, record.get("authorising_officer", "")):
            await refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{officer} authorised this deployment: another officer must ratify it"
                + (
                    ""
                    if creator
                    else " (its record, made before creators were recorded, names no creating principal: "
                    "only the officers' names could be compared)"
                ),
            )
        now = self.clock()
        if now > float(record.get("ratify_by") or 0):
            deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(record["ratify_by"])))
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"deployment {request.deployment_id} had to be ratified by {deadline}: it is being closed",
            )
        await self.store.set_field(request.deployment_id, ratified_by=officer, ratified_at=repr(now))
        await self.audit.record(
            "deployment.ratified", request.deployment_id, who.identity, who.role, officer=officer, ratified_at=now
        )
        record = await self.store.get(request.deployment_id)
        return pb.RatifyDeploymentResponse(deployment=wire.deployment(record))

    async def ReviewWatchlist(self, request: pb.ReviewWatchlistRequest, context) -> pb.ReviewWatchlistResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "review watchlists", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        officer = request.officer.strip()

        refuse = self._refusal("watchlist.review_refused", request.deployment_id, who, officer, context)
        if not officer or len(officer) > 200 or not officer.isprintable():
            await refuse(grpc.StatusCode.INVALID_ARGUMENT, "officer is required: who reviewed the watchlist")
        if record["status"] != OPEN:
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION, f"deployment {request.deployment_id} is {record['state']}"
            )
        images = int(record.get("enrolled_images") or 0)
        if not images:
            await refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the watchlist of {request.deployment_id} is empty: enrol it, then review it",
            )
        try:
            templates = await self._build_templates(request.deployment_id)
        except (CollectionMissing, LookupError):
            await refuse(grpc.StatusCode.FAILED_PRECONDITION, f"deployment {request.deployment_id} was closed")
        entries = images + len(templates)
        made = operating.decode(record) or {}
        source = made.get("threshold_source") or (OVERRIDDEN if record.get("threshold_override_reason") else DERIVED)
        try:
            threshold = self.policy.at_review(float(record["threshold"]), source, entries)
        except ListTooLarge as exc:
            await refuse(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        try:
            lookalikes = await self._template_lookalikes(request.deployment_id, templates, threshold.value)
        except (CollectionMissing, LookupError):
            await refuse(grpc.StatusCode.FAILED_PRECONDITION, f"deployment {request.deployment_id} was closed")
        before = reports.predicted(record)
        predicted = prediction.predict(
            self.policy.calibration, threshold.value, entries, before.expected_faces if before else 0
        )
        if before is not None and before.override_reason:
            predicted = dataclasses.replace(predicted, override_reason=before.override_reason)
        reviewed = await self.store.review(
            request.deployment_id, officer, images, self.clock(), entries, threshold, predicted
        )
        if not reviewed:
            await refuse(
                grpc.StatusCode.ABORTED,
                "images were enrolled while the review was recorded: review the watchlist as it stands now",
            )
        await self.audit.record(
            "watchlist.reviewed",
            request.deployment_id,
            who.identity,
            who.role,
            officer=officer,
            images=images,
            subjects=int(record.get("enrolled_subjects") or 0),
            templates=len(templates),
            template_lookalikes=len(lookalikes),
        )
        await self._audit_threshold(
            request.deployment_id,
            who,
            threshold,
            record.get("threshold_override_reason", "") if threshold.source == OVERRIDDEN else "",
            "review",
            previous=float(record["threshold"]),
        )
        photos_of = {t.subject_id: t.template_of for t in templates}
        key = await self.store.pseudonym_key(request.deployment_id) if lookalikes else b""
        for pair in lookalikes:
            await self.audit.record(
                "watchlist.lookalike",
                request.deployment_id,
                who.identity,
                who.role,
                subject=pseudonym(key, pair.subject_id),
                template_of=photos_of[pair.subject_id],
                other_subject=pseudonym(key, pair.other_subject_id),
                score=round(pair.score, 4),
            )
        record = await self.store.get(request.deployment_id)
        return pb.ReviewWatchlistResponse(deployment=wire.deployment(record), template_lookalikes=lookalikes)

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
        each photo for lookalikes (`_lookalikes`), a template is only made here."""

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

    async def GetWatchlistManifest(
        self, request: pb.GetWatchlistManifestRequest, context
    ) -> pb.GetWatchlistManifestResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "read watchlist manifests", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        rows = await self.store.manifest(request.deployment_id)
        closed_at = float(record.get("closed_at") or 0)
        kept_until = closed_at + self.rules.manifest_retention_days * 86400 if closed_at else None
        if kept_until is not None and (
            self.clock() > kept_until or (not rows and int(record.get("enrolled_images") or 0))
        ):
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"the manifest of {request.deployment_id} was deleted: manifests are kept "
                f"{self.rules.manifest_retention_days:g} days after close (the policy's manifest_retention_days)",
            )
        await self.audit.record(
            "watchlist.manifest_read", request.deployment_id, who.identity, who.role, entries=len(rows)
        )
        return pb.GetWatchlistManifestResponse(
            deployment=wire.deployment(record),
            entries=[wire.manifest_entry(r) for r in rows],
            kept_until=wire.timestamp(kept_until),
        )

    async def WasListed(self, request: pb.WasListedRequest, context) -> pb.WasListedResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "ask which watchlists listed a subject")
        subject_id = request.subject_id.strip()
        if not valid_subject_id(subject_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "subject_id must be 1-128 letters, digits or ._@:-")
        now = self.clock()
        retention_s = self.rules.manifest_retention_days * 86400
        closed = await self.store.listings(subject_id, now, retention_s)
        open_ = [r["deployment_id"] for r in await self.store.list() if r["status"] == OPEN]
        listings = []
        for deployment_id in sorted(set(closed) | set(open_)):
            record = await self.store.get(deployment_id)
            if record is None or not who.may_see(deployment_id):
                continue
            rows = [r for r in await self.store.manifest(deployment_id) if r["subject_id"] == subject_id]
            if rows:
                listings.append(wire.listing(record, rows))
        await self.audit.record(
            "subject.queried", "", who.identity, who.role, subject_id=subject_id, deployments=len(listings)
        )
        return pb.WasListedResponse(
            subject_id=subject_id, listings=listings, answered_since=wire.timestamp(now - retention_s)
        )

    async def GetDeploymentReport(
        self, request: pb.GetDeploymentReportRequest, context
    ) -> pb.GetDeploymentReportResponse:
        await self.auth.require(context, READ_DEPLOYMENTS, "read deployment reports", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        return pb.GetDeploymentReportResponse(report=wire.report(build_report(record, self.clock())))

    async def EnrolWatchlist(
        self, requests: AsyncIterator[pb.EnrolWatchlistRequest], context
    ) -> AsyncIterator[pb.EnrolWatchlistResponse]:
        first = await anext(aiter(requests), None)
        if first is None or not first.HasField("header"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be an EnrolHeader")
        deployment_id = first.header.deployment_id
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "enrol watchlists", deployment_id)
        record = await self._record(deployment_id, context)
        if record["status"] != OPEN:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"deployment {deployment_id} is {record['state']}")
        earliest = float(record["planned_start"]) - self.rules.compile_before_start_h * 3600
        if self.clock() < earliest:
            message = (
                f"the watchlist of {deployment_id} may be enrolled from {_utc(earliest)}, "
                f"{self.rules.compile_before_start_h:g} h before its window opens at {_utc(record['planned_start'])} "
                "(the policy's compile_before_start_h: a watchlist holds current intelligence); nothing was enrolled"
            )
            await self.audit.record("watchlist.enrol_refused", deployment_id, who.identity, who.role, message=message)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)
        reviewed = bool(record.get("reviewed_at"))
        lock = self._enrol_locks.setdefault(deployment_id, asyncio.Lock())
        async with lock:
            limit = int(record["watchlist_size_limit"])
            count = await asyncio.get_running_loop().run_in_executor(None, self._images, deployment_id)
            if first.header.expected_images and count + first.header.expected_images > limit:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{first.header.expected_images} images would take the watchlist to "
                    f"{count + first.header.expected_images}, over its limit of {limit}; "
                    "nothing was enrolled",
                )
            outcomes: Counter[str] = Counter()
            try:
                async for request in requests:
                    if not request.HasField("image"):
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only one EnrolHeader per stream")
                    if count >= limit:
                        await context.abort(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"the watchlist is full ({limit} images); {request.image.client_ref} was not enrolled",
                        )
                    try:
                        result = await self._enrol_one(
                            deployment_id, request.image, who, self._lookalike_threshold(record)
                        )
                    except DeploymentClosedDuringEnrolment:
                        await context.abort(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"deployment {deployment_id} was closed during enrolment",
                        )
                    outcomes[
                        "enrolled"
                        if result.status == pb.ENROL_STATUS_ENROLLED
                        else pb.RejectionReason.Name(result.reason).removeprefix("REJECTION_REASON_").lower()
                    ] += 1
                    if result.status == pb.ENROL_STATUS_ENROLLED:
                        count += 1
                    yield result
            finally:
                await self._finish_enrolment(deployment_id, who, outcomes, count, reviewed)

    async def _enrol_one(
        self, deployment_id: str, image: pb.WatchlistImage, who: Principal, threshold: float
    ) -> pb.EnrolWatchlistResponse:
        def rejected(reason: str, detail: str) -> pb.EnrolWatchlistResponse:
            metrics.ENROLMENTS.labels("rejected", reason).inc()
            return pb.EnrolWatchlistResponse(
                client_ref=image.client_ref,
                subject_id=image.subject_id,
                status=pb.ENROL_STATUS_REJECTED,
                reason=wire.REASONS[reason],
                detail=detail,
            )

        try:
            provenance = checked(image, self.rules, dt.datetime.fromtimestamp(self.clock(), dt.UTC).date())
        except EnrolRejected as exc:
            return rejected(exc.reason, exc.detail)
        loop = asyncio.get_running_loop()
        try:
            decoding = self.enroller.plan(image.image)  # the header only: bytes, pixels, format
            async with self._analysing:
                pixels = await self.decoder.decode(image.image, decoding.flag)
                analysed = await loop.run_in_executor(None, self.enroller.analyse, image.image, pixels)
        except ImageRejected as exc:
            return rejected(exc.reason, exc.detail)
        except EnrolRejected as exc:
            return rejected(exc.reason, exc.detail)
        if await self.store.image_enrolled(deployment_id, analysed.image_sha256):
            return rejected("duplicate", "this exact file is already enrolled in this deployment")
        nearest = await loop.run_in_executor(None, self.index.search, deployment_id, analysed.vector, 1)
        if nearest and nearest[0].score >= self.duplicate_similarity:
            return rejected(
                "duplicate",
                f"near-identical (similarity {nearest[0].score:.3f}) to an image already enrolled "
                f"for subject {nearest[0].subject_id}",
            )
        mismatch = await self._other_person(deployment_id, image, analysed.vector)
        if mismatch:
            return rejected("subject_mismatch", mismatch)
        entry = Entry(
            entry_id=str(uuid.uuid4()),
            vector=analysed.vector,
            subject_id=provenance.subject_id,
            category=provenance.category,
            source_reference=provenance.source_reference,
            approved_by=provenance.approved_by,
            enrolled_at=self.clock(),
            image_sha256=analysed.image_sha256,
        )
        lookalikes = await self._lookalikes(deployment_id, provenance.subject_id, analysed.vector, threshold)
        # One unit, shielded from the client: a client that goes away mid-way does not interrupt it
        # (a Redis transaction half-sent is never second-guessed); it ends recorded, or undone.
        await asyncio.shield(
            asyncio.ensure_future(self._add_entry(deployment_id, entry, provenance, analysed.thumbnail, who))
        )
        metrics.ENROLMENTS.labels("enrolled", "").inc()
        key = await self.store.pseudonym_key(deployment_id) if lookalikes else b""
        for other in lookalikes:
            await self.audit.record(
                "watchlist.lookalike",
                deployment_id,
                who.identity,
                who.role,
                subject=pseudonym(key, provenance.subject_id),
                entry_id=entry.entry_id,
                other_subject=pseudonym(key, other.subject_id),
                score=round(other.score, 4),
            )
        return pb.EnrolWatchlistResponse(
            client_ref=image.client_ref,
            subject_id=provenance.subject_id,
            status=pb.ENROL_STATUS_ENROLLED,
            entry_id=entry.entry_id,
            lookalikes=lookalikes,
        )

    def _lookalike_threshold(self, record: dict[str, str]) -> float:
        """Photos are checked for lookalikes at the lowest threshold the deployment may run at: the review
        derives its threshold again from the entries (a smaller list than its limit runs lower), so the
        threshold at enrolment is not the one that will decide."""
        return min(float(record["threshold"]), self.policy.lowest_derivable)

    async def _lookalikes(self, deployment_id: str, subject_id: str, vector, threshold: float) -> list[pb.Lookalike]:
        """Other subjects whose photos score at or above the deployment's threshold against this one:
        the same person enrolled twice, or relatives. A face of one would alert as the other."""
        search = functools.partial(self.index.search, exact=True)
        nearest = await asyncio.get_running_loop().run_in_executor(
            None, search, deployment_id, vector, LOOKALIKE_CANDIDATES
        )
        best: dict[str, float] = {}
        for hit in nearest:
            if hit.subject_id != subject_id and hit.score >= threshold:
                best[hit.subject_id] = max(best.get(hit.subject_id, 0.0), hit.score)
        return [pb.Lookalike(subject_id=s, score=v) for s, v in sorted(best.items(), key=lambda kv: -kv[1])]

    async def _other_person(self, deployment_id: str, image: pb.WatchlistImage, vector) -> str | None:
        """Why this photo seems to show someone else than the subject's photos enrolled so far, or None."""
        least = self.policy.same_subject_min
        if least is None:
            return None
        search = functools.partial(self.index.search, exact=True, subject_id=image.subject_id)
        own = await asyncio.get_running_loop().run_in_executor(None, search, deployment_id, vector, 1)
        if not own or own[0].score >= least:
            return None
        return (
            f"{image.client_ref or 'this photo'} and {own[0].source_reference or 'a photo enrolled before'}, both of "
            f"subject {image.subject_id}, score {own[0].score:.2f} together, under the {least:.2f} that two photos "
            "of one person reach 99 times in 100: two different people (a photo in the wrong folder?), or a photo "
            "too old or too poor to match the other; nothing of this photo was enrolled"
        )

    async def _add_entry(
        self, deployment_id: str, entry: Entry, provenance: Provenance, thumbnail: bytes, who: Principal
    ) -> None:
        """The entry into this service's index, onto the watchlist log (the match replicas' copies),
        then its record into Redis with its audit event (`watchlist.image_enrolled`, in the same
        transaction: an acknowledged image is audited whatever happens next). If the log or Redis does
        not take it, the entry is taken back out of both: the watchlist never holds a face whose
        subject and file Redis does not know (it would match, and alert would refuse the match as not
        enrolled)."""
        loop = asyncio.get_running_loop()
        data_key = await self.store.data_key(deployment_id)
        if data_key is None:
            raise DeploymentClosedDuringEnrolment(deployment_id)
        subject = pseudonym(await self.store.pseudonym_key(deployment_id), entry.subject_id)  # for the audit
        # Pending, and the review cleared, before anything of it is written: a crash from here on leaves
        # an entry the janitor takes back out (audited), never one matched under the old review.
        await self.store.prepare_entry(deployment_id, entry.entry_id, self.clock())
        try:
            await loop.run_in_executor(None, self.index.upsert, deployment_id, [entry])
        except CollectionMissing:
            raise DeploymentClosedDuringEnrolment(deployment_id) from None
        logged = False
        try:
            await self.watchlist_log.publish(changes.upserted(deployment_id, data_key, [entry]))
            logged = True
            count = await loop.run_in_executor(None, self._images, deployment_id)
            await self.store.record_enrolled(
                deployment_id,
                entry.subject_id,
                entry.image_sha256,
                count,
                entry.entry_id,
                thumbnail,
                manifest_row={**provenance.manifest_row(), "enrolled_at": entry.enrolled_at},
                audited=lambda pipe: self.audit.add(
                    pipe,
                    "watchlist.image_enrolled",
                    deployment_id,
                    who.identity,
                    who.role,
                    entry_id=entry.entry_id,
                    **audit_row(provenance, subject),
                    age_override_reason=provenance.age_override_reason or None,
                ),
            )
        except asyncio.CancelledError:  # the process is stopping: undone in a worker thread
            loop.run_in_executor(None, self._forget, deployment_id, entry.entry_id)
            asyncio.ensure_future(self._unlog(deployment_id, entry.entry_id, logged))
            raise
        except LookupError:
            raise DeploymentClosedDuringEnrolment(deployment_id) from None
        except Exception:
            # The log or Redis did not take it (unreachable, restarting): the client is told the call
            # failed (UNAVAILABLE) and can send the image again.
            await loop.run_in_executor(None, self._forget, deployment_id, entry.entry_id)
            await self._unlog(deployment_id, entry.entry_id, logged)
            raise

    def _images(self, deployment_id: str) -> int:
        """Images enrolled: the index's entries but the subjects' templates."""
        return self.index.count(deployment_id, templates=False)

    async def _unlog(self, deployment_id: str, entry_id: str, logged: bool = True) -> None:
        """The undone entry out of the watchlist log (if it reached it), then no longer pending. If the
        log or Redis cannot be reached, it stays pending: the janitor takes it out later."""
        try:
            if logged:
                await self.watchlist_log.publish(changes.deleted(deployment_id, [entry_id]))
            await self.store.drop_pending(deployment_id, entry_id)
        except (Unavailable, *TRANSIENT_ERRORS) as exc:
            log.error(
                "an undone entry stays pending, for the janitor to take out: %s",
                exc,
                extra={"deployment_id": deployment_id},
            )

    def _forget(self, deployment_id: str, entry_id: str) -> None:
        try:
            self.index.delete(deployment_id, [entry_id])
        except CollectionMissing:
            pass  # the deployment was closed meanwhile: its whole watchlist is gone
        log.warning("enrolment undone: it could not be recorded", extra={"deployment_id": deployment_id})

    async def _finish_enrolment(
        self, deployment_id: str, who: Principal, outcomes: Counter[str], count: int, reviewed: bool = False
    ) -> None:
        rejected = sum(n for k, n in outcomes.items() if k != "enrolled")
        try:
            await self.store.record_rejected(deployment_id, rejected)
        except TRANSIENT_ERRORS as exc:  # Redis is away: what was enrolled is still audited below
            log.warning("count of rejected images not updated: %s", exc, extra={"deployment_id": deployment_id})
        if outcomes:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.index.optimize, deployment_id)
            except CollectionMissing:
                pass  # closed meanwhile, or this service is stopping: nothing left to index
        try:
            await self.audit.outbox.drain()  # each image's audit event, now rather than at the next sweep
        except Exception as exc:  # noqa: BLE001 - kept in the outbox: the janitor's drain sends them
            log.warning("audit events of enrolled images not sent yet: %s", exc, extra={"deployment_id": deployment_id})
        await self.audit.record(
            "watchlist.enrolled",
            deployment_id,
            who.identity,
            who.role,
            enrolled=outcomes.get("enrolled", 0),
            rejected=rejected,
            rejections={k: n for k, n in outcomes.items() if k != "enrolled"},
            watchlist_size=count,
            # Enrolled after its review: the watchlist needs reviewing again before anything is matched.
            review_cleared=reviewed and bool(outcomes.get("enrolled")),
        )

    def _refusal(self, event: str, deployment_id: str, who: Principal, officer: str, context):
        """A refusal of an officer's act: audited (`event`, with the officer and why), then the call ended."""

        async def refuse(code, message: str) -> None:
            await self.audit.record(event, deployment_id, who.identity, who.role, officer=officer, message=message)
            await context.abort(code, message)

        return refuse

    async def _record(self, deployment_id: str, context) -> dict[str, str]:
        record = await self.store.get(deployment_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no deployment {deployment_id!r}")
        return record


def _utc(seconds: float | str) -> str:
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

"""The gRPC DeploymentService: lifecycle calls, each authorised, validated and audited. The servicer's
glue only: the rules are lfr_deployments.lifecycle and .rules, enrolment .enrolling, the review
.reviewing; a rule's `Refused` is answered here, in one place (`_answering`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import deployments_pb2_grpc
from lfr_deployments import operating, prediction, wire
from lfr_deployments.closing import Closer
from lfr_deployments.creating import Creator
from lfr_deployments.decoding import DecoderPool
from lfr_deployments.enrolling import Enrolment
from lfr_deployments.lifecycle import (
    CHANGED,
    FULL,
    INVALID,
    NOT_FOUND,
    PERMISSION,
    PRECONDITION,
    InvalidRequest,
    Refused,
    ThresholdPolicy,
    valid_subject_id,
    validate_new,
)
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.report import build_report
from lfr_deployments.reviewing import Review
from lfr_deployments.rules import (
    DeploymentNotFound,
    enrolment_open,
    enrolment_window,
    manifest_kept_until,
    planned_entries,
    ratify,
)
from lfr_deployments.store import DeploymentStore
from lfr_faces.enrolment import Enroller
from lfr_platform.audit import AuditLog
from lfr_platform.auth import READ_DEPLOYMENTS, WRITE_DEPLOYMENTS, Authenticator
from lfr_platform.clock import Clock, system
from lfr_platform.deployment_record import CLOSED, OPEN, DeploymentRecord
from lfr_watchlist import WatchlistIndex

# Each reason a rule refuses for, as the status the caller gets (lfr_deployments.lifecycle.Refused).
STATUS = {
    INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    CHANGED: grpc.StatusCode.ABORTED,
    FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


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
        self.rules = rules  # the force's policy file (deploy/policy.yaml)
        shared_io = {"store": store, "index": index, "watchlist_log": watchlist_log, "audit": audit}
        shared = {**shared_io, "policy": policy}
        self.enrolment = Enrolment(
            **shared,
            enroller=enroller,
            decoder=decoder,
            duplicate_similarity=duplicate_similarity,
            rules=rules,
            max_concurrent=max_concurrent_enrolments,
            clock=clock,
        )
        self.review = Review(**shared, clock=clock)
        self.creator = Creator(**shared_io, enroller=enroller, rules=rules, clock=clock)

    @contextlib.asynccontextmanager
    async def _answering(self, context, audited: str = "", deployment_id: str = "", who=None, **details):
        """A rule's refusal within, answered with its status and message; an officer's act refused is
        audited first (`audited`: the event, with `details` and the message)."""
        try:
            yield
        except Refused as refused:
            if audited:
                await self.audit.record(
                    audited, deployment_id, who.identity, who.role, **details, message=refused.detail
                )
            await context.abort(STATUS[refused.reason], refused.detail)

    async def _record(self, deployment_id: str, context) -> DeploymentRecord:
        async with self._answering(context):
            record = await self.store.get(deployment_id)
            if record is None:
                raise DeploymentNotFound(deployment_id)
        return record

    async def CreateDeployment(self, request: pb.CreateDeploymentRequest, context) -> pb.CreateDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "create a deployment")
        await self.auth.require_every_deployment(context, who, "create a deployment")
        async with self._answering(context):
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
        deployment_id = await self.creator.create(new, who)
        record = await self.store.get(deployment_id)
        return pb.CreateDeploymentResponse(deployment=wire.deployment(record))

    async def PlanDeployment(self, request: pb.PlanDeploymentRequest, context) -> pb.PlanDeploymentResponse:
        await self.auth.require(context, READ_DEPLOYMENTS, "plan deployments")
        async with self._answering(context):
            entries = planned_entries(request.entries)
        threshold = self.policy.resolve(None, "", entries)
        predicted = prediction.predict(self.policy.calibration, threshold.value, entries, request.expected_faces)
        return pb.PlanDeploymentResponse(
            operating_point=wire.operating_point(operating.encode(threshold)),
            predicted_false_alerts=wire.prediction(predicted) if request.expected_faces else None,
        )

    async def GetDeployment(self, request: pb.GetDeploymentRequest, context) -> pb.GetDeploymentResponse:
        await self.auth.require(context, READ_DEPLOYMENTS, "read deployments", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        return pb.GetDeploymentResponse(deployment=wire.deployment(record))

    async def ListDeployments(self, request: pb.ListDeploymentsRequest, context) -> pb.ListDeploymentsResponse:
        who = await self.auth.require(context, READ_DEPLOYMENTS, "read deployments")
        visible = [r for r in await self.store.list() if who.may_see(r.deployment_id)]
        return pb.ListDeploymentsResponse(deployments=[wire.deployment(r) for r in visible])

    async def CloseDeployment(self, request: pb.CloseDeploymentRequest, context) -> pb.CloseDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "close deployments", request.deployment_id)
        async with self._answering(context):
            record = await self.closer.close(
                request.deployment_id,
                status=CLOSED,
                actor=who.identity,
                role=who.role,
                reason=request.reason or "closed by request",
            )
        return pb.CloseDeploymentResponse(deployment=wire.deployment(record))

    async def RatifyDeployment(self, request: pb.RatifyDeploymentRequest, context) -> pb.RatifyDeploymentResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "ratify deployments", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        officer, now = request.officer.strip(), self.clock()
        event = "deployment.ratification_refused"
        async with self._answering(context, event, request.deployment_id, who, officer=officer):
            if not ratify(record, officer, who.identity, now):
                return pb.RatifyDeploymentResponse(deployment=wire.deployment(record))  # a repeat
        await self.store.set_field(request.deployment_id, ratified_by=officer, ratified_at=now)
        await self.audit.record(
            "deployment.ratified", request.deployment_id, who.identity, who.role, officer=officer, ratified_at=now
        )
        record = await self.store.get(request.deployment_id)
        return pb.RatifyDeploymentResponse(deployment=wire.deployment(record))

    async def ReviewWatchlist(self, request: pb.ReviewWatchlistRequest, context) -> pb.ReviewWatchlistResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "review watchlists", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        officer = request.officer.strip()
        async with self._answering(context, "watchlist.review_refused", request.deployment_id, who, officer=officer):
            record, lookalikes = await self.review.review(record, officer, who)
        return pb.ReviewWatchlistResponse(deployment=wire.deployment(record), template_lookalikes=lookalikes)

    async def GetWatchlistManifest(
        self, request: pb.GetWatchlistManifestRequest, context
    ) -> pb.GetWatchlistManifestResponse:
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "read watchlist manifests", request.deployment_id)
        record = await self._record(request.deployment_id, context)
        rows = await self.store.manifest(request.deployment_id)
        async with self._answering(context):
            kept_until = manifest_kept_until(record, len(rows), self.clock(), self.rules.manifest_retention_days)
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
        async with self._answering(context):
            if not valid_subject_id(subject_id):
                raise InvalidRequest("subject_id must be 1-128 letters, digits or ._@:-")
        now = self.clock()
        retention_s = self.rules.manifest_retention_days * 86400
        closed = await self.store.listings(subject_id, now, retention_s)
        open_ = [r.deployment_id for r in await self.store.list() if r.status == OPEN]
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
        async with self._answering(context):
            if first is None or not first.HasField("header"):
                raise InvalidRequest("the first message must be an EnrolHeader")
        deployment_id = first.header.deployment_id
        who = await self.auth.require(context, WRITE_DEPLOYMENTS, "enrol watchlists", deployment_id)
        record = await self._record(deployment_id, context)
        async with self._answering(context):
            enrolment_open(record)
        async with self._answering(context, "watchlist.enrol_refused", deployment_id, who):
            enrolment_window(record, self.clock(), self.rules.compile_before_start_h)
        results = self.enrolment.stream(record, first.header.expected_images, requests, who)
        async with self._answering(context), contextlib.aclosing(results):
            async for result in results:
                yield result

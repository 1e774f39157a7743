"""The gRPC AlertService: alerts read, and the officers' decisions on them, each authorised,
validated, stored atomically with what announces it, and audited. Refusals are audited too."""

from __future__ import annotations

import logging
import uuid

import grpc

from lfr.v1 import alerts_pb2 as pb
from lfr.v1 import alerts_pb2_grpc, common_pb2
from lfr_alert import wire
from lfr_alert.adjudication import (
    ADJUDICATION,
    ENGAGEMENT,
    OUTCOME,
    Change,
    DecisionInput,
    DecisionRefused,
    count_changes,
    decide,
    perceived_deltas,
)
from lfr_alert.alerting import Alert
from lfr_alert.monitor import fleet_counts
from lfr_alert.store import AlertNotFound, RedisAlertStore
from lfr_contracts import ALERTS_ADJUDICATED, ALERTS_RAISED, camera_key
from lfr_platform import metrics, sealing
from lfr_platform.audit import ID_LIMIT, AuditLog, audit_event
from lfr_platform.auth import (
    CORRECT_DECISIONS,
    DECIDE_ALERTS,
    DECIDE_HELD_ALERTS,
    READ_ALERTS,
    Authenticator,
    Principal,
)
from lfr_platform.clock import Clock, system
from lfr_platform.equity import stat_name
from lfr_platform.logs import printable
from lfr_platform.outbox import Outbox, OutboxRecord
from lfr_platform.registry import DeploymentRegistry
from lfr_platform.signing import sign_alert

log = logging.getLogger(__name__)

_STATUS = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "permission": grpc.StatusCode.PERMISSION_DENIED,
    "held": grpc.StatusCode.FAILED_PRECONDITION,
}
_IMAGE_KINDS = (pb.ALERT_IMAGE_KIND_PROBE, pb.ALERT_IMAGE_KIND_REFERENCE, pb.ALERT_IMAGE_KIND_SCENE)
_AUDIT_EVENTS = {
    ADJUDICATION: "alert.adjudicated",
    ENGAGEMENT: "alert.engagement_recorded",
    OUTCOME: "alert.outcome_recorded",
}


class AlertService(alerts_pb2_grpc.AlertServiceServicer):
    def __init__(
        self,
        *,
        store: RedisAlertStore,
        registry: DeploymentRegistry,
        auth: Authenticator,
        audit: AuditLog,
        outbox: Outbox,
        topic_prefix: str,
        clock: Clock = system,
    ) -> None:
        self.clock = clock
        self.store = store
        self.registry = registry
        self.auth = auth
        self.audit = audit
        self.outbox = outbox
        self.topic_prefix = topic_prefix

    # --- reading -------------------------------------------------------------------------------
    async def ListAlerts(self, request: pb.ListAlertsRequest, context) -> pb.ListAlertsResponse:
        if not request.deployment_id:
            await self.auth.require(context, READ_ALERTS, "read alerts")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deployment_id is required")
        await self.auth.require(context, READ_ALERTS, "read alerts", request.deployment_id)
        if await self.registry.lookup(request.deployment_id) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no deployment {request.deployment_id!r}")
        states = {wire.STATE_NAME[s] for s in request.states if s in wire.STATE_NAME}
        alerts = [
            a
            for a in await self.store.list(request.deployment_id)
            if (not states or a.state in states) and (not request.van_id or a.van_id == request.van_id)
        ]
        return pb.ListAlertsResponse(alerts=[await self._signed(wire.alert_raised(a)) for a in alerts])

    async def GetAlert(self, request: pb.GetAlertRequest, context) -> pb.GetAlertResponse:
        who = await self.auth.require(context, READ_ALERTS, "read alerts")
        alert = await self._visible(request.alert_id, who, "read alerts", context)
        return pb.GetAlertResponse(alert=await self._signed(wire.alert_raised(alert)))

    async def GetAlertImages(self, request: pb.GetAlertImagesRequest, context) -> pb.GetAlertImagesResponse:
        who = await self.auth.require(context, READ_ALERTS, "see alert images")
        # Checked before the alert is looked up: the answer is the same whether it exists or not.
        kinds = set(request.kinds) or set(_IMAGE_KINDS)
        if len(kinds) < len(request.kinds) or not kinds <= set(_IMAGE_KINDS):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "kinds: probe, reference or scene, each once")
        alert = await self._visible(request.alert_id, who, "see alert images", context)
        view = await self.registry.lookup(alert.deployment_id)
        sealed = await self.store.crop(alert)
        if view is None or view.data_key is None or view.state in ("closed", "expired") or sealed is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"the images of alert {alert.alert_id} were deleted with deployment {alert.deployment_id}",
            )

        def unseal(data: bytes) -> bytes:
            return sealing.unseal(view.data_key, data, alert.deployment_id)

        response = pb.GetAlertImagesResponse()
        if pb.ALERT_IMAGE_KIND_PROBE in kinds:
            response.probe_jpeg = unseal(sealed)
        if pb.ALERT_IMAGE_KIND_REFERENCE in kinds and (reference := await self.store.reference(alert)):
            response.reference_jpeg = unseal(reference)
        if pb.ALERT_IMAGE_KIND_SCENE in kinds and (kept := await self.store.scene(alert)):
            scene = common_pb2.SceneImage.FromString(kept)
            response.scene_status = scene.status
            if scene.status == common_pb2.SCENE_STATUS_COMPOSED:
                response.scene_jpeg = unseal(scene.image)
                response.scene_face.CopyFrom(scene.face)
                response.scene_region.CopyFrom(scene.region)
        return response

    # --- deciding ------------------------------------------------------------------------------
    async def AdjudicateAlert(self, request: pb.AdjudicateAlertRequest, context) -> pb.AdjudicateAlertResponse:
        value = wire.OUTCOME_NAME.get(request.outcome, "")
        perceived = {"sex": request.perceived_sex, "ethnicity": request.perceived_ethnicity}
        alert, changed = await self._decide(
            request.decision, ADJUDICATION, value, "", context, {d: g for d, g in perceived.items() if g}
        )
        return pb.AdjudicateAlertResponse(alert=alert, changed=changed)

    async def RecordEngagement(self, request: pb.RecordEngagementRequest, context) -> pb.RecordEngagementResponse:
        value = "engaged" if request.engaged else "not_engaged"
        alert, changed = await self._decide(request.decision, ENGAGEMENT, value, "", context)
        return pb.RecordEngagementResponse(alert=alert, changed=changed)

    async def RecordOutcome(self, request: pb.RecordOutcomeRequest, context) -> pb.RecordOutcomeResponse:
        value = wire.FINAL_NAME.get(request.outcome, "")
        alert, changed = await self._decide(request.decision, OUTCOME, value, request.detail, context)
        return pb.RecordOutcomeResponse(alert=alert, changed=changed)

    async def _decide(
        self,
        request: pb.DecisionRequest,
        step: str,
        value: str,
        detail: str,
        context,
        perceived: dict[str, str] | None = None,
    ) -> tuple[pb.AlertRaised, bool]:
        action = f"record the {step} of alerts"
        who = await self.auth.require(context, DECIDE_ALERTS, action)
        alert = await self._visible(request.alert_id, who, action, context)
        # The deployment's lists of perceived groups and its equity block: the policy's at its creation.
        view = await self.registry.lookup(alert.deployment_id)
        decision = DecisionInput(
            step=step,
            value=value,
            officer=request.officer,
            recorded_by=who.identity,
            role=who.role,
            at=self.clock(),
            may_correct=who.role in CORRECT_DECISIONS,
            note=request.note,
            detail=detail,
            correction_reason=request.correction_reason,
            revision=request.revision,
            may_decide_held=who.role in DECIDE_HELD_ALERTS,
            perceived=perceived or {},
            perceived_lists=view.perceived_groups if view is not None else {},
        )
        equity = view.equity if view is not None else None
        try:
            after, change = await self.store.apply(
                alert.alert_id,
                lambda current: decide(current, decision),
                lambda c: self._announce(c, step, who, decision),
                lambda c: {
                    **count_changes(step, c.previous, value),
                    **{stat_name(*key): n for key, n in perceived_deltas(c).items()},
                },
                lambda c: fleet_counts(c, equity),
            )
        except DecisionRefused as exc:
            await self._refused(who, alert, step, exc.reason, exc.message)
            await context.abort(_STATUS[exc.reason], exc.message)
        except AlertNotFound:  # its retention ended between the read and the decision
            await self._refused(who, alert, step, "not_found", f"no alert {alert.alert_id!r}")
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {alert.alert_id!r}")
        if change is not None:
            self._count(change, step, value)
            log.info(
                "alert %s: %s %s%s",
                after.alert_id,
                step,
                value,
                " (correction)" if change.correction else "",
                extra={"deployment_id": after.deployment_id, "actor": who.identity},
            )
            try:
                await self.outbox.drain()  # now rather than at the next tick; kept if the broker is down
            except Exception as exc:  # noqa: BLE001 - the records are kept and drained later
                log.warning("decision records not sent yet: %s", exc)
        return await self._signed(wire.alert_raised(after)), change is not None

    async def _signed(self, revision):
        """The revision (or decision event) signed with its deployment's alert key (unsigned once that
        key has expired, the operational retention after the deployment's end)."""
        key = await self.registry.alert_key(revision.camera.deployment_id)
        if key is not None:
            sign_alert(key, revision)
        return revision

    async def _announce(self, change: Change, step: str, who: Principal, d: DecisionInput) -> list[OutboxRecord]:
        """What tells the world about the decision: the alert's new revision (signed; its probe face
        sealed, as on the topic), the decision event and the audit event, all kept in the outbox."""
        alert = change.alert
        key = camera_key(wire.camera(alert))
        revision = await self._signed(wire.alert_raised(alert, await self.store.crop(alert) or b""))
        event_id = uuid.uuid4().hex
        audit = audit_event(
            "alert.corrected" if change.correction else _AUDIT_EVENTS[step],
            alert.deployment_id,
            who.identity,
            who.role,
            alert_id=alert.alert_id,
            van_id=alert.van_id,
            camera_id=alert.camera_id,
            step=step,
            value=d.value,
            previous=change.previous or None,
            officer=d.officer.strip(),
            note=d.note.strip() or None,
            detail=d.detail.strip() or None,
            correction_reason=d.correction_reason.strip() or None,
            revision=alert.revision,
            # That a perceived group was recorded or changed, never which: the trail is kept forever, the
            # values only as counts (docs/deletion.md).
            perceived_recorded=(sorted(alert.perceived) or None) if step == ADJUDICATION else None,
            perceived_changed=_perceived_changed(change) or None,
        )
        return [
            OutboxRecord(ALERTS_RAISED.name(self.topic_prefix), key, ALERTS_RAISED.encode(revision)),
            OutboxRecord(
                ALERTS_ADJUDICATED.name(self.topic_prefix),
                key,
                ALERTS_ADJUDICATED.encode(await self._signed(wire.alert_adjudicated(change, step, event_id))),
            ),
            self.audit.as_record(audit),
        ]

    def _count(self, change: Change, step: str, value: str) -> None:
        alert = change.alert
        labels = {"deployment_id": alert.deployment_id, "van_id": alert.van_id, "camera_id": alert.camera_id}
        if step == ADJUDICATION:
            if change.previous != value:  # not when a correction changed only the perceived groups
                metrics.ALERTS_ADJUDICATED_TOTAL.labels(**labels, outcome=value).inc()
            if change.previous and change.previous != value:
                metrics.ADJUDICATIONS_WITHDRAWN.labels(**labels, outcome=change.previous).inc()
            elif not change.previous:
                metrics.ALERT_DECISION_SECONDS.labels(**labels).observe(max(0.0, alert.updated_at - alert.raised_at))
            for (outcome, dimension, group), n in perceived_deltas(change).items():
                if outcome == "false":
                    counter = metrics.FALSE_ALERTS_BY_GROUP if n > 0 else metrics.FALSE_ALERTS_BY_GROUP_WITHDRAWN
                    counter.labels(alert.deployment_id, dimension, group).inc(abs(n))
        elif step == ENGAGEMENT:
            metrics.ALERT_ENGAGEMENTS.labels(**labels, engaged=str(value == "engaged").lower()).inc()
        else:
            metrics.ALERT_FINAL_OUTCOMES.labels(**labels, outcome=value).inc()

    # --- helpers -------------------------------------------------------------------------------
    async def _visible(self, alert_id: str, who: Principal, action: str, context) -> Alert:
        """The alert, if it exists and the caller may see its deployment; else a refusal, audited."""
        # An id longer than any the service makes names no alert: answered as any unknown id, unread.
        alert = await self.store.get(alert_id) if alert_id and len(alert_id) <= ID_LIMIT else None
        if alert is None:
            await self._refused(who, None, "", "not_found", f"no alert {printable(alert_id, ID_LIMIT)!r}")
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {printable(alert_id, ID_LIMIT)!r}")
        if not who.may_see(alert.deployment_id):
            # Audited as the denial it is, but answered as an unknown id: a token scoped to other
            # deployments cannot tell which alert ids exist.
            await self.auth.audit_denied(who, action, alert.deployment_id)
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {printable(alert_id, ID_LIMIT)!r}")
        return alert

    async def _refused(self, who: Principal, alert: Alert | None, step: str, reason: str, message: str) -> None:
        metrics.ALERT_DECISIONS_REFUSED.labels(reason).inc()
        await self.audit.record(
            "alert.refused",
            alert.deployment_id if alert else "",
            who.identity,
            who.role,
            alert_id=alert.alert_id if alert else None,
            step=step or None,
            reason=reason,
            message=message,
        )


def _perceived_changed(change: Change) -> list[str]:
    """The perceived dimensions a correction changed or added (their values are not audited)."""
    if not change.previous or change.before is None:
        return []
    before, after = change.before.perceived, change.alert.perceived
    return sorted(d for d in set(before) | set(after) if before.get(d) != after.get(d))

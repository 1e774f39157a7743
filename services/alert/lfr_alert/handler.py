"""Matches in, alerts out: alert's handler (one alert per pass and subject, revisions signed)."""

from __future__ import annotations

import logging

from lfr.v1 import matches_pb2
from lfr_alert.settings import AlertSettings
from lfr_alert.store import RedisAlertStore
from lfr_alert.wire import alert_raised, match_to_fold
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND, camera_key
from lfr_platform import metrics
from lfr_platform.clock import Clock, system
from lfr_platform.registry import DeploymentRegistry
from lfr_platform.signing import sign_alert
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import Outcome, Output, Rejected, TransientError

log = logging.getLogger(__name__)


class AlertHandler(DeploymentStage[matches_pb2.MatchFound]):
    input = MATCHES_FOUND

    def __init__(
        self, store: RedisAlertStore, registry: DeploymentRegistry, settings: AlertSettings, clock: Clock = system
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.clock = clock

    async def one(self, record: Admitted[matches_pb2.MatchFound]) -> Outcome:
        match = record.message
        if not match.match_id or not match.subject_id:
            return Rejected("invalid_match", "match_id and subject_id are required")
        # Only match can sign with the deployment's key: a record produced onto the topic by anyone
        # else, or replayed from another deployment, raises no alert.
        if not record.verify(match, "match"):
            return Rejected("unauthenticated_match", "the match is not signed with its deployment's key")
        # The signature covers the capture time: neither an old match nor one announced before can be
        # passed off as new (docs/decisions/0014-replay-proof-matches.md).
        now = self.clock()
        captured = match.captured_at.ToNanoseconds() / 1e9
        age, limit = now - captured, self.settings.max_match_age_s
        if age > limit:
            return Rejected("stale_match", f"captured {age:.0f} s ago, more than {limit:g} s")
        if await self.store.announced(match.camera.deployment_id, match.match_id):
            return Rejected("replayed_match", f"match {match.match_id} was announced before")
        if not await self.registry.enrolled(match.camera.deployment_id, match.subject_id):
            return Rejected("subject_not_enrolled", f"{match.subject_id!r} is not on the deployment's watchlist")
        record.open(match.probe_crop)  # sealed by detect for this deployment (SealError: dead-lettered)
        if match.scene.image:
            record.open(match.scene.image)  # the scene likewise: kept only if the alert's key opens it
        # A runner-up (another subject) within the deployment's min_margin holds the alert for a supervisor.
        to_fold = match_to_fold(match, match.probe_crop, record.deployment.min_margin)
        folded = await self.store.fold(to_fold, now, self.settings.window_s)
        if not folded.news:
            # A re-delivered match (a crash upstream or here) whose alert the broker already has as it
            # is: each revision is published once (docs/alerts.md, the topic's contract).
            return []
        labels = metrics.camera_labels(match.camera)
        metrics.ALERT_REVISIONS.labels(**labels).inc()
        if folded.created:
            metrics.ALERTS.labels(**labels).inc()
            metrics.CAPTURE_TO_ALERT_SECONDS.observe(max(0.0, now - folded.alert.first_captured_at))
        if folded.held:
            metrics.ALERTS_HELD.labels(**labels).inc()
            log.info(
                "alert %s held for a supervisor: a runner-up within the policy's min_margin",
                folded.alert.alert_id,
                extra={"deployment_id": match.camera.deployment_id, "margin": round(folded.alert.margin or 0.0, 4)},
            )
        # The face stays sealed on the topic; the revision is signed (docs/decisions/0015).
        revision = alert_raised(folded.alert, folded.sealed_crop)
        signing_key = await self.registry.alert_key(match.camera.deployment_id)
        if signing_key is None:
            raise TransientError(f"no alert key for {match.camera.deployment_id} in Redis (yet)")
        sign_alert(signing_key, revision)
        return [Output(ALERTS_RAISED, camera_key(match.camera), revision)]

    async def process(self, records: list[Admitted[matches_pb2.MatchFound]]) -> list[Outcome]:
        """One outcome per match; a revision that an earlier match of the batch already publishes is
        not published again (two re-delivered matches of one alert both find its current revision)."""
        outcomes = await super().process(records)
        publishing: set[tuple[str, int]] = set()
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, list):
                fresh = [o for o in outcome if (o.message.alert_id, o.message.revision) not in publishing]
                publishing.update((o.message.alert_id, o.message.revision) for o in fresh)
                outcomes[i] = fresh
        return outcomes

    async def published(self, done: list[tuple[matches_pb2.MatchFound, Outcome]]) -> None:
        """The broker has the revisions: their matches are announced, and refused if they come again,
        and each alert's highest revision published is remembered (none is published twice)."""
        announced = [m for m, outcome in done if isinstance(outcome, list)]
        revisions: dict[str, int] = {}
        for _, outcome in done:
            for output in outcome if isinstance(outcome, list) else ():
                alert = output.message
                revisions[alert.alert_id] = max(revisions.get(alert.alert_id, 0), alert.revision)
        await self.store.mark_announced(announced, revisions)

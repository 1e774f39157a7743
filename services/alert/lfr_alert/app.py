"""Wires alert: matches.found.v1 -> fold in Redis -> alerts.raised.v1; the AlertService (gRPC) for
the control room's decisions; the outbox that carries decisions to the broker; the sweep that
counts alerts waiting for a decision."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr.v1 import alerts_pb2, alerts_pb2_grpc, matches_pb2
from lfr_alert.adjudication import FINAL_OUTCOMES, OUTCOMES
from lfr_alert.alerting import RAISED
from lfr_alert.monitor import EquityMonitor
from lfr_alert.service import AlertService
from lfr_alert.settings import AlertSettings
from lfr_alert.store import RedisAlertStore
from lfr_alert.wire import alert_raised, match_to_fold
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND, camera_key
from lfr_platform import metrics
from lfr_platform.audit import AuditLog
from lfr_platform.audit_roots import root_signing_key
from lfr_platform.auth import Authenticator
from lfr_platform.clock import Clock, system
from lfr_platform.http import Health, HttpServer
from lfr_platform.kafka import new_producer, start_with_retry
from lfr_platform.outbox import Outbox
from lfr_platform.registry import CLOSED, EXPIRED, DeploymentRegistry, RedisKeys
from lfr_platform.rpc import GrpcServer
from lfr_platform.runtime import pause
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_platform.signing import sign_alert
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import TRANSIENT_ERRORS, Outcome, Output, Rejected, StageRunner, TransientError

log = logging.getLogger(__name__)

SERVICE_NAME = alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
MAX_REQUEST_BYTES = 64 * 1024


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


class Sweep:
    """Counts, per open deployment and van, the alerts waiting for a decision and the age of the
    oldest (what the 'alert left unadjudicated' rule watches); starts the per-camera counters of the
    cameras open deployments cover at 0; measures the false alerts per perceived group (the equity
    monitor)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        registry: DeploymentRegistry,
        store: RedisAlertStore,
        interval_s: float,
        clock: Clock = system,
    ) -> None:
        self.clock = clock
        self.client = client
        self.keys = keys
        self.store = store
        self.registry = registry
        self.interval_s = interval_s
        self._reported: set[tuple[str, str]] = set()
        self._budgets: set[str] = set()  # deployments whose budget is exported
        self.equity = EquityMonitor(client, keys)
        self.series = metrics.CameraSeries(
            (metrics.ALERTS, ((),)),
            (metrics.ALERT_REVISIONS, ((),)),
            (metrics.ALERTS_HELD, ((),)),
            (metrics.ALERTS_ADJUDICATED_TOTAL, tuple((o,) for o in OUTCOMES)),
            (metrics.ADJUDICATIONS_WITHDRAWN, tuple((o,) for o in OUTCOMES)),
            (metrics.ALERT_ENGAGEMENTS, (("true",), ("false",))),
            (metrics.ALERT_FINAL_OUTCOMES, tuple((o,) for o in FINAL_OUTCOMES)),
        )

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except TRANSIENT_ERRORS as exc:
                log.warning("alert sweep postponed: %s", exc)
            await pause(self.interval_s)

    async def sweep(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        waiting: dict[tuple[str, str], list[float]] = {}
        cameras: set[tuple[str, str, str]] = set()
        open_views = []
        ids = [raw.decode() for raw in await self.client.zrange(self.keys.all_deployments(), 0, -1)]
        for deployment_id in ids:
            view = await self.registry.lookup(deployment_id)
            if view is None or view.state in (CLOSED, EXPIRED):
                continue
            open_views.append(view)
            cameras.update((deployment_id, van, camera) for van, camera in view.cameras)
            for alert in await self.store.list(deployment_id):
                ages = waiting.setdefault((deployment_id, alert.van_id), [])
                if alert.state == RAISED:
                    ages.append(now - alert.raised_at)
        # Each open deployment's false-alert budget (its policy's, copied at creation): the limit
        # LfrFalseAlertRateHigh holds its vans to, one figure with the threshold derived from it.
        budgets = {v.deployment_id: v.false_alert_budget for v in open_views if v.false_alert_budget is not None}
        for gone in self._budgets - set(budgets):
            metrics.FALSE_ALERT_LIMIT.remove(gone)
        for deployment_id, budget in budgets.items():
            metrics.FALSE_ALERT_LIMIT.labels(deployment_id).set(budget)
        self._budgets = set(budgets)
        for labels in self._reported - set(waiting):
            metrics.ALERTS_UNADJUDICATED.remove(*labels)
            metrics.ALERT_OLDEST_UNADJUDICATED_SECONDS.remove(*labels)
        for labels, ages in waiting.items():
            metrics.ALERTS_UNADJUDICATED.labels(*labels).set(len(ages))
            metrics.ALERT_OLDEST_UNADJUDICATED_SECONDS.labels(*labels).set(max(ages, default=0.0))
        self._reported = set(waiting)
        self.series.keep(cameras)
        # The fleet's window is tested against the newest deployment's policy (by creation time).
        newest = next((v for v in open_views if v.deployment_id == ids[-1]), None) if ids else None
        if ids and newest is None:
            newest = await self.registry.lookup(ids[-1])
        await self.equity.measure(now, open_views, newest)


class ControlRoom:
    """The AlertService, the outbox and the sweep, started once the producer is up."""

    def __init__(self, platform: PlatformSettings, server: GrpcServer, outbox: Outbox, sweep: Sweep) -> None:
        self.platform = platform
        self.server = server
        self.outbox = outbox
        self.sweep = sweep

    @property
    def port(self) -> int:
        return self.server.port

    async def run(self) -> None:
        producer = await start_with_retry(lambda: new_producer(self.platform), "alert producer")
        self.outbox.producer = producer
        await self.server.start()
        tasks = [asyncio.create_task(self.outbox.run()), asyncio.create_task(self.sweep.run())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.stop()
            await producer.stop()


@dataclass
class AlertShell(ServiceShell):
    """alert's shell, with its AlertService reachable (its gRPC port)."""

    control: ControlRoom | None = None


def build(
    platform: PlatformSettings,
    settings: AlertSettings,
    *,
    redis: aioredis.Redis | None = None,
    clock: Clock = system,
) -> AlertShell:
    redis = redis or platform.redis_client()
    keys = RedisKeys(platform.redis_prefix)
    outbox = Outbox(redis, keys.outbox())
    store = RedisAlertStore(redis, keys, outbox, platform.operational_retention_s)
    key_wrap = platform.key_wrap()
    registry = DeploymentRegistry(redis, keys, key_wrap)
    audit = AuditLog(outbox, platform.topic_prefix, writer_key=root_signing_key(key_wrap))
    health = Health("kafka", "topics", "grpc")
    server = GrpcServer(
        settings.grpc_host,
        settings.grpc_port,
        health_state=health,
        tls_cert_file=settings.grpc_tls_cert_file,
        tls_key_file=settings.grpc_tls_key_file,
        # Every request is a few fields (a note is at most 2,000 characters): anything larger is refused
        # RESOURCE_EXHAUSTED before it is read, whatever alert it names.
        max_receive_bytes=MAX_REQUEST_BYTES,
    )
    service = AlertService(
        store=store,
        registry=registry,
        auth=Authenticator(platform.token_book(), audit),
        audit=audit,
        outbox=outbox,
        topic_prefix=platform.topic_prefix,
        clock=clock,
    )
    server.add(service, alerts_pb2_grpc.add_AlertServiceServicer_to_server, SERVICE_NAME)
    sweep = Sweep(redis, keys, registry, store, settings.sweep_interval_s, clock)
    control = ControlRoom(platform, server, outbox, sweep)
    runner = StageRunner("alert", AlertHandler(store, registry, settings, clock), platform, health)
    return AlertShell(
        name="alert",
        platform=platform,
        health=health,
        http=HttpServer(health, settings.http_host, settings.http_port),
        tasks=[control.run, runner.run],
        closers=[redis.aclose],
        control=control,
    )

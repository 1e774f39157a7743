"""Wires alert: matches.found.v1 -> fold in Redis -> alerts.raised.v1; the AlertService (gRPC) for
the control room's decisions; the outbox that carries decisions to the broker; the sweep that
counts alerts waiting for a decision."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from lfr.v1 import alerts_pb2, alerts_pb2_grpc
from lfr_alert.adjudication import FINAL_OUTCOMES, OUTCOMES
from lfr_alert.alerting import RAISED
from lfr_alert.handler import AlertHandler
from lfr_alert.monitor import EquityMonitor
from lfr_alert.service import AlertService
from lfr_alert.settings import AlertSettings
from lfr_alert.store import RedisAlertStore
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
from lfr_platform.stage import TRANSIENT_ERRORS, StageRunner

log = logging.getLogger(__name__)

SERVICE_NAME = alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
MAX_REQUEST_BYTES = 64 * 1024


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

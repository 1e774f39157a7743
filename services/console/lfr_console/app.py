"""Wires console: the web page and its API (aiohttp) in front of the AlertService and the
DeploymentService, the live feed from alerts.raised.v1, sessions in Redis, and a watch on what the
page depends on (the broker, the AlertService) so it can say so when one is away."""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.v1 import alerts_pb2_grpc, deployments_pb2_grpc
from lfr_console.feed import Feed
from lfr_console.sessions import SessionStore
from lfr_console.settings import ConsoleSettings
from lfr_console.signin import KeptAudit, SignIns
from lfr_console.web import Backends, Console
from lfr_platform import registry
from lfr_platform.clock import Clock, system
from lfr_platform.http import Health, HttpServer
from lfr_platform.outbox import Outbox
from lfr_platform.registry import RedisKeys
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings

# Largest request the page accepts (413 beyond): a decision or a sign-in is a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024

log = logging.getLogger(__name__)

_ALERT_SERVICE = "lfr.v1.AlertService"


def _channel(address: str, settings: ConsoleSettings) -> grpc.aio.Channel:
    if settings.grpc_tls_ca_file:
        credentials = grpc.ssl_channel_credentials(settings.grpc_tls_ca_file.read_bytes())
        return grpc.aio.secure_channel(address, credentials)
    return grpc.aio.insecure_channel(address)


class WebServer:
    """The page's own server (the metrics server is the shell's, on another port)."""

    def __init__(self, console: Console, settings: ConsoleSettings, health: Health) -> None:
        self.console = console
        self.settings = settings
        self.health = health
        self.port = settings.web_port
        self._runner: web.AppRunner | None = None

    async def run(self) -> None:
        self._runner = web.AppRunner(self.console.application(), access_log=None)
        await self._runner.setup()
        context = None
        if self.settings.web_tls_cert_file and self.settings.web_tls_key_file:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.settings.web_tls_cert_file, self.settings.web_tls_key_file)
        site = web.TCPSite(self._runner, self.settings.web_host, self.settings.web_port, ssl_context=context)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("console on %s://%s:%d/", "https" if context else "http", self.settings.web_host, self.port)
        self.health.set("web", True)
        try:
            await asyncio.Event().wait()
        finally:
            self.health.set("web", False)
            await self._runner.cleanup()


class Watch:
    """Is the broker reachable, does the AlertService answer? Told to the feed, hence to every page."""

    def __init__(self, feed: Feed, platform: PlatformSettings, settings: ConsoleSettings) -> None:
        self.feed = feed
        self.platform = platform
        self.settings = settings

    async def run(self) -> None:
        channel = _channel(self.settings.alert_address, self.settings)
        health = health_pb2_grpc.HealthStub(channel)
        try:
            while True:
                self.feed.set_status("broker", await self._broker_reachable())
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(service=_ALERT_SERVICE), timeout=2)
                    self.feed.set_status("alert_service", answer.status == health_pb2.HealthCheckResponse.SERVING)
                except grpc.aio.AioRpcError as exc:
                    self.feed.set_status("alert_service", False, exc.code().name)
                await asyncio.sleep(self.settings.refresh_s)
        finally:
            await channel.close()

    async def _broker_reachable(self) -> bool:
        for server in self.platform.kafka_bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                async with asyncio.timeout(2):
                    _, writer = await asyncio.open_connection(host, int(port))
            except (OSError, TimeoutError, ValueError):
                continue
            writer.close()
            return True
        return False


@dataclass
class ConsoleShell(ServiceShell):
    """console's shell, with its web server reachable (its port)."""

    web: WebServer | None = None


def build(
    platform: PlatformSettings,
    settings: ConsoleSettings,
    *,
    redis: aioredis.Redis | None = None,
    clock: Clock = system,
) -> ConsoleShell:
    redis = redis or platform.redis_client()
    if settings.session_key_file is not None:
        key = settings.session_key_file.read_bytes()[:32]
        if len(key) != 32:
            raise ValueError(f"{settings.session_key_file} must hold 32 random bytes")
    else:
        key = secrets.token_bytes(32)
    # Ready when the page is served: an unreachable AlertService or broker is shown on the page,
    # which needs the console up to say so.
    health = Health("web")
    keys = RedisKeys(platform.redis_prefix)
    feed = Feed(platform, public_key=lambda deployment_id: registry.alert_public_key(redis, keys, deployment_id))

    def connect() -> Backends:
        alerts = _channel(settings.alert_address, settings)
        deployments = _channel(settings.deployment_address, settings)
        return Backends(
            alerts=alerts_pb2_grpc.AlertServiceStub(alerts),
            deployments=deployments_pb2_grpc.DeploymentServiceStub(deployments),
            channels=(alerts, deployments),
        )

    sessions = SessionStore(redis, platform.redis_prefix, key, settings.session_ttl_s, settings.session_idle_s, clock)
    # Sign-ins are audited through the installation's outbox, which the deployments service and alert
    # drain, chain and sign: the console holds no key-encryption key, hence no audit key.
    audit = KeptAudit(Outbox(redis, keys.outbox()), platform.topic_prefix)
    console = Console(
        sessions=sessions,
        book=platform.token_book(),
        signins=SignIns(audit, forwarded_for=settings.behind_tls_proxy),
        feed=feed,
        connect=connect,
        secure_cookies=settings.behind_tls_proxy or settings.web_tls_cert_file is not None,
        max_body_bytes=MAX_BODY_BYTES,
    )
    server = WebServer(console, settings, health)
    return ConsoleShell(
        name="console",
        platform=platform,
        health=health,
        http=HttpServer(health, settings.http_host, settings.http_port),
        tasks=[
            server.run,
            feed.run,
            Watch(feed, platform, settings).run,
            lambda: sessions.follow_ends(feed.end_session),
        ],
        closers=[redis.aclose],
        web=server,
    )

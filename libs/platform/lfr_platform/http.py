"""The HTTP side every service has: /metrics, /healthz (alive) and /readyz (ready to work).

Readiness is a set of named checks that the service sets as its dependencies come and go; the
service is ready when every check is true. Liveness only says the event loop answers.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class Health:
    def __init__(self, *checks: str) -> None:
        self._checks: dict[str, bool] = dict.fromkeys(checks, False)
        self._detail: dict[str, str] = {}
        # Facts worth showing beside readiness (e.g. the partitions a stage consumes).
        self.info: dict[str, object] = {}

    def set(self, check: str, ok: bool, detail: str = "") -> None:
        if self._checks.get(check) != ok:
            log.info(
                "readiness %s: %s",
                check,
                "ok" if ok else "not ok",
                extra={"detail": detail} if detail else None,
            )
        self._checks[check] = ok
        self._detail[check] = detail

    @property
    def ready(self) -> bool:
        return all(self._checks.values())

    def report(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {k: {"ok": v, "detail": self._detail.get(k, "")} for k, v in self._checks.items()},
            **self.info,
        }


class HttpServer:
    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._alive)
        app.router.add_get("/readyz", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("serving /metrics /healthz /readyz on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _alive(self, _: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _ready(self, _: web.Request) -> web.Response:
        return web.json_response(self.health.report(), status=200 if self.health.ready else 503)

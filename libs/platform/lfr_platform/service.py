"""The shell every service runs in: topics ensured, HTTP health and metrics served, the service's
tasks run until SIGTERM, then everything closed in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaConnectionError, KafkaError

from lfr_contracts import PIPELINE_TOPICS
from lfr_platform.http import Health, HttpServer
from lfr_platform.kafka import ensure_topics
from lfr_platform.runtime import until_stopped
from lfr_platform.settings import PlatformSettings

log = logging.getLogger(__name__)


@dataclass
class ServiceShell:
    name: str
    platform: PlatformSettings
    health: Health
    http: HttpServer
    # Long-running coroutines (a stage runner, a gRPC server, a janitor): any of them ending is a crash.
    tasks: Sequence[Callable[[], Awaitable[None]]]
    # Called last, in order (close Redis, stop the gRPC server, ...).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def for_stage(
        cls,
        stage: str,
        handler,
        platform: PlatformSettings,
        http_host: str,
        http_port: int,
        closers: list[Callable[[], Awaitable[None]]],
        replicas=None,
    ) -> ServiceShell:
        """The shell of a service that is one stage runner and nothing else (detect, embed, alert).
        With `replicas` (lfr_platform.replicas.Replicas), the stage starts only once this replica
        has joined its peers (it refuses to start if it disagrees with them)."""
        from lfr_platform.replicas import announced
        from lfr_platform.stage import StageRunner

        health = Health("kafka", "topics")
        runner = StageRunner(stage, handler, platform, health)
        tasks: list[Callable[[], Awaitable[None]]] = [runner.run]
        if replicas is not None:
            joined = asyncio.Event()

            async def stage_after_join() -> None:
                await joined.wait()
                await runner.run()

            tasks = [lambda: announced(replicas, joined), stage_after_join]
        return cls(
            name=stage,
            platform=platform,
            health=health,
            http=HttpServer(health, http_host, http_port),
            tasks=tasks,
            closers=closers,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.http.start()
        try:
            await self._ensure_topics(stop)
            if stop.is_set():
                return
            running = [asyncio.create_task(task(), name=f"{self.name}-{i}") for i, task in enumerate(self.tasks)]
            await until_stopped(stop, *running)
        finally:
            for close in self.closers:
                try:
                    async with asyncio.timeout(10):
                        await close()
                except TimeoutError:
                    log.warning("a closer took over 10 s; left behind")
                except Exception:
                    log.exception("error while closing")
            await self.http.stop()

    async def _ensure_topics(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await ensure_topics(self.platform, PIPELINE_TOPICS)
                self.health.set("topics", True)
                return
            except (KafkaConnectionError, KafkaError, OSError) as exc:
                self.health.set("topics", False, str(exc))
                log.warning("cannot create topics yet, retrying in %.1fs: %s", delay, exc)
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)

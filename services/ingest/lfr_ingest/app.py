"""Wires ingest: camera threads -> drop-oldest queues -> sealed frames on frames.captured.v1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from lfr.v1 import common_pb2
from lfr_contracts import FRAMES_CAPTURED, camera_key
from lfr_ingest.capture import CapturedFrame, DropOldestQueue
from lfr_ingest.settings import CameraSettings, IngestSettings
from lfr_ingest.sources import CameraWorker
from lfr_ingest.wire import frame_captured
from lfr_platform import metrics
from lfr_platform.http import Health, HttpServer
from lfr_platform.kafka import new_producer, start_with_retry
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.runtime import honour_cancellation
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_platform.skeleton import admitted
from lfr_platform.stage import TRANSIENT_ERRORS, Rejected, Skipped

log = logging.getLogger(__name__)


@dataclass
class Camera:
    settings: CameraSettings
    ref: common_pb2.CameraRef
    queue: DropOldestQueue
    worker: CameraWorker | None = None
    last_refusal: str | None = None
    closed: bool = False
    in_flight: int = 0
    reported_done: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return metrics.camera_labels(self.ref)

    @property
    def done(self) -> bool:
        """The source ended (a file without loop) or the deployment closed, and nothing is queued."""
        finished = self.closed or (self.worker is not None and self.worker.finished.is_set())
        return finished and len(self.queue) == 0


@dataclass
class Publisher:
    platform: PlatformSettings
    settings: IngestSettings
    registry: DeploymentRegistry
    health: Health
    cameras: list[Camera]
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        producer = await start_with_retry(lambda: new_producer(self.platform), "ingest producer")
        self.health.set("kafka", True)
        limit = asyncio.Semaphore(self.settings.max_in_flight)
        try:
            for camera in self.cameras:
                camera.worker = self._worker(camera, loop)
                camera.worker.start()
            log.info("streaming %d camera(s) for van %s", len(self.cameras), self.settings.van_id)
            while True:
                honour_cancellation()
                try:
                    async with asyncio.timeout(0.5):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                for camera in self.cameras:
                    while (frame := camera.queue.get()) is not None:
                        await self._publish(producer, limit, camera, frame)
                for camera in self.cameras:
                    if camera.done and camera.in_flight == 0 and not camera.reported_done:
                        camera.reported_done = True
                        metrics.CAMERA_FINISHED.labels(**camera.labels).set(1)
                        log.info("camera finished", extra={"camera_id": camera.ref.camera_id})
        finally:
            for camera in self.cameras:
                if camera.worker:
                    camera.worker.stop()
            self.health.set("kafka", False)
            await producer.stop()

    def _worker(self, camera: Camera, loop: asyncio.AbstractEventLoop) -> CameraWorker:
        labels = camera.labels

        def on_frame(dropped: bool) -> None:
            metrics.FRAMES_CAPTURED_TOTAL.labels(**labels).inc()
            if dropped:
                metrics.FRAMES_DROPPED.labels(**labels, reason="queue_full").inc()
            wake()

        def on_status(up: bool) -> None:
            metrics.CAMERA_UP.labels(**labels).set(1 if up else 0)
            wake()

        def wake() -> None:
            # A camera thread ends after its service's loop has closed (a stop mid-read): nothing to wake.
            with contextlib.suppress(RuntimeError):  # "Event loop is closed"
                loop.call_soon_threadsafe(self._wake.set)

        return CameraWorker(
            camera.settings,
            camera.queue,
            max_width=self.settings.max_width,
            reconnect_initial_s=self.settings.reconnect_initial_s,
            reconnect_max_s=self.settings.reconnect_max_s,
            on_frame=on_frame,
            on_status=on_status,
            on_reconnect=metrics.CAMERA_RECONNECTS.labels(**labels).inc,
        )

    async def _publish(
        self, producer: AIOKafkaProducer, limit: asyncio.Semaphore, camera: Camera, frame: CapturedFrame
    ) -> None:
        # The stages' skeleton (lfr_platform.skeleton), as a source: admit, seal, publish.
        try:
            record = await admitted(self.registry, frame, camera=camera.ref)
        except TRANSIENT_ERRORS as exc:
            # Frames are perishable: while the registry is unreachable they are dropped, counted.
            record = Skipped("registry_unavailable")
            log.warning("deployment registry unavailable: %s", exc)
        if isinstance(record, Rejected | Skipped):
            self._refuse(camera, record)
            return
        camera.last_refusal = None
        message = frame_captured(camera.ref, frame, record.seal(frame.jpeg))
        await limit.acquire()
        try:
            future = await producer.send(
                FRAMES_CAPTURED.name(self.platform.topic_prefix),
                FRAMES_CAPTURED.encode(message),
                key=camera_key(camera.ref),
            )
        except (MessageSizeTooLargeError, KafkaError) as exc:
            limit.release()
            reason = "too_large" if isinstance(exc, MessageSizeTooLargeError) else "publish_failed"
            metrics.FRAMES_DROPPED.labels(**camera.labels, reason=reason).inc()
            log.warning("frame not published: %s", exc, extra={"camera_id": camera.ref.camera_id})
            return
        camera.in_flight += 1
        future.add_done_callback(lambda f: self._acknowledged(f, camera, limit))

    def _acknowledged(self, future: asyncio.Future, camera: Camera, limit: asyncio.Semaphore) -> None:
        camera.in_flight -= 1
        limit.release()
        if future.cancelled() or future.exception() is not None:
            metrics.FRAMES_DROPPED.labels(**camera.labels, reason="publish_failed").inc()
        else:
            metrics.FRAMES_PUBLISHED.labels(**camera.labels).inc()
        self._wake.set()

    def _refuse(self, camera: Camera, outcome: Rejected | Skipped) -> None:
        reason = outcome.reason
        metrics.FRAMES_DROPPED.labels(**camera.labels, reason=reason).inc()
        if camera.last_refusal != reason:
            log.warning(
                "camera frames not accepted: %s",
                reason,
                extra={"camera_id": camera.ref.camera_id, "deployment_id": camera.ref.deployment_id},
            )
            camera.last_refusal = reason
        if reason == "deployment_closed" and camera.worker is not None:
            # A closed deployment never reopens: stop capturing for it.
            camera.worker.stop()
            camera.closed = True
            while camera.queue.get() is not None:
                metrics.FRAMES_DROPPED.labels(**camera.labels, reason=reason).inc()


def build(platform: PlatformSettings, settings: IngestSettings, *, redis: aioredis.Redis | None = None) -> ServiceShell:
    redis = redis or platform.redis_client()
    cameras = [
        Camera(
            settings=c,
            ref=common_pb2.CameraRef(deployment_id=c.deployment_id, van_id=settings.van_id, camera_id=c.camera_id),
            queue=DropOldestQueue(settings.queue_frames),
        )
        for c in settings.cameras
    ]
    health = Health("kafka", "topics")
    publisher = Publisher(
        platform,
        settings,
        DeploymentRegistry(redis, RedisKeys(platform.redis_prefix), platform.key_wrap()),
        health,
        cameras,
    )
    return ServiceShell(
        name="ingest",
        platform=platform,
        health=health,
        http=HttpServer(health, settings.http_host, settings.http_port),
        tasks=[publisher.run],
        closers=[redis.aclose],
    )

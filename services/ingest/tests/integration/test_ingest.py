"""ingest with real video, a real HTTP stream and the real broker."""

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from lfr.v1 import common_pb2
from lfr_contracts import FRAMES_CAPTURED, camera_key
from lfr_faces import images
from lfr_ingest.app import build
from lfr_ingest.settings import CameraSettings, IngestSettings
from lfr_platform import metrics, sealing
from lfr_platform.registry import RedisKeys
from lfr_stack.infrastructure import start_broker
from lfr_stack.processes import free_port, stop_process
from lfr_testing.kafka import decoded, read
from lfr_testing.mjpeg import MjpegCamera
from lfr_testing.services import running, seed_deployment

pytestmark = pytest.mark.integration


def _settings(deployment_id, source, **camera):
    return IngestSettings(
        http_port=0,
        van_id="van-1",
        reconnect_initial_s=0.2,
        reconnect_max_s=0.5,
        cameras=[{"camera_id": "cam-1", "deployment_id": deployment_id, "source": source, **camera}],
    )


def _value(metric, deployment_id, **labels):
    return metric.labels(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1", **labels)._value.get()


async def test_a_file_is_paced_sampled_sealed_and_published_in_order(platform, data_dir, eventually):
    deployment_id, key = await seed_deployment(platform)
    clip = data_dir / "video" / "talking_liveportrait_d0.mp4"  # 78 frames at 25 fps: 3.1 s
    started = time.monotonic()
    async with running(build(platform, _settings(deployment_id, str(clip), fps=5))):
        records = await read(platform, FRAMES_CAPTURED, count=16, settle_s=0.5)
        await eventually(lambda: _value(metrics.CAMERA_FINISHED, deployment_id) == 1)
    assert time.monotonic() - started > 2.5  # played at the file's pace, not at once
    frames = decoded(FRAMES_CAPTURED, records)
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    assert len(frames) == 16 and all(r.key == camera_key(ref) for r in records)
    assert [f.sequence for f in frames] == list(range(16))
    # Captured at their place in the file's timeline, 0.2 s apart at 5 fps, however late they were read.
    times = [f.captured_at.ToNanoseconds() / 1e9 for f in frames]
    assert [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)] == [0.2] * 15
    image = images.decode_jpeg(sealing.unseal(key, frames[3].image, deployment_id), max_bytes=10**7, max_pixels=10**7)
    assert image.shape == (512, 512, 3) and (frames[3].width, frames[3].height) == (512, 512)


async def test_a_failing_stream_is_retried_with_backoff_and_recovers(platform, data_dir, eventually):
    deployment_id, _ = await seed_deployment(platform)
    camera = MjpegCamera(data_dir / "video" / "talking_liveportrait_d0.mp4", free_port())
    await camera.on()
    url = camera.url
    published = lambda: _value(metrics.FRAMES_PUBLISHED, deployment_id)  # noqa: E731
    async with running(build(platform, _settings(deployment_id, url, fps=5))) as shell:
        await eventually(lambda: published() >= 3)
        await camera.off()
        await eventually(lambda: _value(metrics.CAMERA_UP, deployment_id) == 0)
        await eventually(lambda: _value(metrics.CAMERA_RECONNECTS, deployment_id) >= 2)  # retried, not fatal
        assert shell.health.ready
        before = published()
        await camera.on()
        await eventually(lambda: published() >= before + 3, timeout_s=30)
        assert _value(metrics.CAMERA_UP, deployment_id) == 1
    await camera.off()


async def test_a_stalled_broker_never_blocks_capture_the_oldest_frames_are_dropped(platform, data_dir, eventually):
    log_dir = Path(tempfile.mkdtemp(prefix="lfr-test-stalled-"))
    broker, bootstrap = start_broker(log_dir)  # a broker of this test's own, to freeze
    try:
        own = platform.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        deployment_id, _ = await seed_deployment(own)
        clip = data_dir / "video" / "talking_liveportrait_d0.mp4"
        settings = _settings(deployment_id, str(clip), fps=10, loop=True)
        settings = settings.model_copy(update={"max_in_flight": 2, "queue_frames": 2})
        captured = lambda: _value(metrics.FRAMES_CAPTURED_TOTAL, deployment_id)  # noqa: E731
        published = lambda: _value(metrics.FRAMES_PUBLISHED, deployment_id)  # noqa: E731
        dropped = lambda: _value(metrics.FRAMES_DROPPED, deployment_id, reason="queue_full")  # noqa: E731
        async with running(build(own, settings)):
            await eventually(lambda: published() >= 5)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                stalled_at, captured_at_stall = published(), captured()
                # Capture carries on (2 s of it at 10 fps), the oldest frames dropped and counted...
                await eventually(lambda: captured() - captured_at_stall >= 20 and dropped() >= 15, timeout_s=60)
                assert published() - stalled_at <= 2  # ...and none published but what was in flight
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            resumed = published()
            await eventually(lambda: published() >= resumed + 5, timeout_s=60)
    finally:
        stop_process(broker.pid)


async def test_a_closed_deployment_stops_its_cameras(platform, data_dir, eventually):
    deployment_id, _ = await seed_deployment(platform)
    other_id, _ = await seed_deployment(platform)  # a camera of another deployment: the test's clock
    clip = str(data_dir / "video" / "talking_liveportrait_d0.mp4")
    settings = _settings(deployment_id, clip, fps=5, loop=True)
    other = {"camera_id": "cam-1", "deployment_id": other_id, "source": clip, "fps": 5, "loop": True}
    settings = settings.model_copy(update={"cameras": [*settings.cameras, CameraSettings(**other)]})
    async with running(build(platform, settings)):
        await eventually(lambda: _value(metrics.FRAMES_PUBLISHED, deployment_id) >= 2)
        client = aioredis.from_url(platform.redis_url)
        await client.hset(RedisKeys(platform.redis_prefix).deployment(deployment_id), "status", "closed")
        await client.aclose()
        await eventually(lambda: _value(metrics.CAMERA_FINISHED, deployment_id) == 1)
        assert _value(metrics.FRAMES_DROPPED, deployment_id, reason="deployment_closed") >= 1

        def other_captured(more: int):
            start = _value(metrics.FRAMES_CAPTURED_TOTAL, other_id)
            return lambda: _value(metrics.FRAMES_CAPTURED_TOTAL, other_id) >= start + more

        await eventually(other_captured(5), timeout_s=30)  # a frame the closed camera read as it stopped is in
        stopped_at = _value(metrics.FRAMES_CAPTURED_TOTAL, deployment_id)
        await eventually(other_captured(5), timeout_s=30)  # another second of capture, for the other camera
        assert _value(metrics.FRAMES_CAPTURED_TOTAL, deployment_id) == stopped_at

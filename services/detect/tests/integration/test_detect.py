"""detect over the real broker and Redis, with the real YuNet model on real frames."""

import pytest

from lfr.v1 import common_pb2, frames_pb2
from lfr_contracts import FACES_DETECTED, FRAMES_CAPTURED, camera_key, dead_letter_topic
from lfr_detect.app import build
from lfr_detect.settings import DetectSettings
from lfr_faces import images
from lfr_platform import metrics, sealing
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.media import jpeg, video_frame
from lfr_testing.services import running, seed_deployment

pytestmark = pytest.mark.integration


def _frame(deployment_id: str, key: bytes, image_jpeg: bytes, sequence: int = 0, camera: str = "cam-1"):
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id=camera)
    message = frames_pb2.FrameCaptured(
        camera=ref, sequence=sequence, image=sealing.seal(key, image_jpeg, deployment_id)
    )
    message.captured_at.GetCurrentTime()
    return camera_key(ref), message.SerializeToString()


async def test_faces_of_a_crowd_frame_are_detected_filtered_cropped_and_sealed(platform, data_dir):
    deployment_id, key = await seed_deployment(platform)
    crowd = video_frame(data_dir, "facenet_pytorch_video.mp4", 80)
    rejected = metrics.FACES_REJECTED.labels(deployment_id, "van-1", "cam-1", "face_too_small")
    await produce(platform, FRAMES_CAPTURED, [_frame(deployment_id, key, jpeg(crowd), sequence=9)])
    async with running(build(platform, DetectSettings(http_port=0))):
        out = decoded(FACES_DETECTED, await read(platform, FACES_DETECTED, count=1))[0]
    assert out.sequence == 9 and out.detector_id == "yunet-2023mar" and out.camera.deployment_id == deployment_id
    assert len(out.faces) >= 3
    for face in out.faces:
        assert len(face.landmarks) == 5 and face.detector_score >= 0.6 and face.quality.size_px >= 40
        crop = images.decode_jpeg(sealing.unseal(key, face.crop, deployment_id), max_bytes=10**7, max_pixels=10**7)
        assert max(crop.shape[:2]) <= 224
        assert all(0 <= p.x <= crop.shape[1] and 0 <= p.y <= crop.shape[0] for p in face.landmarks)
    assert rejected._value.get() >= 1  # the crowd's distant faces are counted, not passed on
    # Each face sent on has its scene, sealed, or says why not; the crowd's distant faces are covered in
    # them though never identified.
    scenes = [face.scene for face in out.faces]
    composed = [s for s in scenes if s.status == common_pb2.SCENE_STATUS_COMPOSED]
    assert composed and all(s.image for s in composed) and sum(s.faces_blurred for s in composed) >= 2
    assert {s.status for s in scenes} <= {common_pb2.SCENE_STATUS_COMPOSED, common_pb2.SCENE_STATUS_FACE_NOT_FOUND}
    for scene in composed:
        pixels = images.decode_jpeg(sealing.unseal(key, scene.image, deployment_id), max_bytes=10**7, max_pixels=10**7)
        height, width = pixels.shape[:2]
        assert max(height, width) <= 640 and abs(height - scene.region.height * width / scene.region.width) <= 1


async def test_bad_frames_go_to_the_dead_letter_topic_and_the_stage_carries_on(platform, data_dir):
    deployment_id, key = await seed_deployment(platform)
    good = jpeg(video_frame(data_dir, "talking_liveportrait_d0.mp4", 10))
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    huge = jpeg(video_frame(data_dir, "facenet_pytorch_video.mp4", 0))  # 1920x1080 over a 1280x720 limit
    stranger_ref = common_pb2.CameraRef(deployment_id="dep-never-created", van_id="van-1", camera_id="cam-1")
    records = [
        _frame(deployment_id, key, good[: len(good) // 2], 1),  # truncated JPEG
        _frame(deployment_id, key, huge, 2),  # above the pixel limit
        (camera_key(ref), b"\x0a\xff\xff not protobuf"),  # malformed message
        (
            camera_key(stranger_ref),
            frames_pb2.FrameCaptured(camera=stranger_ref, image=b"x").SerializeToString(),
        ),
        _frame(deployment_id, b"\x00" * 32, good, 5),  # sealed with another key
        _frame(deployment_id, key, good, 6),  # a good one, after all the bad ones
    ]
    await produce(platform, FRAMES_CAPTURED, records)
    async with running(build(platform, DetectSettings(http_port=0, max_frame_pixels=1280 * 720))):
        letters = decoded(dead_letter_topic("detect"), await read(platform, dead_letter_topic("detect"), count=5))
        out = decoded(FACES_DETECTED, await read(platform, FACES_DETECTED, count=1))
    assert [d.reason for d in letters] == [
        "undecodable_frame",
        "too_large_frame",
        "malformed_message",
        "unknown_deployment",
        "unsealable",
    ]
    assert [d.offset for d in letters] == [0, 1, 2, 3, 4]
    assert all(d.detail for d in letters)
    assert [m.sequence for m in out] == [6]


async def test_frames_of_a_closed_deployment_are_skipped_not_dead_lettered(platform, data_dir):
    from lfr_platform.registry import RedisKeys

    deployment_id, key = await seed_deployment(platform)
    import redis.asyncio as aioredis

    client = aioredis.from_url(platform.redis_url)
    await client.hset(RedisKeys(platform.redis_prefix).deployment(deployment_id), "status", "closed")
    await client.aclose()
    skipped = metrics.MESSAGES_SKIPPED.labels(FRAMES_CAPTURED.name(platform.topic_prefix), "deployment_closed")
    before = skipped._value.get()
    await produce(
        platform,
        FRAMES_CAPTURED,
        [_frame(deployment_id, key, jpeg(video_frame(data_dir, "talking_liveportrait_d0.mp4")))],
    )
    async with running(build(platform, DetectSettings(http_port=0))) as shell:
        from lfr_testing.plugin import Eventually

        await Eventually()(lambda: skipped._value.get() == before + 1)
        assert shell.health.ready

"""embed over the real broker and Redis, with the real SFace model on real detections."""

from pathlib import Path

import numpy as np
import pytest

from lfr.v1 import common_pb2, faces_pb2
from lfr_contracts import FACES_DETECTED, FACES_EMBEDDED, camera_key, dead_letter_topic
from lfr_detect.wire import faces_detected
from lfr_embed.app import build
from lfr_embed.settings import EmbedSettings
from lfr_faces import images
from lfr_faces.crops import embed_crops, find_faces
from lfr_faces.detectors import build_detector
from lfr_faces.embedders import build_embedder
from lfr_faces.quality import QualityPolicy
from lfr_platform import sealing
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.media import lfw
from lfr_testing.services import running, seed_deployment

pytestmark = pytest.mark.integration


def _detected(models_dir: Path, photo: Path, deployment_id: str, key: bytes, sequence: int):
    image = images.decode(photo.read_bytes(), max_bytes=10**7, max_pixels=10**7)
    detector = build_detector("yunet", models_dir / "yunet-2023mar.onnx", input_width=640)
    crops, _ = find_faces(detector, image, QualityPolicy(), 0.6)
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    from lfr.v1 import frames_pb2

    frame = frames_pb2.FrameCaptured(camera=ref, sequence=sequence)
    frame.captured_at.GetCurrentTime()  # inside the deployment's window
    message = faces_detected(
        frame, "yunet-2023mar", [(crops[0], "test:1", 0.9)], lambda b: sealing.seal(key, b, deployment_id)
    )
    return crops[:1], camera_key(ref), message


async def test_faces_become_unit_vectors_of_the_named_model_identical_to_the_live_path(platform, data_dir, models_dir):
    deployment_id, key = await seed_deployment(platform)
    crops, record_key, message = _detected(models_dir, lfw(data_dir, "Colin_Powell", 1), deployment_id, key, 3)
    await produce(platform, FACES_DETECTED, [(record_key, message.SerializeToString())])
    async with running(build(platform, EmbedSettings(http_port=0))):
        out = decoded(FACES_EMBEDDED, await read(platform, FACES_EMBEDDED, count=1))[0]
    assert (out.model_id, out.dimension, out.sequence, len(out.faces)) == ("sface-2021dec", 128, 3, 1)
    vector = np.frombuffer(sealing.unseal(key, out.faces[0].embedding, deployment_id), "<f4")
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    expected = embed_crops(
        build_embedder("sface", models_dir / "sface-2021dec.onnx"), [(crops[0].jpeg, crops[0].landmarks)]
    )[0]
    assert float(vector @ expected) > 0.9999
    assert out.faces[0].crop == message.faces[0].crop  # passed through, still sealed


async def test_faces_with_bad_landmarks_or_crops_are_dead_lettered(platform, data_dir, models_dir):
    deployment_id, key = await seed_deployment(platform)
    _, record_key, message = _detected(models_dir, lfw(data_dir, "Colin_Powell", 2), deployment_id, key, 1)
    no_landmarks = faces_pb2.FacesDetected()
    no_landmarks.CopyFrom(message)
    del no_landmarks.faces[0].landmarks[2:]
    bad_crop = faces_pb2.FacesDetected()
    bad_crop.CopyFrom(message)
    bad_crop.faces[0].crop = sealing.seal(key, b"\xff\xd8 not really a jpeg \xff\xd9", deployment_id)
    await produce(
        platform,
        FACES_DETECTED,
        [
            (record_key, no_landmarks.SerializeToString()),
            (record_key, bad_crop.SerializeToString()),
            (record_key, message.SerializeToString()),
        ],
    )
    async with running(build(platform, EmbedSettings(http_port=0))):
        letters = decoded(dead_letter_topic("embed"), await read(platform, dead_letter_topic("embed"), count=2))
        out = decoded(FACES_EMBEDDED, await read(platform, FACES_EMBEDDED, count=1))
    assert sorted(d.reason for d in letters) == ["invalid_face", "undecodable_crop"]
    assert len(out) == 1


async def test_a_replica_of_another_model_than_the_running_ones_is_refused_at_start(platform):
    from lfr_platform.runtime import StartRefused
    from lfr_platform.settings import ModelSettings

    first = build(platform.model_copy(update={"replica_name": "embed-1"}), EmbedSettings(http_port=0))
    async with running(first):
        another_model = ModelSettings(id="arcface-r100")
        other = build(
            platform.model_copy(update={"replica_name": "embed-2", "model": another_model}),
            EmbedSettings(http_port=0),
        )
        with pytest.raises(StartRefused, match="'arcface-r100', but the running replica 'embed-1' has 'sface-2021dec'"):
            async with running(other):
                pass
        same = build(platform.model_copy(update={"replica_name": "embed-2"}), EmbedSettings(http_port=0))
        async with running(same):  # the same model: it joins
            pass

"""embed's handler without a broker: a fake embedder (the Embedder port) that keeps the aligned faces
it was given, a fake registry, real sealing and real alignment. What is checked: the faces of a whole
batch in one model run and their vectors back to their own frame, each face aligned on its landmarks
in crop pixels, and a bad record dead-lettered without costing the rest of its batch."""

from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest
from aiokafka.structs import ConsumerRecord

from lfr.v1 import common_pb2, faces_pb2
from lfr_contracts import FACES_EMBEDDED, camera_key
from lfr_embed.handler import EmbedHandler
from lfr_faces import images
from lfr_faces.alignment import SIZE, TEMPLATE
from lfr_faces.crops import align_crop
from lfr_platform import metrics, sealing
from lfr_platform.registry import DeploymentView
from lfr_platform.stage import Incoming, Rejected

DIMENSION = 16
T0 = 1_800_000_000.0
# Landmarks as a face turned 20 degrees and 1.6 times the template's size would have them in its crop.
_ANGLE = np.deg2rad(20)
_TURN = 1.6 * np.array([[np.cos(_ANGLE), -np.sin(_ANGLE)], [np.sin(_ANGLE), np.cos(_ANGLE)]])
LANDMARKS = (TEMPLATE @ _TURN.T + np.array([60.0, 10.0])).astype(np.float32)
# A dot of its own colour (BGR) on each landmark: right eye, left eye, nose, right and left mouth corner.
DOTS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 0)]


class Embedder:
    """The Embedder port: the i-th face of a run gets the i-th unit vector; the runs are kept."""

    model_id = "fake-embedder"
    dimension = DIMENSION
    provider = "CPUExecutionProvider"

    def __init__(self) -> None:
        self.runs: list[list[np.ndarray]] = []

    def embed(self, aligned_bgr: list[np.ndarray]) -> np.ndarray:
        self.runs.append(aligned_bgr)
        return np.eye(len(aligned_bgr), DIMENSION, dtype=np.float32)

    @property
    def faces(self) -> list[np.ndarray]:
        return [face for run in self.runs for face in run]


class Registry:
    """The registry's read port: each deployment active with a key of its own."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def key(self, deployment_id: str) -> bytes:
        return self.keys.setdefault(deployment_id, sealing.new_data_key())

    async def lookup(self, deployment_id: str) -> DeploymentView:
        return DeploymentView(
            deployment_id=deployment_id,
            state="active",
            threshold=0.69,
            model_id="fake-embedder",
            data_key=self.key(deployment_id),
            cameras=frozenset(),
        )


def _crop(shade: int) -> bytes:
    """A face crop as detect sends it (JPEG), with a dot on each landmark; `shade` tells crops apart."""
    image = np.full((240, 220, 3), shade, np.uint8)
    for (x, y), colour in zip(LANDMARKS, DOTS, strict=True):
        cv2.circle(image, (round(float(x)), round(float(y))), 5, colour, -1)
    return images.encode_jpeg(image, 95)


def _record(registry: Registry, deployment_id: str, shades: list[int], sequence: int = 0, **face) -> Incoming:
    """A faces.detected.v1 record with one face per shade, sealed with its deployment's key."""
    key = registry.key(deployment_id)
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    message = faces_pb2.FacesDetected(camera=camera, sequence=sequence, detector_id="fake-detector")
    message.captured_at.FromNanoseconds(int((T0 + sequence) * 1e9))
    for i, shade in enumerate(shades):
        message.faces.add(
            index=i,
            box=common_pb2.BoundingBox(x=10.0 * i, y=20, width=60, height=70),
            landmarks=[common_pb2.Point(x=float(x), y=float(y)) for x, y in LANDMARKS],
            detector_score=0.9,
            crop=sealing.seal(key, face.get("crop", _crop(shade)), deployment_id),
            track_id=f"detect-a:{sequence}.{i}",
            shot_quality=0.5 + i / 10,
            scene=common_pb2.SceneImage(
                status=common_pb2.SCENE_STATUS_COMPOSED,
                image=sealing.seal(key, f"scene-{sequence}-{i}".encode(), deployment_id),
                faces_blurred=i,
            ),
        )
    return Incoming(message, ConsumerRecord("faces", 0, sequence, 0, 0, None, b"", None, 0, 0, []))


def _vector(registry: Registry, deployment_id: str, face) -> np.ndarray:
    return np.frombuffer(sealing.unseal(registry.key(deployment_id), face.embedding, deployment_id), "<f4")


def _deployment() -> str:
    return f"dep-{uuid.uuid4().hex[:8]}"


async def test_the_faces_of_a_whole_batch_go_through_the_model_at_once_and_back_to_their_own_frame():
    registry, embedder = Registry(), Embedder()
    handler = EmbedHandler(embedder, registry)
    a, b = _deployment(), _deployment()  # two deployments in one batch: each sealed with its own key
    batch = [_record(registry, a, [30, 60], 1), _record(registry, b, [90], 2), _record(registry, a, [120, 150, 180], 3)]
    outcomes = await handler.handle(batch)
    assert [len(run) for run in embedder.runs] == [6]  # one model run for the batch
    position = 0
    for incoming, outcome in zip(batch, outcomes, strict=True):
        [output] = outcome
        sent, out = incoming.message, output.message
        deployment_id = sent.camera.deployment_id
        assert output.topic is FACES_EMBEDDED and output.key == camera_key(sent.camera)
        assert (out.sequence, out.model_id, out.dimension) == (sent.sequence, "fake-embedder", DIMENSION)
        assert out.captured_at == sent.captured_at and out.camera == sent.camera
        assert len(out.faces) == len(sent.faces)
        for face, detected in zip(out.faces, sent.faces, strict=True):
            # This face's vector is the one the model computed from this face's own crop.
            assert np.argmax(_vector(registry, deployment_id, face)) == position
            crop = sealing.unseal(registry.key(deployment_id), detected.crop, deployment_id)
            landmarks = np.array([[p.x, p.y] for p in detected.landmarks], np.float32)
            assert np.array_equal(embedder.faces[position], align_crop(crop, landmarks))
            # The rest goes on as detect sent it: the crop and the scene still sealed, the track and its
            # shot quality.
            assert face.crop == detected.crop and face.box == detected.box and face.index == detected.index
            assert face.scene == detected.scene and face.scene.image
            assert (face.track_id, face.shot_quality) == (detected.track_id, detected.shot_quality)
            position += 1
    assert metrics.FACES_EMBEDDED_TOTAL.labels(a, "van-1", "cam-1", "fake-embedder")._value.get() == 5
    assert metrics.FACES_EMBEDDED_TOTAL.labels(b, "van-1", "cam-1", "fake-embedder")._value.get() == 1


async def test_each_face_is_aligned_on_its_own_landmarks_in_crop_pixels():
    registry, embedder = Registry(), Embedder()
    await EmbedHandler(embedder, registry).handle([_record(registry, _deployment(), [128])])
    [aligned] = embedder.faces
    assert aligned.shape == (SIZE, SIZE, 3)
    # The turned, enlarged face comes out upright at the template's size: each dot on its template point.
    for (x, y), colour in zip(TEMPLATE, DOTS, strict=True):
        ys, xs = np.nonzero(np.abs(aligned.astype(int) - colour).sum(axis=2) < 120)
        assert len(xs) > 10, f"the {colour} dot is gone"
        assert abs(xs.mean() - x) < 1.0 and abs(ys.mean() - y) < 1.0, (colour, xs.mean(), ys.mean(), x, y)


async def test_a_bad_record_is_dead_lettered_and_the_rest_of_its_batch_embedded():
    registry, embedder = Registry(), Embedder()
    deployment_id = _deployment()
    four_landmarks = _record(registry, deployment_id, [60], 2)
    del four_landmarks.message.faces[0].landmarks[4]
    other_key = _record(registry, deployment_id, [90], 3)
    other_key.message.faces[0].crop = sealing.seal(sealing.new_data_key(), _crop(90), deployment_id)
    batch = [
        _record(registry, deployment_id, [30], 1),
        four_landmarks,
        other_key,
        _record(registry, deployment_id, [120], 4),
    ]
    outcomes = await EmbedHandler(embedder, registry).handle(batch)
    assert isinstance(outcomes[1], Rejected) and outcomes[1].reason == "invalid_face"
    assert "4 landmarks" in outcomes[1].detail
    assert isinstance(outcomes[2], Rejected) and outcomes[2].reason == "unsealable"
    assert [o[0].message.sequence for o in (outcomes[0], outcomes[3])] == [1, 4]
    assert [len(run) for run in embedder.runs] == [2]  # only the good faces reached the model


async def test_a_crop_that_does_not_decode_fails_its_batch_for_the_runner_to_retry_record_by_record():
    registry, embedder = Registry(), Embedder()
    handler = EmbedHandler(embedder, registry)
    deployment_id = _deployment()
    bad = _record(registry, deployment_id, [60], 2, crop=b"\xff\xd8 not really a jpeg \xff\xd9")
    with pytest.raises(images.ImageRejected):  # which record is bad is not known in a batch
        await handler.handle([_record(registry, deployment_id, [30], 1), bad])
    [alone] = await handler.handle([bad])  # the runner's retry of it alone
    assert isinstance(alone, Rejected) and alone.reason == "undecodable_crop"
    [good] = await handler.handle([_record(registry, deployment_id, [30], 1)])
    assert good[0].message.sequence == 1 and [len(run) for run in embedder.runs] == [1]


async def test_a_batch_with_nothing_to_embed_never_runs_the_model():
    registry, embedder = Registry(), Embedder()
    deployment_id = _deployment()
    bad = _record(registry, deployment_id, [60], 1)
    del bad.message.faces[0].landmarks[:]
    [outcome] = await EmbedHandler(embedder, registry).handle([bad])
    assert isinstance(outcome, Rejected) and outcome.reason == "invalid_face"
    assert embedder.runs == []

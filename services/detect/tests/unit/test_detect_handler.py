"""detect's handler without a broker: a fake detector (the Detector port) on a real photo, a fake
registry, real sealing. What is checked is how the stage uses the gate, the tracker and the shot
policy (each unit-tested in libs/faces): from its settings, per camera, on capture time."""

from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest
from aiokafka.structs import ConsumerRecord

from lfr.v1 import common_pb2, frames_pb2
from lfr_contracts import FACES_DETECTED, camera_key
from lfr_detect.handler import DetectHandler
from lfr_detect.settings import DetectSettings
from lfr_faces import images, scenes
from lfr_faces.alignment import SIZE, TEMPLATE
from lfr_faces.detectors import Detection
from lfr_faces.quality import Quality, shot_quality
from lfr_platform import metrics, sealing
from lfr_platform.registry import DeploymentView
from lfr_platform.stage import Incoming, Rejected
from lfr_testing.media import jpeg, lfw

KEY = sealing.new_data_key()
T0 = 1_800_000_000.0  # capture times are the frames' own, whatever the wall clock says
SHARP = (75.0, 75.0, 100.0, 110.0)  # Colin Powell's face in his first LFW photo (250x250)
BLURRED = (325.0, 75.0, 100.0, 110.0)  # the same face in a blurred copy, right of it
SMALL = (200.0, 10.0, 30.0, 30.0)  # under the 40 px minimum


def _landmarks(box) -> np.ndarray:
    """Frontal landmarks inside a box: the alignment template scaled into it."""
    x, y, w, h = box
    return (TEMPLATE / SIZE * np.array([w, h]) + np.array([x, y])).astype(np.float32)


class Detector:
    """The Detector port: the same faces in every frame, and the minimum score it was asked for."""

    model_id = "fake-detector"
    provider = "CPUExecutionProvider"

    def __init__(self, *boxes, score: float = 0.9) -> None:
        self.boxes = boxes
        self.score = score
        self.min_scores: list[float] = []

    def detect(self, image_bgr: np.ndarray, min_score: float) -> list[Detection]:
        self.min_scores.append(min_score)
        return [Detection(box, _landmarks(box), self.score) for box in self.boxes]


class Registry:
    """The registry's read port: every deployment asked for is active, with KEY."""

    async def lookup(self, deployment_id: str) -> DeploymentView:
        return DeploymentView(
            deployment_id=deployment_id,
            state="active",
            threshold=0.69,
            model_id="sface-2021dec",
            data_key=KEY,
            cameras=frozenset(),
        )


@pytest.fixture(scope="module")
def photo(data_dir):
    return cv2.imread(str(lfw(data_dir, "Colin_Powell", 1)))


@pytest.fixture
def deployment_id() -> str:
    return f"dep-{uuid.uuid4().hex[:8]}"  # the metrics of each test are its own


def _handler(detector: Detector, **settings) -> DetectHandler:
    return DetectHandler(detector, Registry(), DetectSettings(**settings))


def _frame(deployment_id: str, image, t: float, camera: str = "cam-1", sequence: int = 0) -> Incoming:
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id=camera)
    data = image if isinstance(image, bytes) else jpeg(image, 95)
    frame = frames_pb2.FrameCaptured(camera=ref, sequence=sequence, image=sealing.seal(KEY, data, deployment_id))
    frame.captured_at.FromNanoseconds(int(t * 1e9))
    return Incoming(frame, ConsumerRecord("frames", 0, sequence, 0, 0, None, b"", None, 0, 0, []))


def _count(counter, deployment_id: str, camera: str = "cam-1", **labels) -> float:
    return counter.labels(deployment_id=deployment_id, van_id="van-1", camera_id=camera, **labels)._value.get()


async def _faces(handler: DetectHandler, *frames: Incoming) -> list[list]:
    """Each frame's faces sent on (an empty list for a frame with none)."""
    out = []
    for outcome in await handler.handle(list(frames)):
        assert isinstance(outcome, list), outcome
        assert all(o.topic is FACES_DETECTED for o in outcome)
        out.append([face for output in outcome for face in output.message.faces])
    return out


async def test_only_faces_that_pass_the_gate_go_on_cropped_and_sealed_and_the_rest_are_counted(photo, deployment_id):
    frame = np.hstack([photo, cv2.GaussianBlur(photo, (0, 0), 8)])  # 250x500: sharp left, blurred right
    detector = Detector(SHARP, BLURRED, SMALL)
    handler = _handler(detector, min_score=0.7)
    [outcome] = await handler.handle([_frame(deployment_id, frame, T0, sequence=7)])
    [output] = outcome
    assert output.key == camera_key(output.message.camera) == f"{deployment_id}/van-1/cam-1".encode()
    assert output.message.sequence == 7 and output.message.detector_id == "fake-detector"
    [face] = output.message.faces
    assert (face.box.x, face.box.y, face.box.width, face.box.height) == SHARP
    # Faces are identified from the service's minimum, not the detector's own; weaker ones are found too,
    # to be covered in scenes.
    assert detector.min_scores == [min(0.7, scenes.BLUR_MIN_SCORE)]
    # The crop is sealed with the deployment's key, and its landmarks are in its own pixels.
    with pytest.raises(images.ImageRejected):
        images.decode_jpeg(face.crop, max_bytes=10**7, max_pixels=10**7)
    crop = images.decode_jpeg(sealing.unseal(KEY, face.crop, deployment_id), max_bytes=10**7, max_pixels=10**7)
    assert crop.shape[:2] == (int(face.crop_box.height), int(face.crop_box.width))
    frame_landmarks = np.array([[p.x + face.crop_box.x, p.y + face.crop_box.y] for p in face.landmarks])
    assert np.allclose(frame_landmarks, _landmarks(SHARP), atol=0.01)
    # Its shot quality is the one the gate measured, for match to weight the track's shots by.
    quality = Quality(face.quality.size_px, face.quality.sharpness, face.quality.yaw)
    assert face.quality.size_px == 100 and face.quality.sharpness > 100 and face.quality.yaw < 0.05
    assert face.shot_quality == pytest.approx(shot_quality(quality, 0.9), abs=1e-6) and face.track_id
    assert _count(metrics.FACES_DETECTED_TOTAL, deployment_id) == 3
    assert _count(metrics.FACES_REJECTED, deployment_id, reason="face_too_small") == 1
    assert _count(metrics.FACES_REJECTED, deployment_id, reason="too_blurred") == 1
    assert _count(metrics.FRAMES_PROCESSED, deployment_id) == 1


@pytest.mark.parametrize(
    ("settings", "reason"),
    [({"min_face_px": 101}, "face_too_small"), ({"min_sharpness": 10_000}, "too_blurred")],
    ids=["min_face_px", "min_sharpness"],
)
async def test_the_gate_is_the_services_settings(photo, deployment_id, settings, reason):
    handler = _handler(Detector(SHARP), **settings)
    assert await _faces(handler, _frame(deployment_id, photo, T0)) == [[]]  # nothing sent on
    assert _count(metrics.FACES_REJECTED, deployment_id, reason=reason) == 1
    assert _count(metrics.FACES_NOT_EMBEDDED, deployment_id, reason="not_due") == 0  # dropped, not held back


async def test_a_track_is_embedded_at_its_first_face_then_once_per_shot_interval_of_capture_time(photo, deployment_id):
    handler = _handler(Detector(SHARP))  # shot_interval_s 0.8 by default
    frames = [_frame(deployment_id, photo, T0 + i / 5, sequence=i) for i in range(11)]  # 5 fps for 2 s
    faces = await _faces(handler, *frames)
    sent = [i / 5 for i, f in enumerate(faces) if f]
    assert sent == [0.0, 0.8, 1.6]
    assert len({face.track_id for f in faces for face in f}) == 1  # one pass, one track
    assert _count(metrics.TRACKS_STARTED, deployment_id) == 1
    assert _count(metrics.FACES_NOT_EMBEDDED, deployment_id, reason="not_due") == 8


async def test_the_shot_budget_and_interval_are_the_services_settings(photo, deployment_id):
    handler = _handler(Detector(SHARP), shot_interval_s=0.2, shot_budget=3)
    faces = await _faces(handler, *[_frame(deployment_id, photo, T0 + i / 5, sequence=i) for i in range(6)])
    assert [bool(f) for f in faces] == [True, True, True, False, False, False]
    assert _count(metrics.FACES_NOT_EMBEDDED, deployment_id, reason="budget_spent") == 3


async def test_with_best_shots_off_every_face_is_embedded(photo, deployment_id):
    handler = _handler(Detector(SHARP), best_shots=False)
    faces = await _faces(handler, *[_frame(deployment_id, photo, T0 + i / 5, sequence=i) for i in range(5)])
    assert all(len(f) == 1 for f in faces) and len({f[0].track_id for f in faces}) == 1
    assert _count(metrics.FACES_NOT_EMBEDDED, deployment_id, reason="not_due") == 0


async def test_each_camera_has_its_own_tracks_and_a_late_frame_is_decided_on_its_own(photo, deployment_id):
    handler = _handler(Detector(SHARP))
    [[first]] = await _faces(handler, _frame(deployment_id, photo, T0 + 1.0))
    # The same box at the same moment on another camera is another person's pass.
    [[other]] = await _faces(handler, _frame(deployment_id, photo, T0 + 1.0, camera="cam-2"))
    assert other.track_id != first.track_id
    # A frame older than one already seen: a track of its own, sent at once; the camera's track goes on.
    [[late]] = await _faces(handler, _frame(deployment_id, photo, T0 + 0.5))
    assert late.track_id not in (first.track_id, other.track_id)
    assert _count(metrics.FRAMES_OUT_OF_ORDER, deployment_id) == 1
    [[again]] = await _faces(handler, _frame(deployment_id, photo, T0 + 1.8))
    assert again.track_id == first.track_id


async def test_a_track_unseen_for_its_age_ends_and_its_pass_is_flagged(photo, deployment_id):
    handler = _handler(Detector(SHARP))
    single = metrics.PASSES_FLAGGED.labels("single_face")
    before = single._value.get()
    [[first]] = await _faces(handler, _frame(deployment_id, photo, T0))
    [[later]] = await _faces(handler, _frame(deployment_id, photo, T0 + 5.0))  # 2 s without the face: gone
    assert later.track_id != first.track_id
    assert single._value.get() == before + 1  # the first pass was decided on one face


@pytest.mark.parametrize(
    ("settings", "damage", "reason"),
    [
        ({}, lambda data: data[: len(data) // 2], "undecodable_frame"),
        ({"max_frame_pixels": 200 * 200}, lambda data: data, "too_large_frame"),
        ({}, lambda data: b"GIF89a" + data, "not_an_image_frame"),
    ],
    ids=["truncated", "too_many_pixels", "not_a_jpeg"],
)
async def test_a_frame_that_cannot_be_decoded_is_rejected_with_its_reason(
    photo, deployment_id, settings, damage, reason
):
    detector = Detector(SHARP)
    [outcome] = await _handler(detector, **settings).handle([_frame(deployment_id, damage(jpeg(photo, 95)), T0)])
    assert isinstance(outcome, Rejected) and outcome.reason == reason and outcome.detail
    assert detector.min_scores == []  # never reached the model


class ScoredDetector(Detector):
    """The Detector port with a score per face: faces under detect's minimum are found, not identified."""

    def __init__(self, *scored) -> None:
        super().__init__()
        self.scored = scored

    def detect(self, image_bgr: np.ndarray, min_score: float) -> list[Detection]:
        self.min_scores.append(min_score)
        return [Detection(box, _landmarks(box), score) for box, score in self.scored if score >= min_score]


def _scene(face, deployment_id: str) -> np.ndarray:
    return images.decode_jpeg(sealing.unseal(KEY, face.scene.image, deployment_id), max_bytes=10**7, max_pixels=10**7)


async def test_each_face_sent_on_carries_its_scene_sealed_with_every_other_face_covered(photo, deployment_id):
    # Colin Powell with a weaker face beside him (a detection under min_score: never identified, covered).
    frame = np.hstack([photo, photo])[:, :400]
    beside = (270.0, 75.0, 100.0, 110.0)
    detector = ScoredDetector((SHARP, 0.9), (beside, 0.45))
    [face] = (await _faces(_handler(detector), _frame(deployment_id, frame, T0)))[0]
    scene = face.scene
    assert scene.status == common_pb2.SCENE_STATUS_COMPOSED and scene.faces_blurred == 1
    with pytest.raises(images.ImageRejected):  # sealed like the crop: nothing on the bus in clear
        images.decode_jpeg(scene.image, max_bytes=10**7, max_pixels=10**7)
    pixels = _scene(face, deployment_id)
    region = (scene.region.x, scene.region.y, scene.region.width, scene.region.height)
    assert region == (0.0, 20.0, 400.0, 230.0)  # 8 faces wide around it, clipped at the frame's edges
    assert pixels.shape == (230, 400, 3)
    assert (scene.face.x, scene.face.y, scene.face.width, scene.face.height) == (75.0, 55.0, 100.0, 110.0)
    # The other face is covered; the tracked one is the frame's own.
    covered = pixels[55:165, 270:370].reshape(-1, 3).astype(int)
    assert np.abs(covered - np.array(scenes.BLUR_COLOUR)).max() <= 40
    assert np.abs(pixels[55:165, 75:175].astype(int) - photo[75:185, 75:175].astype(int)).mean() < 6


@pytest.mark.parametrize(
    ("settings", "record_bytes", "status"),
    [({"scene_images": False}, 8 << 20, "DISABLED"), ({}, 2_000, "NO_ROOM")],
    ids=["scenes_off", "record_full"],
)
async def test_a_face_without_a_scene_says_why(photo, deployment_id, settings, record_bytes, status):
    handler = DetectHandler(Detector(SHARP), Registry(), DetectSettings(**settings), record_bytes)
    [[face]] = await _faces(handler, _frame(deployment_id, photo, T0))
    assert face.scene.status == common_pb2.SceneStatus.Value(f"SCENE_STATUS_{status}") and not face.scene.image
    assert face.crop  # the face itself goes on as ever


async def test_a_face_another_face_hides_has_no_scene_and_says_so(photo, deployment_id):
    in_front = (100.0, 100.0, 100.0, 110.0)  # over a fifth of the face's box: one head in front of another
    [faces] = await _faces(_handler(Detector(SHARP, in_front)), _frame(deployment_id, photo, T0))
    assert [f.scene.status for f in faces] == [common_pb2.SCENE_STATUS_FACE_NOT_FOUND] * 2
    assert not any(f.scene.image for f in faces)

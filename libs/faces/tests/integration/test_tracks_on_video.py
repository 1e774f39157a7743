"""Tracks on real video, through the live detector: one person stays one track, a crowd becomes far
fewer tracks than faces, and only each track's best shots are embedded."""

import cv2
import pytest

from lfr_detect.detection import detect_faces
from lfr_detect.tracking import ShotPolicy, Tracker
from lfr_faces.detectors import build_detector
from lfr_faces.models import YUNET, model_path
from lfr_faces.quality import QualityPolicy, shot_quality

pytestmark = pytest.mark.integration


def _run(data_dir, models_dir, clip: str, fps: float = 5.0):
    detector = build_detector("yunet", model_path(models_dir, YUNET), input_width=640)
    tracker, policy = Tracker(), ShotPolicy()
    capture = cv2.VideoCapture(str(data_dir / "video" / clip))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(source_fps / fps))
    faces = embedded = 0
    tracks: dict[str, int] = {}
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            found = detect_faces(detector, frame, QualityPolicy(), 0.6).accepted
            assignment = tracker.assign("cam", [f.box for f in found], index / source_fps)
            assert len({t.track_id for t in assignment.tracks}) == len(found)  # never two faces in one track
            for face, track in zip(found, assignment.tracks, strict=True):
                faces += 1
                tracks.setdefault(track.track_id, 0)
                if policy.choose(track, shot_quality(face.quality, face.score)) is None:
                    embedded += 1
                    tracks[track.track_id] += 1
        index += 1
    capture.release()
    return faces, embedded, tracks


def test_one_person_talking_is_one_track_with_a_few_best_shots(data_dir, models_dir):
    faces, embedded, tracks = _run(data_dir, models_dir, "talking_liveportrait_d0.mp4")
    assert faces >= 10 and len(tracks) == 1
    assert 1 <= embedded <= 5 and embedded < faces


def test_a_crowd_walking_toward_the_camera_is_followed_person_by_person(data_dir, models_dir):
    faces, embedded, tracks = _run(data_dir, models_dir, "facenet_pytorch_video.mp4")
    assert faces >= 60
    assert len(tracks) <= faces / 3  # people are followed across frames, not re-found each frame
    assert all(1 <= shots <= 5 for shots in tracks.values())  # every track decided, within its budget
    assert embedded <= faces / 2

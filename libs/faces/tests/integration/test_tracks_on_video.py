"""Tracks on real video, through the live detector: one person stays one track, a crowd becomes far
fewer tracks than faces, and each pass gets one embedding per second of it, not one per face."""

import cv2
import pytest

from lfr_faces.crops import find_faces
from lfr_faces.detectors import build_detector
from lfr_faces.models import YUNET, model_path
from lfr_faces.quality import QualityPolicy, shot_quality
from lfr_faces.tracking import ShotPolicy, Tracker

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
            found = find_faces(detector, frame, QualityPolicy(), 0.6)[0]
            assignment = tracker.assign("cam", [f.box for f in found], index / source_fps)
            assert len({t.track_id for t in assignment.tracks}) == len(found)  # never two faces in one track
            for face, track in zip(found, assignment.tracks, strict=True):
                faces += 1
                tracks.setdefault(track.track_id, 0)
                quality = shot_quality(face.quality, face.score)
                if policy.choose(track, quality, index / source_fps, face.quality.yaw) is None:
                    embedded += 1
                    tracks[track.track_id] += 1
        index += 1
    capture.release()
    return faces, embedded, tracks


def test_one_person_talking_is_one_track_with_a_shot_a_second(data_dir, models_dir):
    faces, embedded, tracks = _run(data_dir, models_dir, "talking_liveportrait_d0.mp4")  # 3.1 s
    assert faces >= 10 and len(tracks) == 1
    assert 2 <= embedded <= 4 and embedded <= faces / 3


def test_a_crowd_walking_toward_the_camera_is_followed_person_by_person(data_dir, models_dir):
    faces, embedded, tracks = _run(data_dir, models_dir, "facenet_pytorch_video.mp4")
    assert faces >= 60
    assert len(tracks) <= faces / 3  # people are followed across frames, not re-found each frame
    # Every track decided, and none got more than one shot per interval of the clip's 4.2 s.
    assert all(1 <= shots <= 1 + 4.2 / ShotPolicy().interval_s for shots in tracks.values())
    assert embedded <= faces / 2

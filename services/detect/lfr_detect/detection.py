"""The detect domain: from a decoded frame to the faces worth identifying, and the scene around each
face sent on. No I/O here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from lfr_faces import scenes
from lfr_faces.crops import FaceCrop, faces_of
from lfr_faces.detectors import Detector
from lfr_faces.quality import QualityPolicy

# Why a face sent on has no scene, beyond lfr_faces.scenes.FACE_NOT_FOUND: the frame's scenes filled
# the room of its record, or scenes are off (LFR_DETECT_SCENE_IMAGES=false).
NO_ROOM = "no_room"
DISABLED = "disabled"


@dataclass(frozen=True)
class FrameFaces:
    accepted: list[FaceCrop]
    # How many faces were found but dropped, by reason (face_too_small, too_blurred).
    rejected: Counter[str]
    # The box of every face the detector found down to lfr_faces.scenes.BLUR_MIN_SCORE, identified or
    # not: what a scene covers besides its own face.
    every: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def found(self) -> int:
        return len(self.accepted) + sum(self.rejected.values())


def detect_faces(detector: Detector, image_bgr: np.ndarray, policy: QualityPolicy, min_score: float) -> FrameFaces:
    """One run of the detector: the faces at `min_score` are identified (gated, cropped); every face down
    to the blur's score is kept as a box, to be covered in scenes (NMS keeps the same faces at
    `min_score` whatever lower score the detector is asked for: a weaker box never suppresses a
    stronger one)."""
    detections = detector.detect(image_bgr, min(min_score, scenes.BLUR_MIN_SCORE))
    accepted, rejected = faces_of([d for d in detections if d.score >= min_score], image_bgr, policy)
    return FrameFaces(accepted, Counter(r.reason for r in rejected), tuple(d.box for d in detections))


def frame_scenes(
    image_bgr: np.ndarray, faces: FrameFaces, chosen: list[FaceCrop], room_bytes: int
) -> list[scenes.Scene | scenes.NoScene]:
    """The scene of each chosen face, every other face of the frame covered; the faces after the
    scenes' JPEGs reach `room_bytes` get none (NO_ROOM), so that the frame's record stays within the
    broker's limit however crowded the frame."""
    out: list[scenes.Scene | scenes.NoScene] = []
    used = 0
    for face in chosen:
        scene: scenes.Scene | scenes.NoScene = scenes.NoScene(NO_ROOM)
        if used < room_bytes:
            scene = scenes.compose_scene(image_bgr, face.box, [box for box in faces.every if box != face.box])
            if isinstance(scene, scenes.Scene):
                if used + len(scene.jpeg) > room_bytes:
                    scene = scenes.NoScene(NO_ROOM)
                else:
                    used += len(scene.jpeg)
        out.append(scene)
    return out

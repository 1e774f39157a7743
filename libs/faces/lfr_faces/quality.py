"""Is a detected face good enough to identify? Size, sharpness and head turn, and the policy
that turns them into a reason to drop the face (live) or reject the image (enrolment)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Faces are resized to this side before measuring sharpness, so the figure does not grow with size.
_SHARPNESS_SIDE = 64


@dataclass(frozen=True)
class Quality:
    size_px: float
    sharpness: float
    yaw: float


@dataclass(frozen=True)
class QualityPolicy:
    """Minimums below which a face is not passed on. Defaults are for live video; see the
    services' READMEs for how they were measured."""

    min_size_px: float = 40.0
    min_sharpness: float = 10.0
    max_yaw: float = 1.0

    def reason(self, quality: Quality) -> str | None:
        """None when the face passes; else the reason (lfr_contracts.reasons.FACE_DROPPED):
        face_too_small, too_blurred or pose_not_frontal."""
        if quality.size_px < self.min_size_px:
            return "face_too_small"
        if quality.sharpness < self.min_sharpness:
            return "too_blurred"
        if quality.yaw > self.max_yaw:
            return "pose_not_frontal"
        return None


def assess(image_bgr: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray) -> Quality:
    x, y, w, h = box
    return Quality(size_px=float(min(w, h)), sharpness=sharpness(image_bgr, box), yaw=yaw(landmarks))


def sharpness(image_bgr: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian of the face box at 64x64 grey; 0 for an empty box."""
    height, width = image_bgr.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(x + w)), min(height, int(y + h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    face = cv2.cvtColor(image_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    face = cv2.resize(face, (_SHARPNESS_SIDE, _SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


def yaw(landmarks: np.ndarray) -> float:
    """Head turn from the landmarks: how far the nose tip sits from the eyes' midpoint, in half
    inter-ocular distances. 0 is frontal; 1 puts the nose under an eye (roughly 45 degrees)."""
    right_eye, left_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    half_iod = np.linalg.norm(left_eye - right_eye) / 2
    if half_iod < 1e-6:
        return 1.0
    axis = (left_eye - right_eye) / (2 * half_iod)
    offset = float(np.dot(nose - (left_eye + right_eye) / 2, axis))
    return min(abs(offset) / half_iod, 1.0)


# A shot's identification quality saturates at these: a face of 112 px or more fills the model's
# input; sharpness (variance of the Laplacian at 64x64) above 150 shows no gain on the crowd clip.
_FULL_SIZE_PX = 112.0
_FULL_SHARPNESS = 150.0


def shot_quality(quality: Quality, detector_score: float) -> float:
    """How good a shot of a face is for identification, 0-1: the product of its size, sharpness and
    frontality (each saturating at 1) and the detector's confidence. Used to pick a track's best shots
    (detect) and to weight them when fusing a template (match, and the evaluation)."""
    size = min(1.0, quality.size_px / _FULL_SIZE_PX)
    sharp = min(1.0, quality.sharpness / _FULL_SHARPNESS)
    frontal = max(0.0, 1.0 - quality.yaw)
    return float(max(0.0, min(1.0, size * sharp * frontal * detector_score)))

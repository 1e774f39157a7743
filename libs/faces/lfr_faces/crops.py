"""The live path from a frame to vectors, as one sequence of functions that every user runs:

    frame --find_faces--> FaceCrop (JPEG crop + landmarks) --embed_crops--> unit vectors

detect runs find_faces, embed runs embed_crops on what detect published; enrolment and the
evaluation harness run both in a row, JPEG round trip included, so that what they measure and
enrol is what the live pipeline computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lfr_faces import alignment, images
from lfr_faces.detectors import Detection, Detector
from lfr_faces.embedders import Embedder
from lfr_faces.quality import Quality, QualityPolicy, assess

# The crop keeps this much of the face box's larger side as margin on each side, enough for the
# alignment template (which reaches past the detector's box) to come from real pixels.
CROP_MARGIN = 0.5
# Crops are downscaled to at most this side: alignment needs 112 px; 224 keeps detail for review.
CROP_MAX_SIDE = 224
CROP_JPEG_QUALITY = 95
# Crops are ours (never untrusted input), but a limit still bounds a corrupted one.
_CROP_MAX_BYTES = 4 * 1024 * 1024
_CROP_MAX_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class FaceCrop:
    index: int
    box: tuple[float, float, float, float]
    crop_box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2) in crop pixels
    score: float
    quality: Quality
    jpeg: bytes


@dataclass(frozen=True)
class RejectedFace:
    detection: Detection
    quality: Quality
    reason: str


def find_faces(
    detector: Detector, image_bgr: np.ndarray, policy: QualityPolicy, min_score: float
) -> tuple[list[FaceCrop], list[RejectedFace]]:
    """Faces good enough to identify, as crops; and those dropped, with the reason."""
    return faces_of(detector.detect(image_bgr, min_score), image_bgr, policy)


def faces_of(
    detections: list[Detection], image_bgr: np.ndarray, policy: QualityPolicy
) -> tuple[list[FaceCrop], list[RejectedFace]]:
    """find_faces on detections made already (detect also keeps the weaker ones, to blur them in scenes)."""
    accepted: list[FaceCrop] = []
    rejected: list[RejectedFace] = []
    for detection in detections:
        quality = assess(image_bgr, detection.box, detection.landmarks)
        reason = policy.reason(quality)
        if reason:
            rejected.append(RejectedFace(detection, quality, reason))
            continue
        jpeg, crop_box, landmarks = crop(image_bgr, detection)
        accepted.append(FaceCrop(len(accepted), detection.box, crop_box, landmarks, detection.score, quality, jpeg))
    return accepted, rejected


def crop(image_bgr: np.ndarray, detection: Detection) -> tuple[bytes, tuple[float, float, float, float], np.ndarray]:
    height, width = image_bgr.shape[:2]
    x, y, w, h = detection.box
    margin = CROP_MARGIN * max(w, h)
    x0, y0 = max(0, int(x - margin)), max(0, int(y - margin))
    x1, y1 = min(width, int(np.ceil(x + w + margin))), min(height, int(np.ceil(y + h + margin)))
    face = image_bgr[y0:y1, x0:x1]
    landmarks = detection.landmarks - np.array([x0, y0], dtype=np.float32)
    scale = min(1.0, CROP_MAX_SIDE / max(face.shape[:2]))
    if scale < 1.0:
        face = cv2.resize(
            face, (round(face.shape[1] * scale), round(face.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
        landmarks = landmarks * scale
    jpeg = images.encode_jpeg(face, CROP_JPEG_QUALITY)
    return jpeg, (float(x0), float(y0), float(x1 - x0), float(y1 - y0)), landmarks.astype(np.float32)


def align_crop(jpeg: bytes, landmarks: np.ndarray) -> np.ndarray:
    face = images.decode_jpeg(jpeg, max_bytes=_CROP_MAX_BYTES, max_pixels=_CROP_MAX_PIXELS)
    return alignment.align(face, landmarks)


def embed_crops(embedder: Embedder, crops: list[tuple[bytes, np.ndarray]]) -> np.ndarray:
    """Unit vectors, one row per (crop JPEG, landmarks in crop pixels)."""
    return embedder.embed([align_crop(jpeg, landmarks) for jpeg, landmarks in crops])

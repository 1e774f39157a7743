"""Face detectors behind one Protocol, chosen by name from configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face in image pixels: box (x, y, w, h), 5 landmarks (x, y) and the detector's score.

    Landmark order: right eye, left eye, nose tip, right mouth corner, left mouth corner (the
    subject's right and left), which is the order of the ArcFace alignment template.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # shape (5, 2), float32
    score: float


class Detector(Protocol):
    model_id: str
    provider: str

    def detect(self, image_bgr: np.ndarray, min_score: float) -> list[Detection]: ...


def build_detector(name: str, model_path: Path, *, input_width: int, intra_op_threads: int = 1) -> Detector:
    from lfr_faces.detectors.yunet import YuNetDetector

    detectors = {"yunet": YuNetDetector}
    if name not in detectors:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(detectors))}")
    return detectors[name](model_path, input_width=input_width, intra_op_threads=intra_op_threads)

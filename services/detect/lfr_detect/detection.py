"""The detect domain: from a decoded frame to the faces worth identifying. No I/O here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from lfr_faces.crops import FaceCrop, find_faces
from lfr_faces.detectors import Detector
from lfr_faces.quality import QualityPolicy


@dataclass(frozen=True)
class FrameFaces:
    accepted: list[FaceCrop]
    # How many faces were found but dropped, by reason (face_too_small, too_blurred).
    rejected: Counter[str]

    @property
    def found(self) -> int:
        return len(self.accepted) + sum(self.rejected.values())


def detect_faces(detector: Detector, image_bgr: np.ndarray, policy: QualityPolicy, min_score: float) -> FrameFaces:
    accepted, rejected = find_faces(detector, image_bgr, policy, min_score)
    return FrameFaces(accepted, Counter(r.reason for r in rejected))

"""5-point alignment to the standard 112x112 ArcFace template (used by SFace and ArcFace models).

The similarity transform is the least-squares (Umeyama) fit of the 5 landmarks to the template, as
OpenCV's FaceRecognizerSF.alignCrop computes it. Pixels the transform needs from outside the
source image are filled by replicating the edge (BORDER_REPLICATE), not black: black borders lower
impostor scores and would hide false positives on tightly cropped photos (see docs/evaluation.md).
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 112
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
BORDER = cv2.BORDER_REPLICATE


def similarity_transform(src: np.ndarray, dst: np.ndarray = TEMPLATE) -> np.ndarray:
    """2x3 matrix of the rotation + uniform scale + translation that best maps src onto dst."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = (singular * d).sum() / variance if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 BGR face, aligned to the template."""
    matrix = similarity_transform(landmarks)
    return cv2.warpAffine(image_bgr, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=BORDER)

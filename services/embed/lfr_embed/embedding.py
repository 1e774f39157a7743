"""The embed domain: aligned faces of several frames in one model run, vectors back per frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfr_faces.crops import embed_crops
from lfr_faces.embedders import Embedder


@dataclass(frozen=True)
class FaceToEmbed:
    jpeg: bytes
    landmarks: np.ndarray


def embed_frames(embedder: Embedder, frames: list[list[FaceToEmbed]]) -> list[np.ndarray]:
    """One (faces, dimension) array per frame, computed in as few model runs as the batch size allows."""
    flat = [(face.jpeg, face.landmarks) for faces in frames for face in faces]
    vectors = embed_crops(embedder, flat)
    out, start = [], 0
    for faces in frames:
        out.append(vectors[start : start + len(faces)])
        start += len(faces)
    return out

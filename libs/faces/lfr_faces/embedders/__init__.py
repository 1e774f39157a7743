"""Face recognition models behind one Protocol, chosen by name from configuration.

A deployment that licenses a stronger model (an ArcFace-class ONNX file taking the 112x112
aligned face) points the embedder setting at it with the matching preprocessing preset: no code
changes. Vectors are always L2-normalised, so cosine similarity is their dot product.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    model_id: str
    dimension: int
    provider: str

    def embed(self, aligned_bgr: list[np.ndarray]) -> np.ndarray:
        """(n, dimension) float32, each row of unit length."""
        ...


@dataclass(frozen=True)
class Preprocessing:
    rgb: bool
    mean: float
    std: float


# SFace normalises inside its graph and takes RGB 0..255 (as OpenCV's FaceRecognizerSF feeds it);
# insightface ArcFace exports take RGB scaled to [-1, 1].
PRESETS = {
    "sface": Preprocessing(rgb=True, mean=0.0, std=1.0),
    "arcface": Preprocessing(rgb=True, mean=127.5, std=127.5),
}


def build_embedder(
    name: str,
    model_path: Path,
    *,
    model_id: str | None = None,
    max_batch: int = 16,
    intra_op_threads: int = 1,
) -> Embedder:
    from lfr_faces.embedders.onnx import OnnxEmbedder

    if name not in PRESETS:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(sorted(PRESETS))}")
    return OnnxEmbedder(
        model_path,
        PRESETS[name],
        model_id=model_id or model_path.stem,
        max_batch=max_batch,
        intra_op_threads=intra_op_threads,
    )

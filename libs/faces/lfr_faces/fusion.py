"""One template from several shots of the same person (a track's best shots): how match decides per
pass, and how the evaluation measures it (`lfr eval --multi-shot K`), with the same code.

- `mean`: the quality-weighted mean of the unit vectors, normalised again. Averaging shots cancels
  part of each shot's noise (pose, blur, expression).
- `best`: the vector of the single best shot.
"""

from __future__ import annotations

import numpy as np

METHODS = ("mean", "best")


def fuse(vectors: np.ndarray, qualities: np.ndarray | list[float], method: str = "mean") -> np.ndarray:
    """A unit vector from (n, d) unit vectors and their n shot qualities (0-1)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    weights = np.asarray(qualities, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0 or len(weights) != len(vectors):
        raise ValueError(f"fuse needs n >= 1 vectors and n qualities, got {vectors.shape} and {weights.shape}")
    if method == "best":
        return vectors[int(np.argmax(weights))]
    if method != "mean":
        raise ValueError(f"unknown fusion {method!r}: one of {', '.join(METHODS)}")
    # A zero weight (a shot of no measurable quality) still counts a little: never divide by zero.
    weights = np.maximum(weights, 1e-3)
    fused = (vectors * weights[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(fused))
    return (fused / norm).astype(np.float32) if norm > 0 else vectors[int(np.argmax(weights))]

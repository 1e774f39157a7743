"""Every face against every other, counted per threshold: the model's false match curves, free of I/O.

An ordered pair (a, b) is a passer-by a (the probe) against a watchlist entry b. It counts when a and
b are of different identities and not a reviewed same-person pair; it is counted for the overall curve
and for every curve (group) the probe a belongs to. Scores are symmetric, so both orders of a pair of
faces are counted, each in the curves of its own probe.

The score matrix never exists whole (12,000 faces: 144 million scores): rows are scored in blocks
(float32, as embed's unit vectors), and each block leaves only its counts at each grid threshold (one
histogram per row over the grid, summed per curve) and the few scores at or above `keep_from`, for
the tail fit (lfr_eval.tail) and the review.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# Below any cosine similarity: what a pair that must not count scores.
_SKIP = -2.0


@dataclass(frozen=True)
class Curve:
    """The ordered impostor pairs whose probe is in one group of faces."""

    name: str
    faces: int  # probe faces in the group
    n: int  # ordered impostor pairs whose probe is in the group
    k: np.ndarray  # (thresholds,) of them scoring at or above each threshold


@dataclass(frozen=True)
class Counts:
    thresholds: np.ndarray
    curves: dict[str, Curve]
    # Every ordered impostor pair scoring at or above keep_from: (probe index, entry index, score).
    high_a: np.ndarray
    high_b: np.ndarray
    high_score: np.ndarray
    keep_from: float

    def in_curve(self, member: np.ndarray) -> np.ndarray:
        """Which of the kept high pairs have their probe in a group (`member`: (faces,) bool)."""
        return member[self.high_a]


def grid(start: float = 0.30, stop: float = 0.90, step: float = 0.005) -> np.ndarray:
    """Thresholds from start to stop inclusive, rounded to 3 decimals (the calibration's grid)."""
    return np.round(start + step * np.arange(int(round((stop - start) / step)) + 1), 3)


def count(
    vectors: np.ndarray,
    identity: np.ndarray,
    groups: dict[str, np.ndarray],
    thresholds: np.ndarray,
    excluded: Iterable[tuple[int, int]] = (),
    keep_from: float = 0.5,
    block: int = 512,
) -> Counts:
    """Count every ordered pair of faces of different `identity` (ints), less the `excluded` index
    pairs (skipped in both orders), at or above each of `thresholds` (ascending), per group.

    `groups` maps a curve's name to its probe faces ((faces,) bool); "all" is added for every face.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    identity = np.asarray(identity)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(thresholds) <= 0):
        raise ValueError("thresholds must be ascending")
    n_faces, n_t = len(vectors), len(thresholds)
    names = ["all", *[g for g in groups if g != "all"]]
    member = np.stack([np.ones(n_faces, bool)] + [np.asarray(groups[g], bool) for g in names[1:]])
    skip: dict[int, list[int]] = {}
    for a, b in excluded:
        if a != b:
            skip.setdefault(a, []).append(b)
            skip.setdefault(b, []).append(a)
    k = np.zeros((len(names), n_t), np.int64)
    n = np.zeros(len(names), np.int64)
    high: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n_faces, block):
        stop = min(start + block, n_faces)
        scores = vectors[start:stop] @ vectors.T
        invalid = identity[start:stop, None] == identity[None, :]
        for a in range(start, stop):
            if a in skip:
                invalid[a - start, skip[a]] = True
        scores[invalid] = _SKIP
        # bins[r, j]: how many of row r's scores lie in [t_j-1, t_j) (j = 0: below the grid); the pairs at
        # or above t_i are those in bins i+1 and up.
        where = np.searchsorted(thresholds, scores, side="right")
        rows = stop - start
        bins = np.bincount((where + (n_t + 1) * np.arange(rows)[:, None]).ravel(), minlength=rows * (n_t + 1))
        at_or_above = np.cumsum(bins.reshape(rows, n_t + 1)[:, ::-1], axis=1)[:, ::-1][:, 1:]
        m = member[:, start:stop].astype(np.int64)
        k += m @ at_or_above
        n += m @ (~invalid).sum(axis=1)
        r, c = np.nonzero(scores >= keep_from)
        high.append((r + start, c, scores[r, c]))
    curves = {
        name: Curve(name, int(member[i].sum()), int(n[i]), k[i].copy()) for i, name in enumerate(names) if n[i] > 0
    }
    if high:
        a, b, s = (np.concatenate(column) for column in zip(*high, strict=True))
    else:
        a, b, s = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return Counts(thresholds, curves, a.astype(np.int64), b.astype(np.int64), s.astype(np.float32), keep_from)

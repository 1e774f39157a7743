"""A track's shots fused into one template, so that match decides per person pass, not per frame.

Held in this process's memory only (vectors are biometric: nothing of them is written anywhere),
bounded in number, and forgotten when a track has been idle for `idle_s` or its deployment closes. A
restart or a rebalance forgets templates: the next shot of the track starts a new one (it is still
decided; nothing is merged).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from lfr_faces.fusion import fuse


@dataclass
class _Shots:
    vectors: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    last: float = 0.0


class TrackTemplates:
    """`method`: the quality-weighted mean of the shots (decision 0008; the best shot alone found fewer
    people at the same false-match rate). A template unused for `idle_s` is forgotten: a pass whose
    track was not seen for 2 s has ended already (lfr_faces.tracking)."""

    def __init__(self, method: str = "mean", max_tracks: int = 20_000, idle_s: float = 30.0) -> None:
        self.method = method
        self.max_tracks = max_tracks
        self.idle_s = idle_s
        self._tracks: OrderedDict[tuple[str, str, str], _Shots] = OrderedDict()

    def add(
        self,
        deployment_id: str,
        camera: str,
        track_id: str,
        vector: np.ndarray,
        quality: float,
        now: float | None = None,
    ) -> tuple[np.ndarray, int]:
        """The track's template with this shot fused in, and how many shots it holds. `now`: the shot's
        capture time (templates idle that long in capture time are forgotten)."""
        now = time.time() if now is None else now
        self._expire(now)
        key = (deployment_id, camera, track_id)
        shots = self._tracks.pop(key, None) or _Shots()
        shots.vectors.append(np.asarray(vector, dtype=np.float32))
        shots.qualities.append(float(quality))
        shots.last = now
        self._tracks[key] = shots  # most recently used last
        return fuse(np.stack(shots.vectors), shots.qualities, self.method), len(shots.vectors)

    def _expire(self, now: float) -> None:
        while self._tracks:
            key, oldest = next(iter(self._tracks.items()))
            if now - oldest.last <= self.idle_s and len(self._tracks) < self.max_tracks:
                break
            del self._tracks[key]

    def drop(self, deployment_id: str) -> int:
        """Forget every template of a deployment (it closed); returns how many."""
        keys = [k for k in self._tracks if k[0] == deployment_id]
        for key in keys:
            del self._tracks[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._tracks)

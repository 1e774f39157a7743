"""Following each face across a camera's frames (tracks), and choosing which shots of a track are
worth embedding (best shots). No I/O here.

Association: each track's box is predicted at the frame's capture time from its last box and
velocity; detections are matched to tracks by the Hungarian algorithm (scipy) on IoU with the
predicted box, or, for a face that moved further than its size between two frames (5 fps, people
walking toward a camera), on centre distance within a gate of one face size and a size ratio within
2x. A detection no track takes starts a new track; a track not seen for `max_age_s` of capture time
ends. One detection per track per frame: two faces are never merged into one track.

Why not a tracker library: docs/decisions/0007.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

Box = tuple[float, float, float, float]  # x, y, width, height in frame pixels

# Below this IoU with the predicted box a pair is judged on distance instead (then scored below it).
_MIN_IOU = 0.2
# Velocity is smoothed: a face's motion changes little from one frame to the next.
_VELOCITY_SMOOTHING = 0.5


@dataclass
class Track:
    track_id: str
    box: Box
    first_seen: float
    last_seen: float
    velocity: tuple[float, float] = (0.0, 0.0)  # centre, pixels per second
    hits: int = 1
    shots: int = 0  # faces of this track sent to be embedded
    best_quality: float = -1.0

    def predicted(self, t: float) -> Box:
        dt = max(0.0, t - self.last_seen)
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def similarity(predicted: Box, detection: Box) -> float:
    """How likely the detection continues the track, 0 (never) to 1."""
    overlap = iou(predicted, detection)
    if overlap >= _MIN_IOU:
        return overlap
    px, py, pw, ph = predicted
    dx, dy, dw, dh = detection
    size = (max(pw, ph) + max(dw, dh)) / 2
    ratio = max(dw, dh) / max(pw, ph, 1e-6)
    if size <= 0 or not 0.5 <= ratio <= 2.0:
        return 0.0
    distance = float(np.hypot(px + pw / 2 - dx - dw / 2, py + ph / 2 - dy - dh / 2))
    return _MIN_IOU * max(0.0, 1.0 - distance / size)


@dataclass
class Assignment:
    tracks: list[Track]  # one per detection, in order
    started: int  # new tracks among them
    ended: list[Track]  # tracks that ended before this frame
    out_of_order: bool = False


@dataclass
class CameraTracks:
    """The tracks of one camera."""

    ids: itertools.count
    prefix: str
    max_age_s: float
    max_tracks: int
    tracks: list[Track] = field(default_factory=list)
    last_frame: float = float("-inf")

    def _new(self, box: Box, t: float) -> Track:
        return Track(f"{self.prefix}:{next(self.ids)}", box, t, t)

    def assign(self, boxes: Sequence[Box], t: float) -> Assignment:
        if t < self.last_frame:
            # A frame older than one already seen: motion cannot be trusted, so its faces get tracks
            # of their own (decided on their own) and the camera's tracks are left as they are.
            return Assignment([self._new(b, t) for b in boxes], len(boxes), [], out_of_order=True)
        self.last_frame = t
        ended = [tr for tr in self.tracks if t - tr.last_seen > self.max_age_s]
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.max_age_s]
        assigned: list[Track | None] = [None] * len(boxes)
        if self.tracks and boxes:
            scores = np.array([[similarity(tr.predicted(t), b) for b in boxes] for tr in self.tracks])
            rows, cols = linear_sum_assignment(scores, maximize=True)
            for r, c in zip(rows, cols, strict=True):
                if scores[r, c] > 0:
                    assigned[c] = self._continue(self.tracks[r], boxes[c], t)
        started = 0
        for i, box in enumerate(boxes):
            if assigned[i] is None:
                assigned[i] = self._new(box, t)
                self.tracks.append(assigned[i])
                started += 1
        if len(self.tracks) > self.max_tracks:  # a crowd beyond the bound: the stalest end first
            self.tracks.sort(key=lambda tr: tr.last_seen)
            ended += self.tracks[: len(self.tracks) - self.max_tracks]
            self.tracks = self.tracks[len(self.tracks) - self.max_tracks :]
        return Assignment(assigned, started, ended)  # type: ignore[arg-type]

    @staticmethod
    def _continue(track: Track, box: Box, t: float) -> Track:
        dt = t - track.last_seen
        if dt > 0:
            ox, oy, ow, oh = track.box
            nx, ny, nw, nh = box
            vx = (nx + nw / 2 - ox - ow / 2) / dt
            vy = (ny + nh / 2 - oy - oh / 2) / dt
            a = _VELOCITY_SMOOTHING
            track.velocity = (a * vx + (1 - a) * track.velocity[0], a * vy + (1 - a) * track.velocity[1])
        track.box = box
        track.last_seen = max(track.last_seen, t)
        track.hits += 1
        return track


class Tracker:
    """Tracks per camera, bounded: at most `max_tracks` per camera, and a camera silent for
    `camera_idle_s` of capture time is forgotten (its tracks end)."""

    def __init__(self, max_age_s: float = 2.0, max_tracks: int = 256, camera_idle_s: float = 60.0) -> None:
        # Track ids start with this process's own random prefix: a restart or a rebalance starts new
        # tracks and can never continue (merge into) a track of another process.
        self.prefix = uuid.uuid4().hex[:8]
        self.ids = itertools.count(1)
        self.max_age_s = max_age_s
        self.max_tracks = max_tracks
        self.camera_idle_s = camera_idle_s
        self.cameras: dict[str, CameraTracks] = {}

    def assign(self, camera: str, boxes: Sequence[Box], t: float) -> Assignment:
        tracks = self.cameras.get(camera)
        if tracks is None:
            tracks = self.cameras[camera] = CameraTracks(self.ids, self.prefix, self.max_age_s, self.max_tracks)
        assignment = tracks.assign(boxes, t)
        for name, other in list(self.cameras.items()):
            if t - other.last_frame > self.camera_idle_s:
                assignment.ended.extend(other.tracks)
                del self.cameras[name]
        return assignment


@dataclass(frozen=True)
class ShotPolicy:
    """Which shots of a track are embedded: the first (a decision at once), then one only when it is
    materially better (`min_gain` more quality than the best so far), at most `budget` per track."""

    budget: int = 5
    min_gain: float = 0.15

    def choose(self, track: Track, quality: float) -> str | None:
        """None: embed this shot (and remember it); else why not: budget_spent or not_better."""
        if track.shots == 0 or (track.shots < self.budget and quality > track.best_quality * (1 + self.min_gain)):
            track.shots += 1
            track.best_quality = max(track.best_quality, quality)
            return None
        return "budget_spent" if track.shots >= self.budget else "not_better"

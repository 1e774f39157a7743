"""Following each face across a camera's frames (tracks), and choosing which shots of a track are
embedded (the shot policy). No I/O here. detect runs it live; `lfr eval --video` and `make bench` run
the same code on recorded video.

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
    last_shot_at: float = float("-inf")  # capture time of the last one
    best_quality: float = -1.0  # the best shot quality seen in the track, embedded or not
    frontal: bool = False  # some face of the track was frontal (yaw <= FRONTAL_YAW)

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


# A track not seen for this long (capture time) ends: at 5 fps, 10 frames without the face (a turned
# head, someone passing in front); the next sighting starts a new track (decision 0007).
TRACK_MAX_AGE_S = 2.0
# Live tracks per camera at most (the stalest end first): far more people than a camera sees at once.
TRACKS_PER_CAMERA = 256


class Tracker:
    """Tracks per camera, bounded: at most `max_tracks` per camera, and a camera silent for
    `camera_idle_s` of capture time is forgotten (its tracks end)."""

    def __init__(
        self, max_age_s: float = TRACK_MAX_AGE_S, max_tracks: int = TRACKS_PER_CAMERA, camera_idle_s: float = 60.0
    ) -> None:
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


# Capture times of a paced camera jitter by milliseconds: a face within this of its interval is due,
# so that a 5 fps camera's faces 0.8 s apart are 4 frames apart, live as in the evaluation.
_DUE_TOLERANCE_S = 0.05
# A face turned less than this (lfr_faces.quality.yaw: about 25 degrees) is frontal. A pass with no
# frontal face is decided all the same, on what it has, and counted (never_frontal).
FRONTAL_YAW = 0.5


@dataclass(frozen=True)
class ShotPolicy:
    """Which faces of a track are embedded (docs/decisions/0012-shots-spread-over-the-pass.md):

    - the first at once, so that a pass is decided within a frame;
    - then one per `interval_s` of capture time, spread over the pass: the budget grows with how
      long the pass lasts (a 10 s pass gets 13 shots), because a pass's later faces carry evidence
      its first ones lack (another angle, another expression);
    - at most `budget` per track (someone standing in view for minutes adds nothing after that).

    Shot quality does not choose among the faces that passed detect's gate: within a pass it barely
    predicts the score (decision 0012), and waiting for a better face cost recall where it was tried
    (`min_relative_quality`, off: a face under that fraction of the track's best so far waits).
    """

    interval_s: float = 0.8
    budget: int = 20
    min_relative_quality: float = 0.0

    def choose(self, track: Track, quality: float, t: float, yaw: float = 0.0) -> str | None:
        """For a face of `track` captured at `t` with this shot quality (lfr_faces.quality.shot_quality)
        and head turn: None to embed it (remembered), else why not: budget_spent, not_due or not_better."""
        track.best_quality = max(track.best_quality, quality)
        track.frontal = track.frontal or yaw <= FRONTAL_YAW
        if track.shots:
            if track.shots >= self.budget:
                return "budget_spent"
            if t - track.last_shot_at < self.interval_s - _DUE_TOLERANCE_S:
                return "not_due"
            if quality < self.min_relative_quality * track.best_quality:
                return "not_better"
        track.shots += 1
        track.last_shot_at = t
        return None


def pass_flags(track: Track) -> list[str]:
    """What limits an ended track's decision, for lfr_passes_flagged_total: single_face (decided on
    one shot), never_frontal (no face of it was frontal)."""
    flags = []
    if track.hits == 1:
        flags.append("single_face")
    if not track.frontal:
        flags.append("never_frontal")
    return flags

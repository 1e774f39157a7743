"""The ingest domain: which frames to keep (sampling), and a queue that never blocks capture."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


class Sampler:
    """Keeps frames at a target rate from a source of a given timeline.

    `keep(t)` is called with each frame's time in seconds (its presentation time for files, the
    wall clock for streams), in order; it keeps a frame whenever one sample interval has passed.
    """

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._next: float | None = None

    def keep(self, t: float) -> bool:
        # A small tolerance so that 25 fps sampled at 5 fps keeps exactly every 5th frame.
        if self._next is not None and t + 1e-6 < self._next:
            return False
        if self._next is None or t - self._next > self.interval:
            self._next = t + self.interval  # the first frame, or after a stall: restart from now
        else:
            self._next += self.interval
        return True


@dataclass(frozen=True)
class CapturedFrame:
    sequence: int
    captured_at: float  # wall clock, seconds since the epoch
    jpeg: bytes
    width: int
    height: int


class DropOldestQueue:
    """Bounded, thread-safe: put() never blocks; when full, the oldest frame is dropped and counted."""

    def __init__(self, size: int) -> None:
        self._items: deque[CapturedFrame] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> bool:
        """True when an older frame had to be dropped to make room."""
        with self._lock:
            full = len(self._items) == self._items.maxlen
            if full:
                self.dropped += 1
            self._items.append(frame)
            return full

    def get(self) -> CapturedFrame | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    if not max_width or width <= max_width:
        return image
    return cv2.resize(image, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)

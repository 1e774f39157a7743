"""The ingest domain: the frames it captured, and a queue that never blocks capture. Which frames are
kept (lfr_faces.frames.Sampler) is shared with the evaluation, which samples recorded clips the same way."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class CapturedFrame:
    sequence: int
    captured_at: float  # seconds since the epoch: a stream's wall clock, a file's start plus the frame's time
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

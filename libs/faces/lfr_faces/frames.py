"""A camera's frames as the pipeline sees them: sampled at a rate from the source's timeline, fitted to
a width, and JPEG-encoded. ingest does it to every camera; `lfr eval --video` and the benchmarks do
it to recorded clips with the same code, so that what they measure is what runs live."""

from __future__ import annotations

import cv2
import numpy as np

# The JPEG quality of a published frame: what the detector, the calibration and the video evaluation saw.
JPEG_QUALITY = 90


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


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    height, width = image.shape[:2]
    if not max_width or width <= max_width:
        return image
    return cv2.resize(image, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)


_STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "rtmp://")


def is_stream(source: str) -> bool:
    """A camera URL (read for as long as it delivers), not a file (read once, at its own pace)."""
    return source.lower().startswith(_STREAM_SCHEMES)

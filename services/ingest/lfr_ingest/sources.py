"""Reading a camera with OpenCV in a thread of its own: files paced like a live camera, streams
reopened with backoff when they fail. The thread only reads, samples, encodes and queues; it
never waits for the broker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from lfr_faces.frames import JPEG_QUALITY, Sampler, fit_width, is_stream
from lfr_faces.images import encode_jpeg
from lfr_ingest.capture import CapturedFrame, DropOldestQueue
from lfr_ingest.settings import CameraSettings

log = logging.getLogger(__name__)


class CameraWorker(threading.Thread):
    def __init__(
        self,
        camera: CameraSettings,
        queue: DropOldestQueue,
        *,
        max_width: int,
        reconnect_initial_s: float,
        reconnect_max_s: float,
        on_frame: Callable[[bool], None],
        on_status: Callable[[bool], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        super().__init__(name=f"camera-{camera.camera_id}", daemon=True)
        self.camera = camera
        self.queue = queue
        self.max_width = max_width
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.on_frame = on_frame  # called with True when an older frame was dropped to queue this one
        self.on_status = on_status
        self.on_reconnect = on_reconnect
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self._sequence = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        delay = self.reconnect_initial_s
        try:
            while not self.stopping.is_set():
                capture = self._open()
                if capture is None:
                    problem = "cannot open camera source"
                else:
                    self.on_status(True)
                    delivered, ended = self._read(capture)
                    capture.release()
                    if ended:
                        self.on_status(False)
                        return
                    if delivered:
                        delay = self.reconnect_initial_s
                    problem = "camera source stopped delivering"
                # Not fatal: report, wait, and open the source again with exponential backoff.
                self.on_status(False)
                self.on_reconnect()
                log.warning("%s, retrying in %.1fs", problem, delay, extra={"camera_id": self.camera.camera_id})
                self.stopping.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
        finally:
            self.finished.set()

    def _open(self):
        source = self.camera.source
        if not is_stream(source) and not Path(source).is_file():
            return None
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _read(self, capture) -> tuple[bool, bool]:
        """Read until the source fails or ends: (delivered any frame, finished for good)."""
        stream = is_stream(self.camera.source)
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        if not 1.0 <= source_fps <= 240.0:
            source_fps = 25.0
        sampler = Sampler(self.camera.fps)
        started = time.monotonic()
        # A file's frame was captured at its place in the file's timeline, played from now on: its
        # capture time does not move when this machine reads it late (decisions on capture time, such
        # as which faces of a track are embedded, are then the same whatever the load).
        wall_started = time.time()
        index = 0
        delivered = False
        since_rewind = 0
        while not self.stopping.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                if stream:
                    return delivered, False
                if self.camera.loop and since_rewind > 0 and capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
                    since_rewind = 0
                    continue
                # A file that ended is finished, unless it looped (then reopen it) or never
                # delivered a frame (then it is retried like a failed stream).
                return delivered, delivered and not self.camera.loop
            delivered = True
            since_rewind += 1
            if stream:
                t = time.monotonic() - started
            else:
                t = index / source_fps
                index += 1
                if self.camera.paced:
                    wait = started + t - time.monotonic()
                    if wait > 0 and self.stopping.wait(wait):
                        break
            if sampler.keep(t):
                self._queue(image, time.time() if stream else wall_started + t)
        return delivered, True

    def _queue(self, image, captured_at: float) -> None:
        image = fit_width(image, self.max_width)
        frame = CapturedFrame(
            sequence=self._sequence,
            captured_at=captured_at,
            jpeg=encode_jpeg(image, JPEG_QUALITY),
            width=image.shape[1],
            height=image.shape[0],
        )
        self._sequence += 1
        self.on_frame(self.queue.put(frame))

"""Real photos and video frames from the shared data set, for tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def video_frame(data_dir: Path, name: str, index: int = 0) -> np.ndarray:
    capture = cv2.VideoCapture(str(data_dir / "video" / name))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"cannot read frame {index} of {name}"
        return frame
    finally:
        capture.release()


def lfw(data_dir: Path, identity: str, number: int = 1) -> Path:
    return data_dir / "lfw" / "images" / identity / f"{identity}_{number:04d}.jpg"


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()

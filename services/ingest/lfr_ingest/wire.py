"""A captured frame as the FrameCaptured message."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import common_pb2, frames_pb2
from lfr_ingest.capture import CapturedFrame


def frame_captured(camera: common_pb2.CameraRef, frame: CapturedFrame, sealed_jpeg: bytes) -> frames_pb2.FrameCaptured:
    captured_at = Timestamp()
    captured_at.FromNanoseconds(int(frame.captured_at * 1e9))
    return frames_pb2.FrameCaptured(
        camera=camera,
        sequence=frame.sequence,
        captured_at=captured_at,
        width=frame.width,
        height=frame.height,
        image=sealed_jpeg,
    )

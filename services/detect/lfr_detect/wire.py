"""FrameCaptured in, FacesDetected out: protobuf <-> domain."""

from __future__ import annotations

from collections.abc import Callable

from lfr.v1 import common_pb2, faces_pb2, frames_pb2
from lfr_faces.crops import FaceCrop


def box(values: tuple[float, float, float, float]) -> common_pb2.BoundingBox:
    x, y, w, h = values
    return common_pb2.BoundingBox(x=x, y=y, width=w, height=h)


def faces_detected(
    frame: frames_pb2.FrameCaptured,
    detector_id: str,
    faces: list[tuple[FaceCrop, str, float]],
    seal: Callable[[bytes], bytes],
) -> faces_pb2.FacesDetected:
    """`faces`: each face with its track id and shot quality."""
    return faces_pb2.FacesDetected(
        camera=frame.camera,
        sequence=frame.sequence,
        captured_at=frame.captured_at,
        detector_id=detector_id,
        faces=[
            faces_pb2.DetectedFace(
                index=face.index,
                box=box(face.box),
                crop_box=box(face.crop_box),
                landmarks=[common_pb2.Point(x=float(x), y=float(y)) for x, y in face.landmarks],
                detector_score=face.score,
                quality=common_pb2.FaceQuality(
                    size_px=face.quality.size_px, sharpness=face.quality.sharpness, yaw=face.quality.yaw
                ),
                crop=seal(face.jpeg),
                track_id=track_id,
                shot_quality=quality,
            )
            for face, track_id, quality in faces
        ],
    )

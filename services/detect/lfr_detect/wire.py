"""FrameCaptured in, FacesDetected out: protobuf <-> domain."""

from __future__ import annotations

from collections.abc import Callable

from lfr.v1 import common_pb2, faces_pb2, frames_pb2
from lfr_detect.detection import DISABLED, NO_ROOM
from lfr_faces.crops import FaceCrop
from lfr_faces.scenes import FACE_NOT_FOUND, NoScene, Scene

_NO_SCENE = {
    FACE_NOT_FOUND: common_pb2.SCENE_STATUS_FACE_NOT_FOUND,
    NO_ROOM: common_pb2.SCENE_STATUS_NO_ROOM,
    DISABLED: common_pb2.SCENE_STATUS_DISABLED,
}


def box(values: tuple[float, float, float, float]) -> common_pb2.BoundingBox:
    x, y, w, h = values
    return common_pb2.BoundingBox(x=x, y=y, width=w, height=h)


def scene_image(scene: Scene | NoScene, seal: Callable[[bytes], bytes]) -> common_pb2.SceneImage:
    if isinstance(scene, NoScene):
        return common_pb2.SceneImage(status=_NO_SCENE[scene.reason])
    return common_pb2.SceneImage(
        status=common_pb2.SCENE_STATUS_COMPOSED,
        image=seal(scene.jpeg),
        region=box(scene.region),
        face=box(scene.face),
        faces_blurred=scene.blurred,
    )


def faces_detected(
    frame: frames_pb2.FrameCaptured,
    detector_id: str,
    faces: list[tuple[FaceCrop, str, float]],
    seal: Callable[[bytes], bytes],
    scenes: list[Scene | NoScene] | None = None,
) -> faces_pb2.FacesDetected:
    """`faces`: each face with its track id and shot quality; `scenes`: each one's scene (None: none made)."""
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
                scene=scene_image(scene, seal) if scene is not None else None,
            )
            for (face, track_id, quality), scene in zip(faces, scenes or [None] * len(faces), strict=True)
        ],
    )

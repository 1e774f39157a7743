"""FacesDetected in, FacesEmbedded out: protobuf <-> domain."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lfr.v1 import embeddings_pb2, faces_pb2
from lfr_embed.embedding import FaceToEmbed


def faces_to_embed(message: faces_pb2.FacesDetected, unseal: Callable[[bytes], bytes]) -> list[FaceToEmbed]:
    faces = []
    for face in message.faces:
        if len(face.landmarks) != 5:
            raise ValueError(f"face {face.index} has {len(face.landmarks)} landmarks, 5 expected")
        landmarks = np.array([[p.x, p.y] for p in face.landmarks], dtype=np.float32)
        faces.append(FaceToEmbed(unseal(face.crop), landmarks))
    return faces


def faces_embedded(
    message: faces_pb2.FacesDetected, model_id: str, vectors: np.ndarray, seal: Callable[[bytes], bytes]
) -> embeddings_pb2.FacesEmbedded:
    return embeddings_pb2.FacesEmbedded(
        camera=message.camera,
        sequence=message.sequence,
        captured_at=message.captured_at,
        model_id=model_id,
        dimension=int(vectors.shape[1]),
        faces=[
            embeddings_pb2.EmbeddedFace(
                index=face.index,
                box=face.box,
                detector_score=face.detector_score,
                quality=face.quality,
                embedding=seal(vector.astype("<f4").tobytes()),
                # Passed through as sealed by detect: same deployment, same key.
                crop=face.crop,
                track_id=face.track_id,
                shot_quality=face.shot_quality,
                # The scene too: its image stays as detect sealed it, for alert should the face match.
                scene=face.scene,
            )
            for face, vector in zip(message.faces, vectors, strict=True)
        ],
    )

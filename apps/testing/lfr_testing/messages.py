"""Pipeline messages as the stages produce them, for tests that feed a stage directly."""

from __future__ import annotations

import time

from lfr.v1 import common_pb2, embeddings_pb2, matches_pb2
from lfr_contracts import camera_key
from lfr_platform import sealing


def match_record(
    deployment_id: str,
    camera_id: str,
    subject: str,
    sequence: int,
    score: float,
    captured_at: float | None = None,
    entry_id: str = "entry-1",
    track_id: str = "",
    *,
    key: bytes | None = None,
    runner_up: str = "",
    runner_up_score: float = 0.0,
) -> tuple[bytes, bytes]:
    """(key, value) of a MatchFound as match publishes it, signed with the deployment's data key `key`
    (unsigned without: alert refuses it); its probe crop is b"crop-<sequence>", sealed with `key`;
    `runner_up`: the best other subject, scoring `runner_up_score` (none by default)."""
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id=camera_id)
    crop = f"crop-{sequence}".encode()
    message = matches_pb2.MatchFound(
        match_id=f"{deployment_id}/van-1/{camera_id}/{sequence}/0",
        camera=camera,
        sequence=sequence,
        subject_id=subject,
        category="wanted",
        score=score,
        threshold=0.69,
        model_id="sface-2021dec",
        candidates=[matches_pb2.Candidate(subject_id=subject, category="wanted", score=score, entry_id=entry_id)],
        probe_crop=crop if key is None else sealing.seal(key, crop, deployment_id),
        track_id=track_id,
        shots=1,
        runner_up_subject_id=runner_up,
        runner_up_score=runner_up_score,
    )
    message.captured_at.FromNanoseconds(int((captured_at or time.time()) * 1e9))
    if key is not None:
        sealing.sign_message(key, message, "match")
    return camera_key(camera), message.SerializeToString()


def faces_embedded_record(
    camera: common_pb2.CameraRef,
    sequence: int,
    key: bytes,
    crop,
    vector,
    *,
    model_id: str = "sface-2021dec",
    track_id: str = "",
    shot_quality: float = 0.0,
) -> tuple[bytes, bytes]:
    """A faces.embedded.v1 record of one face (a detected `crop` and its `vector`), sealed with the
    deployment's data key as embed seals them, captured now."""
    out = embeddings_pb2.FacesEmbedded(camera=camera, sequence=sequence, model_id=model_id, dimension=len(vector))
    out.captured_at.GetCurrentTime()
    out.faces.add(
        index=0,
        detector_score=crop.score,
        embedding=sealing.seal(key, vector.astype("<f4").tobytes(), camera.deployment_id),
        crop=sealing.seal(key, crop.jpeg, camera.deployment_id),
        track_id=track_id,
        shot_quality=shot_quality,
    )
    return camera_key(camera), out.SerializeToString()

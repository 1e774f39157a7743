"""FacesEmbedded in, MatchFound out: protobuf <-> domain."""

from __future__ import annotations

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import embeddings_pb2, matches_pb2
from lfr_watchlist.decision import Decision


def vector(data: bytes, dimension: int) -> np.ndarray:
    values = np.frombuffer(data, dtype="<f4")
    if values.size != dimension:
        raise ValueError(f"vector has {values.size} values, {dimension} expected")
    if not np.all(np.isfinite(values)):
        raise ValueError("vector has non-finite values")
    return values


def match_id(message: embeddings_pb2.FacesEmbedded, face: embeddings_pb2.EmbeddedFace) -> str:
    """The frame's capture time is part of the id: ingest's sequence starts again at 0 when it
    restarts, and a restarted camera's matches must not pass for replays of the last run's
    (STYLE 20). The same record processed again gets the same id, so replay detection stays exact."""
    c = message.camera
    captured_ns = message.captured_at.ToNanoseconds()
    return f"{c.deployment_id}/{c.van_id}/{c.camera_id}/{captured_ns}/{message.sequence}/{face.index}"


def match_found(
    message: embeddings_pb2.FacesEmbedded,
    face: embeddings_pb2.EmbeddedFace,
    decision: Decision,
    threshold: float,
    probe_crop: bytes,
    shots: int = 1,
) -> matches_pb2.MatchFound:
    matched_at = Timestamp()
    matched_at.GetCurrentTime()
    best = decision.candidates[0]
    runner_up = decision.runner_up
    return matches_pb2.MatchFound(
        match_id=match_id(message, face),
        camera=message.camera,
        sequence=message.sequence,
        face_index=face.index,
        captured_at=message.captured_at,
        matched_at=matched_at,
        subject_id=best.subject_id,
        category=best.category,
        score=best.score,
        threshold=threshold,
        model_id=message.model_id,
        candidates=[
            matches_pb2.Candidate(subject_id=h.subject_id, category=h.category, score=h.score, entry_id=h.entry_id)
            for h in decision.candidates
        ],
        box=face.box,
        probe_crop=probe_crop,
        track_id=face.track_id,
        shots=shots,
        runner_up_subject_id=runner_up.subject_id if runner_up is not None else "",
        runner_up_score=runner_up.score if runner_up is not None else 0.0,
        # The scene of a matched face only (as detect sealed it): a face that does not match goes no further.
        scene=face.scene,
    )

"""MatchFound in, AlertRaised out: protobuf <-> domain."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import alerts_pb2, matches_pb2
from lfr_alert.alerting import AlertState, MatchToFold
from lfr_contracts import camera_key


def match_to_fold(match: matches_pb2.MatchFound) -> MatchToFold:
    return MatchToFold(
        deployment_id=match.camera.deployment_id,
        camera=camera_key(match.camera).decode(),
        subject_id=match.subject_id,
        match_id=match.match_id,
        score=match.score,
        captured_at=match.captured_at.ToNanoseconds() / 1e9,
        probe_crop=match.probe_crop,
    )


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def alert_raised(match: matches_pb2.MatchFound, state: AlertState) -> alerts_pb2.AlertRaised:
    return alerts_pb2.AlertRaised(
        alert_id=state.alert_id,
        revision=state.revision,
        camera=match.camera,
        subject_id=match.subject_id,
        category=match.category,
        score=state.best_score,
        threshold=match.threshold,
        match_count=state.match_count,
        captured_at=timestamp(state.first_captured_at),
        raised_at=timestamp(state.raised_at),
        last_seen_at=timestamp(state.last_seen_at),
        updated_at=timestamp(state.updated_at),
        model_id=match.model_id,
        best_match_id=state.best_match_id,
        probe_crop=state.best_crop,
    )

"""MatchFound in; AlertRaised, AlertAdjudicated and the AlertService's messages out: protobuf <-> domain."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import alerts_pb2 as pb
from lfr.v1 import common_pb2, matches_pb2
from lfr_alert.adjudication import ADJUDICATION, ENGAGEMENT, OUTCOME, Change
from lfr_alert.alerting import STATES, Alert, Decision, MatchToFold, hold_reason

STATE = {name: pb.AlertState.Value(f"ALERT_STATE_{name.upper()}") for name in STATES}
STATE_NAME = {v: k for k, v in STATE.items()}
OUTCOME_VALUE = {
    "true": pb.ADJUDICATION_OUTCOME_TRUE,
    "false": pb.ADJUDICATION_OUTCOME_FALSE,
    "undetermined": pb.ADJUDICATION_OUTCOME_UNDETERMINED,
}
OUTCOME_NAME = {v: k for k, v in OUTCOME_VALUE.items()}
FINAL_VALUE = {
    "arrest": pb.FINAL_OUTCOME_ARREST,
    "no_further_action": pb.FINAL_OUTCOME_NO_FURTHER_ACTION,
    "safeguarding": pb.FINAL_OUTCOME_SAFEGUARDING,
    "other": pb.FINAL_OUTCOME_OTHER,
}
FINAL_NAME = {v: k for k, v in FINAL_VALUE.items()}


def match_to_fold(match: matches_pb2.MatchFound, sealed_crop: bytes, min_margin: float = 0.0) -> MatchToFold:
    """`min_margin`: the deployment's (0: no alert is held for a supervisor)."""
    best = match.candidates[0] if match.candidates else None
    return MatchToFold(
        deployment_id=match.camera.deployment_id,
        van_id=match.camera.van_id,
        camera_id=match.camera.camera_id,
        subject_id=match.subject_id,
        category=match.category,
        match_id=match.match_id,
        entry_id=best.entry_id if best is not None and best.subject_id == match.subject_id else "",
        score=match.score,
        threshold=match.threshold,
        model_id=match.model_id,
        captured_at=match.captured_at.ToNanoseconds() / 1e9,
        sealed_crop=sealed_crop,
        track_id=match.track_id,
        runner_up_subject_id=match.runner_up_subject_id,
        runner_up_score=match.runner_up_score if match.runner_up_subject_id else 0.0,
        hold_reason=hold_reason(match.score, match.runner_up_subject_id, match.runner_up_score, min_margin),
        scene=match.scene.SerializeToString(deterministic=True) if match.HasField("scene") else b"",
    )


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def camera(alert: Alert) -> common_pb2.CameraRef:
    return common_pb2.CameraRef(deployment_id=alert.deployment_id, van_id=alert.van_id, camera_id=alert.camera_id)


def _decision(d: Decision | None) -> pb.Decision | None:
    if d is None:
        return None
    return pb.Decision(
        officer=d.officer,
        recorded_by=d.recorded_by,
        role=d.role,
        decided_at=timestamp(d.at),
        note=d.note,
        correction_reason=d.correction_reason,
    )


def _steps(alert: Alert) -> dict:
    steps = {}
    if alert.outcome:
        steps["adjudication"] = pb.Adjudication(
            outcome=OUTCOME_VALUE[alert.outcome],
            decision=_decision(alert.adjudication),
            perceived_sex=alert.perceived_sex,
            perceived_ethnicity=alert.perceived_ethnicity,
        )
    if alert.engaged is not None:
        steps["engagement"] = pb.Engagement(engaged=alert.engaged, decision=_decision(alert.engagement))
    if alert.final_outcome:
        steps["resolution"] = pb.Resolution(
            outcome=FINAL_VALUE[alert.final_outcome], detail=alert.final_detail, decision=_decision(alert.resolution)
        )
    return steps


def alert_raised(alert: Alert, probe_crop: bytes = b"") -> pb.AlertRaised:
    return pb.AlertRaised(
        alert_id=alert.alert_id,
        revision=alert.revision,
        camera=camera(alert),
        subject_id=alert.subject_id,
        category=alert.category,
        score=alert.score,
        threshold=alert.threshold,
        match_count=alert.match_count,
        captured_at=timestamp(alert.first_captured_at),
        raised_at=timestamp(alert.raised_at),
        last_seen_at=timestamp(alert.last_seen_at),
        updated_at=timestamp(alert.updated_at),
        model_id=alert.model_id,
        best_match_id=alert.best_match_id,
        probe_crop=probe_crop,
        entry_id=alert.entry_id,
        track_id=alert.track_id,
        state=STATE[alert.state],
        runner_up_subject_id=alert.runner_up_subject_id,
        runner_up_score=alert.runner_up_score,
        margin=alert.margin,
        held_for_supervisor=alert.held,
        hold_reason=alert.hold_reason,
        **_steps(alert),
    )


def alert_adjudicated(change: Change, step: str, event_id: str) -> pb.AlertAdjudicated:
    alert = change.alert
    return pb.AlertAdjudicated(
        event_id=event_id,
        alert_id=alert.alert_id,
        camera=camera(alert),
        subject_id=alert.subject_id,
        step=step,
        state=STATE[alert.state],
        correction=change.correction,
        revision=alert.revision,
        held_for_supervisor=alert.held,
        hold_reason=alert.hold_reason,
        **_steps(alert),
    )


def step_value(alert: Alert, step: str) -> str:
    return {
        ADJUDICATION: alert.outcome,
        ENGAGEMENT: "" if alert.engaged is None else ("engaged" if alert.engaged else "not_engaged"),
        OUTCOME: alert.final_outcome,
    }[step]

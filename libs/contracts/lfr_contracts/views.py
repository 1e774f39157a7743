"""JSON views of contract messages, as the `lfr` command, the demo and the console show them.

An alert's view leaves out its probe crop: biometric images never go to stdout, logs or JSON feeds
(the console serves them by URL, to a signed-in user, while the deployment lives).
"""

from __future__ import annotations

from datetime import UTC, datetime

from lfr.v1 import alerts_pb2


def _iso(ts) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return datetime.fromtimestamp(ts.ToNanoseconds() / 1e9, UTC).isoformat(timespec="milliseconds")


def _name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower() if value else ""


def _decision(step) -> dict | None:
    if not step.HasField("decision"):
        return None
    d = step.decision
    return {
        "officer": d.officer,
        "recorded_by": d.recorded_by,
        "role": d.role,
        "decided_at": _iso(d.decided_at),
        "note": d.note,
        "correction_reason": d.correction_reason,
    }


def alert_json(alert: alerts_pb2.AlertRaised) -> dict:
    """The alert without its probe crop: biometric images do not go to stdout or logs."""
    pb = alerts_pb2
    return {
        "alert_id": alert.alert_id,
        "revision": alert.revision,
        "deployment_id": alert.camera.deployment_id,
        "van_id": alert.camera.van_id,
        "camera_id": alert.camera.camera_id,
        "subject_id": alert.subject_id,
        "category": alert.category,
        "score": round(alert.score, 4),
        "threshold": round(alert.threshold, 4),
        "match_count": alert.match_count,
        "state": _name(pb.AlertState, alert.state, "ALERT_STATE_"),
        "outcome": _name(pb.AdjudicationOutcome, alert.adjudication.outcome, "ADJUDICATION_OUTCOME_"),
        "engaged": alert.engagement.engaged if alert.HasField("engagement") else None,
        "final_outcome": _name(pb.FinalOutcome, alert.resolution.outcome, "FINAL_OUTCOME_"),
        "final_detail": alert.resolution.detail,
        "captured_at": _iso(alert.captured_at),
        "raised_at": _iso(alert.raised_at),
        "last_seen_at": _iso(alert.last_seen_at),
        "updated_at": _iso(alert.updated_at),
        "latency_s": round((alert.raised_at.ToNanoseconds() - alert.captured_at.ToNanoseconds()) / 1e9, 3),
        "adjudication": _decision(alert.adjudication),
        # How the adjudicating officer perceived the person ("": not recorded): the policy's lists.
        "perceived_sex": alert.adjudication.perceived_sex,
        "perceived_ethnicity": alert.adjudication.perceived_ethnicity,
        "engagement": _decision(alert.engagement),
        "resolution": _decision(alert.resolution),
        "model_id": alert.model_id,
        "track_id": alert.track_id,
        # The best other subject for the alert's best match, and by how much the match beat it (None:
        # no other subject on the watchlist); a close one holds the alert for a supervisor.
        "runner_up_subject_id": alert.runner_up_subject_id,
        "runner_up_score": round(alert.runner_up_score, 4) if alert.runner_up_subject_id else None,
        "margin": round(alert.margin, 4) if alert.HasField("margin") else None,
        "held_for_supervisor": alert.held_for_supervisor,
        "hold_reason": alert.hold_reason,
    }

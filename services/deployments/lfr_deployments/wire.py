"""Deployment records <-> the DeploymentService's protobuf messages."""

from __future__ import annotations

import dataclasses

from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments import report as reports
from lfr_deployments.prediction import Prediction
from lfr_deployments.report import EquityFigures, Outcomes, Report
from lfr_platform.deployment_record import DeploymentRecord
from lfr_platform.rates import Rate

STATES = {
    "planned": pb.DEPLOYMENT_STATE_PLANNED,
    "active": pb.DEPLOYMENT_STATE_ACTIVE,
    "closed": pb.DEPLOYMENT_STATE_CLOSED,
    "expired": pb.DEPLOYMENT_STATE_EXPIRED,
    "lost": pb.DEPLOYMENT_STATE_LOST,
}

REASONS = {
    "invalid_item": pb.REJECTION_REASON_INVALID_ITEM,
    "not_an_image": pb.REJECTION_REASON_NOT_AN_IMAGE,
    "undecodable": pb.REJECTION_REASON_UNDECODABLE,
    "too_large": pb.REJECTION_REASON_TOO_LARGE,
    "no_face": pb.REJECTION_REASON_NO_FACE,
    "multiple_faces": pb.REJECTION_REASON_MULTIPLE_FACES,
    "face_too_small": pb.REJECTION_REASON_FACE_TOO_SMALL,
    "too_blurred": pb.REJECTION_REASON_TOO_BLURRED,
    "pose_not_frontal": pb.REJECTION_REASON_POSE_NOT_FRONTAL,
    "duplicate": pb.REJECTION_REASON_DUPLICATE,
    "subject_mismatch": pb.REJECTION_REASON_SUBJECT_MISMATCH,
    "image_too_old": pb.REJECTION_REASON_IMAGE_TOO_OLD,
    "image_too_complex": pb.REJECTION_REASON_IMAGE_TOO_COMPLEX,
}


def timestamp(seconds: float | str | None) -> Timestamp | None:
    if seconds in (None, ""):
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(float(seconds) * 1e9))
    return ts


def seconds(ts: Timestamp) -> float | None:
    return ts.ToNanoseconds() / 1e9 if ts.seconds or ts.nanos else None


def deployment(record: DeploymentRecord) -> pb.Deployment:
    message = pb.Deployment(
        deployment_id=record.deployment_id,
        name=record.name,
        purpose=record.purpose,
        authorising_officer=record.authorising_officer,
        location=record.location,
        cameras=[pb.CameraCoverage(van_id=c.van_id, camera_id=c.camera_id) for c in record.cameras],
        state=STATES.get(record.state, pb.DEPLOYMENT_STATE_UNSPECIFIED),
        threshold=record.threshold or 0.0,
        threshold_floor=record.threshold_floor or 0.0,
        threshold_override_reason=record.threshold_override_reason,
        model_id=record.model_id,
        watchlist_size_limit=record.watchlist_size_limit,
        enrolled_images=record.enrolled_images,
        enrolled_subjects=record.enrolled_subjects,
        rejected_images=record.rejected_images,
        created_by=record.created_by,
        closed_by=record.closed_by,
        alert_public_key=record.alert_public_key,
        where=record.where,
        urgent=record.urgent,
        ratified_by=record.ratified_by,
        close_reason=record.close_reason,
        reviewed_by=record.reviewed_by,
        reviewed_images=record.reviewed_images,
    )
    if record.perceived_groups is not None:
        message.perceived_groups.CopyFrom(pb.PerceivedGroups(**record.perceived_groups))
    predicted = reports.predicted(record)
    if predicted is not None:
        message.predicted_false_alerts.CopyFrom(prediction(predicted))
    if record.operating_point is not None:
        message.operating_point.CopyFrom(operating_point(record.operating_point))
    for target, seconds_at in (
        (message.planned_start, record.planned_start),
        (message.planned_end, record.planned_end),
        (message.created_at, record.created_at),
        (message.closed_at, record.closed_at),
        (message.ratified_at, record.ratified_at),
        (message.reviewed_at, record.reviewed_at),
    ):
        ts = timestamp(seconds_at)
        if ts is not None:
            target.CopyFrom(ts)
    if message.urgent:
        message.ratify_by.CopyFrom(timestamp(record.ratify_by))
    if record.deletion is not None:
        report = record.deletion
        message.deletion.CopyFrom(
            pb.DeletionReport(
                watchlist_points_deleted=int(report["watchlist_points_deleted"]),
                collection_dropped=bool(report["collection_dropped"]),
                redis_keys_deleted=int(report["redis_keys_deleted"]),
                data_key_destroyed=bool(report["data_key_destroyed"]),
                deleted_at=timestamp(report["deleted_at"]),
                reference_images_deleted=int(report.get("reference_images_deleted", 0)),
                replica_copies_deleted=[
                    pb.ReplicaCopyDeleted(
                        replica=replica,
                        entries=int(copy["entries"]),
                        deleted_at=timestamp(copy["deleted_at"]),
                        reason=copy.get("reason", ""),
                    )
                    for replica, copy in sorted(report.get("replica_copies_deleted", {}).items())
                ],
                replica_copies_pending=report.get("replica_copies_pending", []),
            )
        )
    return message


def prediction(p: Prediction) -> pb.FalseAlertPrediction:
    low, high = p.expected_interval
    return pb.FalseAlertPrediction(
        watchlist_size=p.watchlist_size,
        per_face=p.per_face,
        per_face_lower_95=p.per_face_lower_95,
        per_face_upper_95=p.per_face_upper_95,
        expected_faces=p.expected_faces,
        expected=p.expected,
        expected_lower_95=low,
        expected_upper_95=high,
        fmr_pairs=p.fmr_pairs,
        override_reason=p.override_reason,
    )


def _recall(rate: dict | None) -> pb.RateEstimate | None:
    if rate is None:
        return None
    k, n = int(rate["k"]), int(rate["n"])
    return pb.RateEstimate(count=k, total=n, rate=k / n if n else 0.0, lower_95=rate["low"], upper_95=rate["high"])


def operating_point(made: dict) -> pb.OperatingPoint:
    """The record's operating point (lfr_deployments.operating) as the message."""
    return pb.OperatingPoint(
        entries=int(made["entries"]),
        budget=float(made["budget"]),
        derived_threshold=made["threshold"],
        bound_by=made["bound_by"],
        group=made["group"],
        predicted_fpir_upper=made["predicted_fpir_upper"] or 0.0,
        per_pass_ratio_upper=made["per_pass_ratio_upper"],
        curve_version=made["curve_version"],
        equitability_floor=made["equitability_floor"],
        model_min=made["model_min"],
        model_max=made["model_max"],
        largest_list=min(int(made["largest_list"]), 2**32 - 1),
        predicted_recall=_recall(made.get("recall")),
        predicted_recall_single_shot=_recall(made.get("recall_single_shot")),
        threshold_source=made.get("threshold_source", ""),
        tradeoff=[
            pb.Tradeoff(
                entries=int(row["entries"]),
                threshold=row["threshold"],
                predicted_fpir_upper=row["predicted_fpir_upper"] or 0.0,
                predicted_recall=_recall(row.get("recall")),
                group=row["group"],
            )
            for row in made.get("tradeoff", [])
        ],
    )


def _rate(rate: Rate) -> pb.RateEstimate:
    return pb.RateEstimate(count=rate.k, total=rate.n, rate=rate.value or 0.0, lower_95=rate.low, upper_95=rate.high)


def _outcomes(outcomes: Outcomes) -> pb.AlertOutcomes:
    return pb.AlertOutcomes(**dataclasses.asdict(outcomes))


def report(r: Report) -> pb.DeploymentReport:
    return pb.DeploymentReport(
        deployment_id=r.deployment_id,
        name=r.name,
        purpose=r.purpose,
        authorising_officer=r.authorising_officer,
        location=r.location,
        where=r.where,
        authorisation=r.authorisation,
        close_reason=r.close_reason,
        state=STATES.get(r.state, pb.DEPLOYMENT_STATE_UNSPECIFIED),
        start=timestamp(r.start),
        end=timestamp(r.end),
        threshold=r.threshold,
        threshold_floor=r.threshold_floor,
        threshold_override_reason=r.threshold_override_reason,
        model_id=r.model_id,
        watchlist_images=r.watchlist_images,
        watchlist_subjects=r.watchlist_subjects,
        faces_scanned=r.figures.faces_scanned,
        outcomes=_outcomes(r.figures.outcomes),
        false_alerts_per_face_scanned=_rate(r.figures.false_alerts_per_face_scanned),
        false_alerts_per_alert=_rate(r.figures.false_alerts_per_alert),
        vans=[
            pb.VanReport(
                van_id=van,
                faces_scanned=f.faces_scanned,
                outcomes=_outcomes(f.outcomes),
                false_alerts_per_face_scanned=_rate(f.false_alerts_per_face_scanned),
                false_alerts_per_alert=_rate(f.false_alerts_per_alert),
            )
            for van, f in r.vans.items()
        ],
        generated_at=timestamp(r.generated_at),
        predicted_false_alerts=prediction(r.predicted) if r.predicted is not None else None,
        watchlist_categories=r.watchlist_categories,
        equity=_equity(r.equity) if r.equity is not None else None,
        operating_point=operating_point(r.operating_point) if r.operating_point is not None else None,
    )


def _equity(e: EquityFigures) -> pb.EquityReport:
    return pb.EquityReport(
        groups=[
            pb.PerceivedGroupFigures(
                dimension=g.dimension,
                group=g.group,
                true_alerts=g.true_alerts,
                false_alerts=g.false_alerts,
                reference_share=g.reference_share,
                p_value=g.p_value,
                disparity=g.disparity,
            )
            for g in e.groups
        ],
        false_alerts_tested=e.false_alerts_tested,
        p_value_limit=e.p_value_limit,
        min_false_alerts=e.min_false_alerts,
    )


def manifest_entry(row: dict) -> pb.ManifestEntry:
    return pb.ManifestEntry(
        entry_id=row["entry_id"],
        subject_id=row.get("subject_id", ""),
        category=row.get("category", ""),
        source_reference=row.get("source_reference", ""),
        approved_by=row.get("approved_by", ""),
        enrolled_at=timestamp(row.get("enrolled_at")),
        image_source=row.get("image_source", ""),
        legal_basis=row.get("legal_basis", ""),
        image_date=row.get("image_date", ""),
        minor=bool(row.get("minor")),
    )


def listing(record: DeploymentRecord, rows: list[dict]) -> pb.Listing:
    return pb.Listing(
        deployment_id=record.deployment_id,
        name=record.name,
        location=record.location,
        where=record.where,
        state=STATES.get(record.state, pb.DEPLOYMENT_STATE_UNSPECIFIED),
        start=timestamp(record.planned_start),
        end=timestamp(record.closed_at or record.planned_end),
        entries=[manifest_entry(r) for r in rows],
    )

"""What may be done to a deployment once it exists, decided on its record: ratify it, review its
watchlist, enrol into it, read its manifest, close it. Pure functions, free of I/O: each returns what
to do, or raises `Refused` (lfr_deployments.lifecycle) with the reason and a message that says why.
The servicer answers a refusal with its gRPC status, and audits those of an officer's act
(`deployment.ratification_refused`, `watchlist.review_refused`, `watchlist.enrol_refused`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from lfr_deployments import prediction
from lfr_deployments.lifecycle import (
    DERIVED,
    FULL,
    INVALID,
    NOT_FOUND,
    OVERRIDDEN,
    PERMISSION,
    PRECONDITION,
    InvalidRequest,
    Refused,
    Threshold,
    ThresholdPolicy,
    same_name,
)
from lfr_deployments.prediction import Prediction
from lfr_deployments.report import predicted as predicted_for
from lfr_platform.deployment_record import CLOSED, EXPIRED, OPEN, DeploymentRecord

# Officers' names go into the record and the audit trail (kept forever).
OFFICER_LIMIT = 200
# The largest list `lfr deployment plan` is asked about (the largest size limit is far below it).
MAX_PLANNED_ENTRIES = 10_000_000


class DeploymentNotFound(Refused, LookupError):
    def __init__(self, deployment_id: str) -> None:
        super().__init__(NOT_FOUND, f"no deployment {deployment_id!r}")


def _officer(officer: str, who: str) -> None:
    if not officer or len(officer) > OFFICER_LIMIT or not officer.isprintable():
        raise Refused(INVALID, f"officer is required: {who}")


def ratify(record: DeploymentRecord, officer: str, caller: str, now: float) -> bool:
    """Whether `officer`'s written ratification of an urgent deployment, asked by the token `caller`,
    is to be recorded: False for the same officer's again (answered as it stands)."""
    deployment_id = record.deployment_id
    _officer(officer, "the officer who ratifies in writing")
    if not record.urgent:
        raise Refused(
            PRECONDITION, f"deployment {deployment_id} was not authorised as urgent: there is nothing to ratify"
        )
    if record.ratified_by:
        if record.ratified_by == officer:
            return False
        raise Refused(PRECONDITION, f"deployment {deployment_id} was ratified by {record.ratified_by} already")
    if record.status != OPEN:
        raise Refused(
            PRECONDITION, f"deployment {deployment_id} is {record.state}: too late to ratify ({record.close_reason})"
        )
    creator = record.created_by
    if creator and caller == creator:
        # On the caller's token identity, not on the names typed: "Supt A Example" and
        # "Supt. A. Example" are one person, whose token is one principal.
        raise Refused(
            PERMISSION,
            f"{caller} created deployment {deployment_id}: it must be ratified by another "
            "principal (a different token holder), whatever officer name is given",
        )
    if same_name(officer, record.authorising_officer):
        raise Refused(
            INVALID,
            f"{officer} authorised this deployment: another officer must ratify it"
            + (
                ""
                if creator
                else " (its record, made before creators were recorded, names no creating principal: "
                "only the officers' names could be compared)"
            ),
        )
    if now > record.ratify_by:
        deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.ratify_by))
        raise Refused(PRECONDITION, f"deployment {deployment_id} had to be ratified by {deadline}: it is being closed")
    return True


def review(record: DeploymentRecord, officer: str) -> int:
    """The images of the watchlist `officer` reviews, if it may be reviewed."""
    _officer(officer, "who reviewed the watchlist")
    if record.status != OPEN:
        raise Refused(PRECONDITION, f"deployment {record.deployment_id} is {record.state}")
    if not record.enrolled_images:
        raise Refused(PRECONDITION, f"the watchlist of {record.deployment_id} is empty: enrol it, then review it")
    if record.threshold is None:
        raise Refused(PRECONDITION, f"the record of {record.deployment_id} holds no threshold to review")
    return record.enrolled_images


def closed_meanwhile(deployment_id: str) -> Refused:
    return Refused(PRECONDITION, f"deployment {deployment_id} was closed")


def review_threshold(policy: ThresholdPolicy, record: DeploymentRecord, entries: int) -> Threshold:
    """The threshold for the list as reviewed (`entries`: images and templates): derived again, a
    force's higher choice or an audited override kept (ThresholdPolicy.at_review). Raises ListTooLarge."""
    made = record.operating_point or {}
    source = made.get("threshold_source") or (OVERRIDDEN if record.threshold_override_reason else DERIVED)
    return policy.at_review(record.threshold, source, entries)


def review_prediction(
    policy: ThresholdPolicy, record: DeploymentRecord, threshold: Threshold, entries: int
) -> Prediction:
    """The false alerts predicted for the list as reviewed, for the faces expected at create; an
    override of the per-deployment limit given at create is kept."""
    before = predicted_for(record)
    made = prediction.predict(policy.calibration, threshold.value, entries, before.expected_faces if before else 0)
    if before is not None and before.override_reason:
        made = dataclasses.replace(made, override_reason=before.override_reason)
    return made


def override_reason(record: DeploymentRecord, threshold: Threshold) -> str:
    """The reason audited with a threshold kept below the derived one."""
    return record.threshold_override_reason if threshold.source == OVERRIDDEN else ""


def enrolment_open(record: DeploymentRecord) -> None:
    if record.status != OPEN:
        raise Refused(PRECONDITION, f"deployment {record.deployment_id} is {record.state}")


def enrolment_window(record: DeploymentRecord, now: float, compile_before_start_h: float) -> None:
    """A watchlist holds current intelligence: it is enrolled at most the policy's hours before its
    deployment's window opens."""
    start = record.planned_start or 0.0
    earliest = start - compile_before_start_h * 3600
    if now < earliest:
        raise Refused(
            PRECONDITION,
            f"the watchlist of {record.deployment_id} may be enrolled from {_utc(earliest)}, "
            f"{compile_before_start_h:g} h before its window opens at {_utc(start)} "
            "(the policy's compile_before_start_h: a watchlist holds current intelligence); nothing was enrolled",
        )


def room_for(expected: int, count: int, limit: int) -> None:
    """A stream announcing `expected` images is refused whole when they would not fit."""
    if expected and count + expected > limit:
        raise Refused(
            FULL,
            f"{expected} images would take the watchlist to {count + expected}, over its limit of {limit}; "
            "nothing was enrolled",
        )


def room_for_one(count: int, limit: int, client_ref: str) -> None:
    if count >= limit:
        raise Refused(FULL, f"the watchlist is full ({limit} images); {client_ref} was not enrolled")


def manifest_kept_until(record: DeploymentRecord, rows: int, now: float, retention_days: float) -> float | None:
    """Until when the ids-only manifest is kept (None while the deployment is open); NOT_FOUND once
    it was deleted."""
    kept_until = record.closed_at + retention_days * 86400 if record.closed_at else None
    if kept_until is not None and (now > kept_until or (not rows and record.enrolled_images)):
        raise Refused(
            NOT_FOUND,
            f"the manifest of {record.deployment_id} was deleted: manifests are kept "
            f"{retention_days:g} days after close (the policy's manifest_retention_days)",
        )
    return kept_until


def planned_entries(entries: int) -> int:
    if not 0 < entries <= MAX_PLANNED_ENTRIES:
        raise InvalidRequest(
            f"entries must be 1 to {MAX_PLANNED_ENTRIES:,}: the watchlist entries planned (images and templates)"
        )
    return entries


# What a close does with a deployment, by its record.
CLOSE, FINISH, DONE = "close", "finish", "done"


def close_step(deployment_id: str, record: DeploymentRecord | None) -> str:
    """CLOSE an open deployment; FINISH the deletion of a closed one a crash interrupted; DONE: it was
    closed and erased already (a repeated close answers as it stands)."""
    if record is None:
        raise DeploymentNotFound(deployment_id)
    if record.status in (CLOSED, EXPIRED):
        return DONE if record.deletion is not None else FINISH
    return CLOSE


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

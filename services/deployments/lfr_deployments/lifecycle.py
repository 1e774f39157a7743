"""Rules of the deployment lifecycle, free of I/O: what a valid deployment is, and which
thresholds may be used.

Threshold governance: every model has a calibrated floor (docs/evaluation.md). A threshold below it
is refused unless the request says why, and that reason goes into the audit trail. The National
Physical Laboratory's 2023 study of the Met's system found false alerts rising below its default
threshold and falling disproportionately on Black people; the floor makes such a choice deliberate
and accountable rather than a typo.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

from lfr_deployments import prediction
from lfr_deployments.policy import DeploymentPolicy
from lfr_platform.equity import EquityPolicy
from lfr_watchlist.templates import most_entries

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Free-text fields go into Redis, every audit event (kept forever) and the published report: each
# has a length limit, and only printable characters (no control characters, no line breaks).
TEXT_LIMITS = {
    "name": 200,
    "purpose": 1000,
    "authorising_officer": 200,
    "location": 500,
    "threshold_override_reason": 1000,
    "false_alert_override_reason": 1000,
}
MAX_CAMERAS = 256
# A deployment may be planned this far ahead at most.
MAX_LEAD_DAYS = 90
# A planned start this far before now is taken as "now" (a client's clock a little behind); more is refused.
PAST_START_S = 300
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")


class InvalidRequest(ValueError):
    """The request itself is wrong; the message says what to change."""


@dataclass(frozen=True)
class ThresholdPolicy:
    model_id: str
    default: float
    floor: float
    # Two enrolment photos of one subject that score below this are taken for two people (at most 1 in
    # 100 pairs of different people score above it, by the model's calibration); None: not checked.
    same_subject_min: float | None = None
    # The calibration's false match rate curve: (threshold, impostor pairs at or above, pairs).
    fmr_curve: tuple[tuple[float, int, int], ...] = ()

    def resolve(self, requested: float | None, override_reason: str) -> tuple[float, bool]:
        """(threshold, overridden). Refuses below the floor without a reason."""
        if requested is None:
            return self.default, False
        if not 0.0 < requested < 1.0:
            raise InvalidRequest(f"threshold {requested} is not between 0 and 1")
        if requested < self.floor:
            if not override_reason.strip():
                raise InvalidRequest(
                    f"threshold {requested:.3f} is below the floor {self.floor:.3f} for {self.model_id}: "
                    "give threshold_override_reason to use it (it is recorded in the audit trail)"
                )
            return requested, True
        return requested, False


@dataclass(frozen=True)
class Coverage:
    van_id: str
    camera_id: str


@dataclass(frozen=True)
class NewDeployment:
    name: str
    purpose: str
    authorising_officer: str
    location: str
    planned_start: float
    planned_end: float
    cameras: tuple[Coverage, ...]
    threshold: float
    threshold_overridden: bool
    threshold_override_reason: str
    watchlist_size_limit: int
    model_id: str
    threshold_floor: float
    where: str  # one of the policy's closed list
    urgent: bool = False  # authorised orally: ratified in writing by `ratify_by`, else closed
    ratify_by: float = 0.0
    # False alerts predicted by the model's calibration for the watchlist's size limit (None: uncalibrated).
    predicted: prediction.Prediction | None = None
    min_margin: float = 0.0
    # The policy's perceived-group lists and equity block, copied into the record (alert reads them there).
    perceived_groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    equity: EquityPolicy | None = None


def validate_new(
    *,
    name: str,
    purpose: str,
    authorising_officer: str,
    location: str,
    planned_start: float | None,
    planned_end: float | None,
    cameras: list[tuple[str, str]],
    threshold: float | None,
    threshold_override_reason: str,
    watchlist_size_limit: int,
    policy: ThresholdPolicy,
    default_size_limit: int,
    max_size_limit: int,
    rules: DeploymentPolicy,
    where: str,
    urgent: bool = False,
    expected_faces: int = 0,
    false_alert_override_reason: str = "",
    now: float | None = None,
) -> NewDeployment:
    now = time.time() if now is None else now
    texts = {
        "name": name,
        "purpose": purpose,
        "authorising_officer": authorising_officer,
        "location": location,
        "threshold_override_reason": threshold_override_reason,
        "false_alert_override_reason": false_alert_override_reason,
    }
    for label, value in texts.items():
        if len(value) > TEXT_LIMITS[label]:
            raise InvalidRequest(f"{label} is {len(value)} characters long; at most {TEXT_LIMITS[label]}")
        if not value.isprintable():
            raise InvalidRequest(f"{label} holds control characters or line breaks: printable text only")
    for label in ("name", "purpose", "authorising_officer", "location"):
        if not texts[label].strip():
            raise InvalidRequest(
                f"{label} is required"
                + (": where the cameras will be, as the authorisation names it" if label == "location" else "")
            )
    if where not in rules.where:
        raise InvalidRequest(
            f"where {where!r} is not one of the policy's: {', '.join(rules.where)} (the policy file's `where`)"
        )
    start = planned_start if planned_start else now
    if not planned_end:
        raise InvalidRequest("planned_end is required: every deployment ends, and its watchlist with it")
    if planned_end <= start:
        raise InvalidRequest("planned_end must be after planned_start (the window is reversed)")
    if planned_end <= now:
        raise InvalidRequest("planned_end is in the past")
    if start < now - PAST_START_S:
        raise InvalidRequest("planned_start is in the past: a deployment is authorised from now on, never before")
    start = max(start, now)
    hours = (planned_end - start) / 3600
    if hours > rules.max_duration_h:
        raise InvalidRequest(
            f"planned_end is {hours:,.1f} hours after planned_start; a deployment lasts at most "
            f"{rules.max_duration_h:g} hours (the policy file's max_duration_h): plan a new deployment for the "
            "next period"
        )
    if start > now + MAX_LEAD_DAYS * 86400:
        raise InvalidRequest(f"planned_start is more than {MAX_LEAD_DAYS} days ahead")
    if len(cameras) > MAX_CAMERAS:
        raise InvalidRequest(f"cameras lists {len(cameras)} cameras; at most {MAX_CAMERAS}")
    coverage = []
    for van_id, camera_id in cameras:
        if not _ID.match(van_id) or not _ID.match(camera_id):
            raise InvalidRequest(
                f"van and camera ids must be 1-64 letters, digits, '.', '_' or '-': {van_id!r}/{camera_id!r}"
            )
        coverage.append(Coverage(van_id, camera_id))
    limit = watchlist_size_limit or default_size_limit
    if limit > max_size_limit:
        raise InvalidRequest(f"watchlist_size_limit {limit} is above the maximum {max_size_limit}")
    value, overridden = policy.resolve(threshold, threshold_override_reason)
    predicted = prediction.predict(policy.fmr_curve, value, most_entries(limit), expected_faces)
    if predicted is not None:
        try:
            prediction.check(predicted, rules.max_false_alerts_per_faces, rules.max_false_alerts_per_deployment)
        except prediction.OverLimit as exc:
            if not false_alert_override_reason.strip():
                raise InvalidRequest(
                    f"{exc}: raise the threshold, lower watchlist_size_limit, or give false_alert_override_reason "
                    "(it is recorded in the audit trail)"
                ) from None
            predicted = dataclasses.replace(predicted, override_reason=false_alert_override_reason.strip())
    return NewDeployment(
        name=name.strip(),
        purpose=purpose.strip(),
        authorising_officer=authorising_officer.strip(),
        location=location.strip(),
        planned_start=start,
        planned_end=planned_end,
        cameras=tuple(coverage),
        threshold=value,
        threshold_overridden=overridden,
        threshold_override_reason=threshold_override_reason.strip() if overridden else "",
        watchlist_size_limit=limit,
        model_id=policy.model_id,
        threshold_floor=policy.floor,
        where=where,
        urgent=urgent,
        ratify_by=now + rules.ratify_within_h * 3600 if urgent else 0.0,
        predicted=predicted,
        min_margin=rules.min_margin,
        perceived_groups=rules.perceived_groups.model_dump(),
        equity=rules.equity.as_policy(),
    )


def valid_subject_id(subject_id: str) -> bool:
    return bool(_SUBJECT.match(subject_id))


_WORDS = re.compile(r"\w+")


def same_name(a: str, b: str) -> bool:
    """Two officer names written differently ("Supt. A. Example", "supt a example"): the same words,
    ignoring case, spacing and punctuation. A second line of defence only: ratification is refused on
    the caller's principal (its token's identity) first."""
    words = _WORDS.findall(a.casefold())
    return bool(words) and words == _WORDS.findall(b.casefold())

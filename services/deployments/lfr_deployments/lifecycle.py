"""Rules of the deployment lifecycle, free of I/O: what a valid deployment is, which thresholds may
be used, and the one way a request is refused (`Refused`; what may be done to a deployment once it
exists is lfr_deployments.rules).

Threshold governance: a deployment's threshold is derived, never typed in. The force's policy fixes
the public's risk (false_alert_budget: false alerts per face scanned); the model's calibration says
which threshold keeps a list of this size within it (lfr_faces.calibration: the operating point), at
or above the equitability floor, below which some group's false alerts differ significantly. A force
may choose a higher threshold. A lower one needs a reason, which goes into the audit trail: the
National Physical Laboratory's 2023 study of the Met's system found false alerts rising below its
default threshold and falling disproportionately on Black people; the derived threshold makes such
a choice deliberate and accountable rather than a typo. Nothing goes below the model's minimum.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

from lfr_deployments import prediction
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.prediction import one_in
from lfr_faces.calibration import Calibration, OperatingPoint, Tradeoff
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


# Why a request is refused. The servicer answers each with one gRPC status (lfr_deployments.service).
INVALID = "invalid"  # the request itself is wrong
PRECONDITION = "precondition"  # the deployment is not in a state that allows it
PERMISSION = "permission"  # this caller may not, whatever the request says
NOT_FOUND = "not_found"  # no such deployment (or its manifest was deleted)
CHANGED = "changed"  # the deployment changed meanwhile: look again, then ask again
FULL = "full"  # over the watchlist's size limit


class Refused(Exception):
    """A request the lifecycle's rules refuse: `reason` (one of the above), and the detail, which says
    why and what to change. Raised by the pure rules (here and lfr_deployments.rules); one place in
    the servicer turns it into a gRPC status and, for an officer's act, an audit event."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class InvalidRequest(Refused, ValueError):
    """The request itself is wrong; the message says what to change."""

    def __init__(self, detail: str) -> None:
        super().__init__(INVALID, detail)


class ListTooLarge(InvalidRequest):
    """No threshold up to the model's maximum keeps the list within the false-alert budget: known at
    the review, once the list is, so refused as the watchlist's state, not as a wrong request."""

    def __init__(self, detail: str) -> None:
        Refused.__init__(self, PRECONDITION, detail)


DERIVED, CHOSEN, OVERRIDDEN = "derived", "chosen", "overridden"


@dataclass(frozen=True)
class Threshold:
    """A deployment's threshold, where it came from, and the operating point it was checked against."""

    value: float
    source: str  # DERIVED, CHOSEN (higher than derived, by the force) or OVERRIDDEN (lower, with a reason)
    point: OperatingPoint
    tradeoff: tuple[Tradeoff, ...]

    @property
    def floor(self) -> float:
        """The lowest threshold accepted without an override reason: the derived one (or the model's
        maximum for a list too large for the budget)."""
        return self.point.threshold if self.point.threshold is not None else self.point.model_max


@dataclass(frozen=True)
class ThresholdPolicy:
    """The model's calibration and the force's false-alert budget: every deployment's operating point."""

    calibration: Calibration
    budget: float
    # Two enrolment photos of one subject that score below this are taken for two people (at most 1 in
    # 100 pairs of different people score above it, by the model's calibration); None: not checked.
    same_subject_min: float | None = None

    @property
    def model_id(self) -> str:
        return self.calibration.model_id

    @property
    def lowest_derivable(self) -> float:
        """The lowest threshold any list derives: the equitability floor or the model minimum."""
        return max(self.calibration.equitability_floor, self.calibration.model_min)

    def point(self, entries: int) -> OperatingPoint:
        return self.calibration.operating_point(max(1, entries), self.budget)

    def resolve(self, requested: float | None, override_reason: str, entries: int) -> Threshold:
        """The threshold for a list of `entries`: the derived one, unless the request names one. A higher
        one is the force's choice; a lower one needs a reason (audited); none goes below the model's
        minimum, reason or not."""
        point = self.point(entries)
        tradeoff = tuple(self.calibration.tradeoff(max(1, entries), self.budget))
        derived = point.threshold if point.threshold is not None else point.model_max
        if requested is None:
            return Threshold(derived, DERIVED, point, tradeoff)
        if not 0.0 < requested < 1.0:
            raise InvalidRequest(f"threshold {requested} is not between 0 and 1")
        if requested < point.model_min - 1e-9:
            raise InvalidRequest(
                f"threshold {requested:.3f} is below the model minimum {point.model_min:.3f} for {self.model_id}: "
                "no override goes below it (its calibration: docs/evaluation.md)"
            )
        if requested < derived - 1e-9:
            if not override_reason.strip():
                raise InvalidRequest(
                    f"threshold {requested:.3f} is below {derived:.3f}, the threshold derived for {entries:,} "
                    f"watchlist entries under the policy's false-alert budget ({one_in(self.budget)} faces): "
                    "give threshold_override_reason to use it (it is recorded in the audit trail)"
                )
            return Threshold(requested, OVERRIDDEN, point, tradeoff)
        return Threshold(requested, DERIVED if abs(requested - derived) < 1e-9 else CHOSEN, point, tradeoff)

    def at_review(self, current: float, source: str, entries: int) -> Threshold:
        """The threshold once the list is known (its entries reviewed, templates included): derived again,
        a force's higher choice kept, an audited override kept while it is still below the derived one.
        Raises ListTooLarge when no threshold up to the model's maximum meets the budget."""
        point = self.point(entries)
        if point.threshold is None:
            raise ListTooLarge(self.too_large(point))
        tradeoff = tuple(self.calibration.tradeoff(max(1, entries), self.budget))
        derived = point.threshold
        if source == CHOSEN and current > derived + 1e-9:
            return Threshold(current, CHOSEN, point, tradeoff)
        if source == OVERRIDDEN and current < derived - 1e-9:
            return Threshold(current, OVERRIDDEN, point, tradeoff)
        if source == OVERRIDDEN and current > derived + 1e-9:
            return Threshold(current, CHOSEN, point, tradeoff)  # the list shrank under the override
        return Threshold(derived, DERIVED, point, tradeoff)

    def too_large(self, point: OperatingPoint) -> str:
        """Why a list of point.entries cannot be used under the budget, with the figures."""
        at_max, group = self.calibration.predicted_fpir_upper(point.model_max, point.entries)
        return (
            f"{point.entries:,} watchlist entries are too many for the policy's false-alert budget "
            f"({one_in(self.budget)} faces scanned): even at the model's maximum threshold {point.model_max:.3f} "
            f"false alerts are predicted up to {one_in(at_max)} faces ({group}); the largest list that fits is "
            f"{point.largest_list:,} entries"
        )


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
    threshold: Threshold
    threshold_override_reason: str
    watchlist_size_limit: int
    model_id: str
    where: str  # one of the policy's closed list
    urgent: bool = False  # authorised orally: ratified in writing by `ratify_by`, else closed
    ratify_by: float = 0.0
    # False alerts predicted by the model's calibration for the watchlist's size limit.
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
    entries = most_entries(limit)
    chosen = policy.resolve(threshold, threshold_override_reason, entries)
    predicted = prediction.predict(policy.calibration, chosen.value, entries, expected_faces)
    # The budget is the derived threshold's (a lower one is its override); the per-deployment limit is checked here.
    try:
        prediction.check(predicted, None, rules.max_false_alerts_per_deployment)
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
        threshold=chosen,
        threshold_override_reason=threshold_override_reason.strip() if chosen.source == OVERRIDDEN else "",
        watchlist_size_limit=limit,
        model_id=policy.model_id,
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

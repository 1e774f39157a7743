"""The deployment report, in the shape forces publish (South Wales Police, the Met): when and where,
why and on whose authority, at what threshold, against how large a watchlist, how many faces were
scanned, what came of the alerts, and both false-alert rates with their 95% intervals; and whom the
alerts fell on, as officers perceived them (true and false alerts per perceived group, each group's
false alerts tested against the policy's reference share: lfr_platform.equity).

Free of I/O: built from the deployment's record, whose stats fields count faces scanned (match),
alerts and decisions (alert). Those fields are kept in the tombstone, so the report outlives the
watchlist; it holds no biometric data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lfr_deployments.prediction import Prediction
from lfr_platform.deployment_record import DeploymentRecord
from lfr_platform.equity import DIMENSIONS, disparity, false_alerts_tested, perceived_counts
from lfr_platform.rates import Rate, wilson

# The stats fields counting enrolled images per category (`stats:listed_<category>`).
LISTED = "listed_"


@dataclass(frozen=True)
class Outcomes:
    alerts: int = 0
    true_alerts: int = 0
    false_alerts: int = 0
    undetermined: int = 0
    unadjudicated: int = 0
    engaged: int = 0
    not_engaged: int = 0
    arrests: int = 0
    no_further_action: int = 0
    safeguarding: int = 0
    other_outcomes: int = 0
    held: int = 0  # held for a supervisor: a lookalike scored within the policy's min_margin


@dataclass(frozen=True)
class Figures:
    """What was scanned and decided, for a deployment or one of its vans."""

    faces_scanned: int
    outcomes: Outcomes
    # The Met's measure and its critics' (both needed: 10 in 3.1 million faces, 10 in 2,077 alerts).
    false_alerts_per_face_scanned: Rate
    false_alerts_per_alert: Rate


@dataclass(frozen=True)
class GroupFigures:
    """One perceived group's alerts, and its false alerts against its reference share."""

    dimension: str
    group: str
    true_alerts: int
    false_alerts: int
    reference_share: float | None  # None: the group has none (counted, not tested)
    p_value: float | None  # the exact one-sided binomial test; None when not tested
    disparity: bool  # p_value below the policy's with at least its minimum of false alerts tested


@dataclass(frozen=True)
class EquityFigures:
    groups: list[GroupFigures]
    false_alerts_tested: dict[str, int]  # per dimension: false alerts on a group with a reference share
    p_value_limit: float
    min_false_alerts: int


@dataclass(frozen=True)
class Report:
    deployment_id: str
    name: str
    purpose: str
    authorising_officer: str
    location: str
    where: str  # on the policy's closed list
    authorisation: str  # "written", "urgent, ratified by ...", "urgent, not ratified"
    state: str
    close_reason: str
    start: float
    end: float
    threshold: float
    threshold_floor: float
    threshold_override_reason: str
    model_id: str
    watchlist_images: int
    watchlist_subjects: int
    figures: Figures
    vans: dict[str, Figures]
    generated_at: float
    # What the model's calibration predicts for the faces scanned and the watchlist enrolled, beside
    # the false alerts observed (None: an uncalibrated model).
    predicted: Prediction | None = None
    # How the threshold was derived (lfr_deployments.operating), with the recall predicted at it.
    operating_point: dict | None = None
    # Images enrolled per category of the policy's list: who was sought, never who.
    watchlist_categories: dict[str, int] = dataclasses.field(default_factory=dict)
    # Alerts per perceived group (None: a deployment created without the policy's equity block).
    equity: EquityFigures | None = None

    def as_dict(self) -> dict:
        """JSON-ready (the audit event at close, `lfr deployment report --json`)."""
        data = dataclasses.asdict(self)
        data["figures"] = _figures_dict(self.figures)
        data["vans"] = {van: _figures_dict(f) for van, f in self.vans.items()}
        if self.predicted is not None:
            low, high = self.predicted.expected_interval
            data["predicted"] = {**self.predicted.as_dict(), "expected": self.predicted.expected, "ci95": [low, high]}
        return data


def _figures_dict(figures: Figures) -> dict:
    return {
        "faces_scanned": figures.faces_scanned,
        "outcomes": dataclasses.asdict(figures.outcomes),
        "false_alerts_per_face_scanned": figures.false_alerts_per_face_scanned.as_dict(),
        "false_alerts_per_alert": figures.false_alerts_per_alert.as_dict(),
    }


def _counts(record: DeploymentRecord) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The stats fields: deployment-wide counts, and counts per van."""
    total: dict[str, int] = {}
    per_van: dict[str, dict[str, int]] = {}
    for stat, value in record.stats.items():
        name, _, van = stat.partition("@")
        target = per_van.setdefault(van, {}) if van else total
        target[name] = max(0, value)
    return total, per_van


def figures(counts: dict[str, int]) -> Figures:
    c = counts.get
    alerts = c("alerts", 0)
    decided = c("adjudicated_true", 0) + c("adjudicated_false", 0) + c("adjudicated_undetermined", 0)
    outcomes = Outcomes(
        alerts=alerts,
        true_alerts=c("adjudicated_true", 0),
        false_alerts=c("adjudicated_false", 0),
        undetermined=c("adjudicated_undetermined", 0),
        unadjudicated=max(0, alerts - decided),
        engaged=c("engaged", 0),
        not_engaged=c("not_engaged", 0),
        arrests=c("outcome_arrest", 0),
        no_further_action=c("outcome_no_further_action", 0),
        safeguarding=c("outcome_safeguarding", 0),
        other_outcomes=c("outcome_other", 0),
        held=c("held", 0),
    )
    scanned = c("faces_scanned", 0)
    return Figures(
        faces_scanned=scanned,
        outcomes=outcomes,
        false_alerts_per_face_scanned=wilson(outcomes.false_alerts, scanned),
        false_alerts_per_alert=wilson(outcomes.false_alerts, alerts),
    )


def build_report(record: DeploymentRecord, now: float) -> Report:
    """`record` is the deployment's record as stored, with its derived `state`."""
    total, per_van = _counts(record)
    return Report(
        deployment_id=record.deployment_id,
        name=record.name,
        purpose=record.purpose,
        authorising_officer=record.authorising_officer,
        location=record.location,
        where=record.where,
        authorisation=_authorisation(record),
        state=record.state,
        close_reason=record.close_reason,
        start=record.planned_start or 0.0,
        end=record.closed_at or record.planned_end or 0.0,
        threshold=record.threshold or 0.0,
        threshold_floor=record.threshold_floor or 0.0,
        threshold_override_reason=record.threshold_override_reason,
        model_id=record.model_id,
        watchlist_images=record.enrolled_images,
        watchlist_subjects=record.enrolled_subjects,
        figures=figures(total),
        vans={van: figures(counts) for van, counts in sorted(per_van.items())},
        generated_at=now,
        predicted=predicted(record, faces=total.get("faces_scanned", 0)),
        operating_point=record.operating_point,
        watchlist_categories={
            name.removeprefix(LISTED): n for name, n in sorted(total.items()) if name.startswith(LISTED)
        },
        equity=equity(record, total),
    )


def equity(record: DeploymentRecord, counts: dict[str, int]) -> EquityFigures | None:
    """True and false alerts per perceived group of the deployment's lists, and each group's false
    alerts tested against the reference share of the policy copied into its record at creation."""
    policy = record.equity
    if policy is None:
        return None
    lists = record.perceived_groups or {}
    true, false = perceived_counts(counts, "true"), perceived_counts(counts, "false")
    tests = {(t.dimension, t.group): t for t in disparity(false, policy)}
    groups = []
    for dimension in DIMENSIONS:
        listed = list(lists.get(dimension, []))
        counted = set(true.get(dimension, {})) | set(false.get(dimension, {}))
        for group in listed + sorted(counted - set(listed)):  # counted yet not listed: shown, never hidden
            test = tests.get((dimension, group))
            groups.append(
                GroupFigures(
                    dimension=dimension,
                    group=group,
                    true_alerts=true.get(dimension, {}).get(group, 0),
                    false_alerts=false.get(dimension, {}).get(group, 0),
                    reference_share=test.reference_share if test else None,
                    p_value=test.p_value if test else None,
                    disparity=test.flagged(policy) if test else False,
                )
            )
    return EquityFigures(
        groups=groups,
        false_alerts_tested=false_alerts_tested(false, policy),
        p_value_limit=policy.p_value,
        min_false_alerts=policy.min_false_alerts,
    )


def predicted(record: DeploymentRecord, faces: int | None = None) -> Prediction | None:
    """The deployment's prediction (made at create for its size limit) for the watchlist as enrolled
    (its entries as reviewed: the images and the subjects' templates), and for `faces` (default: the
    faces expected at create)."""
    if record.prediction is None:
        return None
    made = Prediction.from_dict(record.prediction)
    entries = record.reviewed_entries or record.enrolled_images
    now = made.for_watchlist(entries) if entries else made
    return now if faces is None else now.for_faces(faces)


def _authorisation(record: DeploymentRecord) -> str:
    if not record.urgent:
        return "written"
    if record.ratified_by:
        return f"urgent, ratified in writing by {record.ratified_by}"
    return "urgent, not ratified"

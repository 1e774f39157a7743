"""A watchlist image's provenance against the shipped policy, and the false alerts a deployment is
predicted to raise, from the model's calibration."""

import datetime as dt
import json
from pathlib import Path

import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments import prediction
from lfr_deployments.policy import DeploymentPolicy
from lfr_deployments.provenance import checked
from lfr_deployments.report import predicted
from lfr_faces.enrolment import EnrolRejected
from lfr_platform.deployment_record import DeploymentRecord
from lfr_testing.calibration import synthetic
from lfr_watchlist.templates import most_entries

RULES = DeploymentPolicy.load(Path(__file__).resolve().parents[4] / "deploy" / "policy.yaml")
TODAY = dt.date(2026, 12, 3)


def _image(**overrides) -> pb.WatchlistImage:
    fields = dict(
        subject_id="S1", category="wanted", image_source="custody", legal_basis="dpa_2018_part_3",
        image_date="2026-10-01", source_reference="PNC/1", approved_by="Insp. A",
    )  # fmt: skip
    fields.update(overrides)
    return pb.WatchlistImage(**fields)


def test_a_complete_row_on_the_policys_lists_is_accepted():
    accepted = checked(_image(), RULES, TODAY)
    assert (accepted.image_source, accepted.legal_basis, accepted.image_date) == (
        "custody", "dpa_2018_part_3", "2026-10-01"
    )  # fmt: skip
    assert "image" not in accepted.manifest_row() and accepted.manifest_row()["minor"] is False


@pytest.mark.parametrize(
    "overrides, reason, message",
    [
        ({"image_source": ""}, "invalid_item", "missing image_source"),
        ({"legal_basis": ""}, "invalid_item", "missing legal_basis"),
        ({"image_source": "facebook"}, "invalid_item", "image_source 'facebook' is not one of the policy's: custody"),
        ({"legal_basis": "hunch"}, "invalid_item", "legal_basis 'hunch' is not one of the policy's"),
        ({"category": "protester"}, "invalid_item", "category 'protester' is not one of the policy's: wanted"),
        ({"image_date": "01/10/2026"}, "invalid_item", "image_date must be a date, YYYY-MM-DD"),
        ({"image_date": "2027-01-01"}, "invalid_item", "image_date 2027-01-01 is in the future"),
        ({"minor": True}, "invalid_item", "a minor's image needs a second approver"),
        ({"minor": True, "second_approver": "insp. a"}, "invalid_item", "another person than approved_by"),
        ({"image_date": "2015-06-01"}, "image_too_old", "taken 2015-06-01, 11.5 years ago; the policy allows 5"),
        ({"age_override_reason": "x" * 1001}, "invalid_item", "age_override_reason must be at most 1000"),
    ],
)
def test_bad_provenance_is_refused_naming_the_field(overrides, reason, message):
    with pytest.raises(EnrolRejected) as refused:
        checked(_image(**overrides), RULES, TODAY)
    assert refused.value.reason == reason and message in refused.value.detail


def test_an_old_image_is_accepted_with_an_age_override_reason_that_is_kept():
    accepted = checked(
        _image(image_date="2015-06-01", age_override_reason="the only photo: missing since 2016"), RULES, TODAY
    )
    assert accepted.age_override_reason.startswith("the only photo")
    assert checked(_image(age_override_reason="not needed"), RULES, TODAY).age_override_reason == ""


def test_a_minor_with_a_second_approver_is_accepted():
    accepted = checked(_image(minor=True, second_approver="Supt. B"), RULES, TODAY)
    assert accepted.minor and accepted.second_approver == "Supt. B"


CALIBRATION = synthetic()


def test_the_prediction_is_the_false_match_rate_times_entries_and_the_per_pass_ratio():
    at_055 = prediction.predict(CALIBRATION, 0.55, watchlist_size=10_000, expected_faces=100_000)
    k, n = CALIBRATION.overall.counts[CALIBRATION.thresholds.index(0.55)]
    assert k >= 10  # the counts speak here
    assert at_055.per_face == pytest.approx(k / n * 10_000 * CALIBRATION.ratio) and at_055.fmr_pairs == n
    assert at_055.expected == pytest.approx(at_055.per_face * 100_000)
    low, high = at_055.expected_interval
    assert low < at_055.expected < high
    # the upper bound is the worst group's, with the ratio's upper bound: what the budget is checked against
    assert at_055.per_face_upper_95 == pytest.approx(CALIBRATION.predicted_fpir_upper(0.55, 10_000)[0])
    assert at_055.group == "children"
    # A threshold between grid points takes the lower point's rate (never an optimistic one).
    assert prediction.predict(CALIBRATION, 0.555, 10_000, 1).per_face == at_055.per_face
    # Where the counts run out, the tail fit speaks: a small but not zero rate.
    at_078 = prediction.predict(CALIBRATION, 0.78, 1_000, 1_000_000)
    assert 0 < at_078.expected < at_078.expected_interval[1]


def test_the_policys_limits_refuse_a_prediction_above_them():
    low_threshold = prediction.predict(CALIBRATION, 0.60, watchlist_size=10_000, expected_faces=0)
    with pytest.raises(prediction.OverLimit, match="more than the policy's 1 in 1,000 \\(false_alert_budget\\)"):
        prediction.check(low_threshold, budget=1 / 1000, per_deployment=None)
    prediction.check(low_threshold, budget=None, per_deployment=None)
    many = prediction.predict(CALIBRATION, 0.64, watchlist_size=10_000, expected_faces=1_000_000)
    with pytest.raises(prediction.OverLimit, match="per deployment"):
        prediction.check(many, budget=None, per_deployment=1)
    # Recomputed for the watchlist as enrolled: the same rate per entry.
    assert many.for_watchlist(1_000).per_face == pytest.approx(many.per_face / 10)


def test_the_report_predicts_for_the_entries_reviewed_templates_included():
    made = prediction.predict(CALIBRATION, 0.64, watchlist_size=most_entries(1_000), expected_faces=100_000)
    assert made.watchlist_size == 1_500  # a watchlist of 1,000 images holds at most 500 templates more
    stored = {"version": "1", "deployment_id": "dep-1", "status": "open"}
    stored |= {"prediction": json.dumps(made.as_dict()), "enrolled_images": "30"}
    assert predicted(DeploymentRecord.from_redis("dep-1", stored)).watchlist_size == 30  # enrolled, not yet reviewed
    stored["reviewed_entries"] = "42"  # reviewed: 30 images and 12 subjects' templates are searched
    assert predicted(DeploymentRecord.from_redis("dep-1", stored)).per_face == pytest.approx(made.per_face * 42 / 1_500)

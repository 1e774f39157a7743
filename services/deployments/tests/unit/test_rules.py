"""What may be done to a deployment, decided on its record without gRPC or Redis: ratification,
review, enrolment, the manifest, close. Each refusal carries its reason and the message the caller
and the audit trail get."""

import pytest

from lfr_deployments import rules
from lfr_deployments.lifecycle import (
    CHOSEN,
    DERIVED,
    FULL,
    INVALID,
    NOT_FOUND,
    OVERRIDDEN,
    PERMISSION,
    PRECONDITION,
    ListTooLarge,
    Refused,
    ThresholdPolicy,
)
from lfr_platform.deployment_record import DeploymentRecord, new_deployment_record
from lfr_testing.calibration import synthetic

NOW = 1_000_000.0
POLICY = ThresholdPolicy(synthetic(), budget=1 / 1000)


def _record(**changes) -> DeploymentRecord:
    record = new_deployment_record(
        "dep-0123456789abcdef",
        name="Op Test",
        purpose="wanted persons",
        authorising_officer="Supt A Example",
        location="High St",
        planned_start=NOW + 3600,
        planned_end=NOW + 7200,
        cameras=[],
        threshold=0.7,
        threshold_floor=0.7,
        threshold_override_reason="",
        model_id="m",
        watchlist_size_limit=10,
        created_at=NOW,
        created_by="officer-1",
        alert_public_key=b"",
        where="crime_hotspot",
        urgent=True,
        ratify_by=NOW + 600,
    )
    return record.model_copy(update={"state": "planned", **changes})


def _refused(call, *args) -> Refused:
    with pytest.raises(Refused) as refused:
        call(*args)
    return refused.value


@pytest.mark.parametrize(
    ("changes", "officer", "caller", "reason", "message"),
    [
        ({}, "", "officer-2", INVALID, "officer is required: the officer who ratifies in writing"),
        ({"urgent": False}, "Ch Insp B", "officer-2", PRECONDITION, "was not authorised as urgent"),
        ({"ratified_by": "Ch Insp C"}, "Ch Insp B", "officer-2", PRECONDITION, "was ratified by Ch Insp C already"),
        (
            {"status": "closed", "state": "closed", "close_reason": "over"},
            "Ch Insp B",
            "officer-2",
            PRECONDITION,
            "is closed: too late to ratify (over)",
        ),
        ({}, "Ch Insp B", "officer-1", PERMISSION, "officer-1 created deployment dep-0123456789abcdef"),
        ({}, "supt. a. example", "officer-2", INVALID, "another officer must ratify it"),
        ({"ratify_by": NOW - 1}, "Ch Insp B", "officer-2", PRECONDITION, "had to be ratified by"),
    ],
)
def test_ratification_is_refused_in_the_order_of_its_rules(changes, officer, caller, reason, message):
    refused = _refused(rules.ratify, _record(**changes), officer, caller, NOW)
    assert refused.reason == reason and message in refused.detail and str(refused) == refused.detail


def test_a_record_without_its_creator_is_compared_on_the_officers_names_and_says_so():
    refused = _refused(rules.ratify, _record(created_by=""), "Supt. A. Example", "officer-1", NOW)
    assert "names no creating principal: only the officers' names could be compared" in refused.detail


def test_ratification_by_another_officer_is_recorded_and_a_repeat_is_not():
    assert rules.ratify(_record(), "Ch Insp B", "officer-2", NOW) is True
    assert rules.ratify(_record(ratified_by="Ch Insp B"), "Ch Insp B", "officer-2", NOW) is False


def test_a_review_needs_an_officer_an_open_deployment_and_images():
    assert _refused(rules.review, _record(enrolled_images=3), "").detail == (
        "officer is required: who reviewed the watchlist"
    )
    closed = _record(status="closed", state="closed", enrolled_images=3)
    assert _refused(rules.review, closed, "Insp R").detail == "deployment dep-0123456789abcdef is closed"
    assert _refused(rules.review, _record(), "Insp R").detail.endswith("is empty: enrol it, then review it")
    assert rules.review(_record(enrolled_images=3), "Insp R") == 3


def test_the_review_derives_the_threshold_again_and_keeps_an_override_below_it():
    derived = rules.review_threshold(POLICY, _record(threshold=0.99), 30)
    assert derived.source == DERIVED and derived.value == POLICY.point(30).threshold
    chosen = rules.review_threshold(POLICY, _record(threshold=0.99, operating_point={"threshold_source": CHOSEN}), 30)
    assert (chosen.source, chosen.value) == (CHOSEN, 0.99)
    low = POLICY.calibration.model_min + 0.001
    overridden = _record(threshold=low, threshold_override_reason="a missing child")
    kept = rules.review_threshold(POLICY, overridden, 30)
    assert (kept.source, kept.value, rules.override_reason(overridden, kept)) == (OVERRIDDEN, low, "a missing child")
    with pytest.raises(ListTooLarge) as refused:
        rules.review_threshold(POLICY, _record(), 10**9)
    assert refused.value.reason == PRECONDITION


def test_enrolment_and_the_manifest_and_close_follow_the_record():
    assert _refused(rules.enrolment_open, _record(status="expired", state="expired")).reason == PRECONDITION
    early = _refused(rules.enrolment_window, _record(), NOW - 3 * 3600, 2.0)
    assert "2 h before its window opens" in early.detail and early.detail.endswith("nothing was enrolled")
    rules.enrolment_window(_record(), NOW, 2.0)
    assert _refused(rules.room_for, 5, 8, 10).reason == FULL
    full = _refused(rules.room_for_one, 10, 10, "a.jpg")
    assert full.detail == "the watchlist is full (10 images); a.jpg was not enrolled"
    closed = _record(status="closed", closed_at=NOW, enrolled_images=2)
    assert rules.manifest_kept_until(closed, 2, NOW + 86400, 30) == NOW + 30 * 86400
    assert _refused(rules.manifest_kept_until, closed, 2, NOW + 31 * 86400, 30).reason == NOT_FOUND
    assert rules.manifest_kept_until(_record(), 0, NOW, 30) is None
    assert _refused(rules.close_step, "dep-x", None).detail == "no deployment 'dep-x'"
    assert rules.close_step("dep-x", _record()) == rules.CLOSE
    assert rules.close_step("dep-x", closed) == rules.FINISH
    assert rules.close_step("dep-x", closed.model_copy(update={"deletion": {}})) == rules.DONE

import time

import pytest

from lfr_deployments.lifecycle import InvalidRequest, ThresholdPolicy, validate_new

POLICY = ThresholdPolicy("sface-2021dec", default=0.6, floor=0.55)


def _new(**overrides):
    now = time.time()
    fields = dict(
        name="Op Test",
        purpose="wanted persons",
        authorising_officer="Supt A",
        location="High St",
        planned_start=now,
        planned_end=now + 3600,
        cameras=[("van-1", "cam-1")],
        threshold=None,
        threshold_override_reason="",
        watchlist_size_limit=0,
        policy=POLICY,
        default_size_limit=10_000,
        max_size_limit=200_000,
    )
    fields.update(overrides)
    return validate_new(**fields)


def test_no_threshold_means_the_calibrated_default():
    new = _new()
    assert (new.threshold, new.threshold_overridden, new.watchlist_size_limit) == (0.6, False, 10_000)


def test_a_threshold_below_the_floor_needs_a_reason_and_is_marked_overridden():
    with pytest.raises(InvalidRequest, match="below the floor"):
        _new(threshold=0.5)
    new = _new(threshold=0.5, threshold_override_reason="missing child, ACC authorised")
    assert new.threshold_overridden and new.threshold_override_reason.startswith("missing child")


def test_a_threshold_at_or_above_the_floor_needs_none():
    assert not _new(threshold=0.55).threshold_overridden


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": " "}, "name is required"),
        ({"purpose": ""}, "purpose is required"),
        ({"planned_end": None}, "planned_end is required"),
        ({"planned_end": 1.0}, "after planned_start"),
        ({"threshold": 1.2}, "between 0 and 1"),
        ({"cameras": [("van 1", "cam")]}, "van and camera ids"),
        ({"watchlist_size_limit": 300_000}, "above the maximum"),
        ({"name": "x" * 1_000_000}, "name is 1000000 characters long; at most 200"),
        ({"purpose": "wanted\npersons"}, "purpose holds control characters"),
        ({"location": "\x00"}, "location holds control characters"),
        ({"threshold_override_reason": "r" * 1001, "threshold": 0.5}, "threshold_override_reason is 1001"),
        ({"planned_end": time.time() + 100_000 * 3600}, "at most 24 hours"),
        ({"planned_start": time.time() + 100 * 86400, "planned_end": time.time() + 100 * 86400 + 60}, "90 days"),
        ({"cameras": [("van-1", f"cam-{i}") for i in range(300)]}, "at most 256"),
    ],
)
def test_invalid_requests_say_what_to_change(overrides, message):
    with pytest.raises(InvalidRequest, match=message):
        _new(**overrides)


def test_the_longest_deployment_is_a_setting():
    now = time.time()
    assert _new(planned_start=now, planned_end=now + 48 * 3600, max_duration_h=72).planned_end == now + 48 * 3600

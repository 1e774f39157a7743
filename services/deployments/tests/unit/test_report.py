"""The deployment report from a record's stats fields: counts, outcomes, both false-alert rates."""

import pytest

from lfr_deployments.report import build_report

RECORD = {
    "deployment_id": "dep-1",
    "name": "Op Test",
    "purpose": "wanted persons",
    "authorising_officer": "Supt. A",
    "location": "High St",
    "state": "closed",
    "planned_start": "100.0",
    "planned_end": "9000.0",
    "closed_at": "5000.0",
    "threshold": "0.69",
    "threshold_floor": "0.69",
    "enrolled_images": "12",
    "enrolled_subjects": "10",
    "stats:faces_scanned": "3000",
    "stats:faces_scanned@van-1": "2000",
    "stats:faces_scanned@van-2": "1000",
    "stats:alerts": "4",
    "stats:alerts@van-1": "3",
    "stats:alerts@van-2": "1",
    "stats:adjudicated_true": "2",
    "stats:adjudicated_true@van-1": "2",
    "stats:adjudicated_false": "1",
    "stats:adjudicated_false@van-2": "1",
    "stats:adjudicated_true@van-2": "0",
    "stats:engaged": "2",
    "stats:outcome_arrest": "1",
}


def test_the_report_counts_outcomes_and_states_both_rates_with_wilson_intervals():
    report = build_report(RECORD, now=6000.0)
    assert (report.start, report.end, report.watchlist_images) == (100.0, 5000.0, 12)
    f = report.figures
    assert (f.faces_scanned, f.outcomes.alerts, f.outcomes.false_alerts, f.outcomes.unadjudicated) == (3000, 4, 1, 1)
    assert (f.outcomes.engaged, f.outcomes.arrests) == (2, 1)
    per_face, per_alert = f.false_alerts_per_face_scanned, f.false_alerts_per_alert
    assert (per_face.k, per_face.n, per_alert.k, per_alert.n) == (1, 3000, 1, 4)
    assert per_face.low < 1 / 3000 < per_face.high and per_alert.low < 0.25 < per_alert.high
    assert (per_alert.low, per_alert.high) == pytest.approx((0.0456, 0.6994), abs=1e-4)  # Wilson, 1 of 4
    assert list(report.vans) == ["van-1", "van-2"]
    assert report.vans["van-2"].false_alerts_per_alert.k == 1 and report.vans["van-1"].outcomes.false_alerts == 0
    data = report.as_dict()
    assert data["figures"]["false_alerts_per_face_scanned"]["n"] == 3000


def test_a_deployment_with_nothing_scanned_has_unknown_rates():
    report = build_report({"deployment_id": "dep-2", "state": "active", "planned_end": "10"}, now=1.0)
    rate = report.figures.false_alerts_per_face_scanned
    assert (rate.k, rate.n, rate.value, rate.low, rate.high) == (0, 0, None, 0.0, 1.0)

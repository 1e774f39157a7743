"""The deployment report from a record's stats fields: counts, outcomes, both false-alert rates."""

import json

import pytest
from scipy.stats import binomtest

from lfr_deployments.report import build_report
from lfr_platform.deployment_record import DeploymentRecord
from lfr_testing.deployments import shipped_equity, shipped_policy

# A closed deployment's record, as Redis holds it.
STORED = {
    "version": "1",
    "deployment_id": "dep-1",
    "name": "Op Test",
    "purpose": "wanted persons",
    "authorising_officer": "Supt. A",
    "location": "High St",
    "status": "closed",
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
    "stats:held": "1",
    "stats:held@van-2": "1",
}
RECORD = DeploymentRecord.from_redis("dep-1", STORED)


def test_the_report_counts_outcomes_and_states_both_rates_with_wilson_intervals():
    report = build_report(RECORD, now=6000.0)
    assert (report.start, report.end, report.watchlist_images) == (100.0, 5000.0, 12)
    f = report.figures
    assert (f.faces_scanned, f.outcomes.alerts, f.outcomes.false_alerts, f.outcomes.unadjudicated) == (3000, 4, 1, 1)
    assert (f.outcomes.engaged, f.outcomes.arrests, f.outcomes.held) == (2, 1, 1)
    per_face, per_alert = f.false_alerts_per_face_scanned, f.false_alerts_per_alert
    assert (per_face.k, per_face.n, per_alert.k, per_alert.n) == (1, 3000, 1, 4)
    assert per_face.low < 1 / 3000 < per_face.high and per_alert.low < 0.25 < per_alert.high
    assert (per_alert.low, per_alert.high) == pytest.approx((0.0456, 0.6994), abs=1e-4)  # Wilson, 1 of 4
    assert list(report.vans) == ["van-1", "van-2"]
    assert report.vans["van-2"].false_alerts_per_alert.k == 1 and report.vans["van-1"].outcomes.false_alerts == 0
    data = report.as_dict()
    assert data["figures"]["false_alerts_per_face_scanned"]["n"] == 3000


def test_a_deployment_with_nothing_scanned_has_unknown_rates():
    stored = {"version": "1", "deployment_id": "dep-2", "status": "open", "planned_end": "10"}
    report = build_report(DeploymentRecord.from_redis("dep-2", stored), now=1.0)
    rate = report.figures.false_alerts_per_face_scanned
    assert (rate.k, rate.n, rate.value, rate.low, rate.high) == (0, 0, None, 0.0, 1.0)


def _with_perceived(**stats: int) -> DeploymentRecord:
    record = {**STORED, "perceived_groups": json.dumps(shipped_policy()["perceived_groups"])}
    record["equity"] = shipped_equity().to_json()
    record.update({f"stats:{name.replace('__', ':')}": str(n) for name, n in stats.items()})
    return DeploymentRecord.from_redis("dep-1", record)


def test_the_report_counts_alerts_per_perceived_group_and_tests_each_against_its_reference_share():
    # 12 false alerts with a perceived ethnicity: 6 on IC3 (reference share 4.2%), 5 on IC1, 1 not known.
    record = _with_perceived(
        perceived_false__ethnicity__IC3=6,
        perceived_false__ethnicity__IC1=5,
        perceived_false__ethnicity__IC9=1,
        perceived_true__ethnicity__IC1=2,
        perceived_false__sex__male=7,
        perceived_false__sex__female=4,
    )
    equity = build_report(record, now=6000.0).equity
    assert equity.false_alerts_tested == {"sex": 11, "ethnicity": 11}  # IC9 has no share: not in n
    assert (equity.p_value_limit, equity.min_false_alerts) == (0.001, 10)
    groups = {(g.dimension, g.group): g for g in equity.groups}
    assert [g.group for g in equity.groups] == ["female", "male", "IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9"]
    ic3 = groups["ethnicity", "IC3"]
    assert (ic3.false_alerts, ic3.true_alerts, ic3.reference_share) == (6, 0, 0.042)
    assert ic3.p_value == pytest.approx(binomtest(6, 11, 0.042, alternative="greater").pvalue) and ic3.p_value < 1e-5
    assert ic3.disparity and not groups["ethnicity", "IC1"].disparity and not groups["sex", "male"].disparity
    assert groups["ethnicity", "IC1"].true_alerts == 2
    ic9 = groups["ethnicity", "IC9"]
    assert (ic9.false_alerts, ic9.reference_share, ic9.p_value, ic9.disparity) == (1, None, None, False)
    assert build_report(record, now=6000.0).as_dict()["equity"]["groups"][4]["group"] == "IC3"


def test_below_the_policys_minimum_count_no_disparity_is_concluded():
    record = _with_perceived(perceived_false__ethnicity__IC3=4)  # 4 of 4 on IC3: p = 0.042**4, but n < 10
    ic3 = next(g for g in build_report(record, now=6000.0).equity.groups if g.group == "IC3")
    assert ic3.p_value == pytest.approx(0.042**4) and not ic3.disparity


def test_a_deployment_without_the_equity_block_has_no_equity_section():
    assert build_report(RECORD, now=6000.0).equity is None

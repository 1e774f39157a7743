"""The transparency notice and record: built from deployment reports, valid against their versioned
schemas, empty periods included, and free of anything personal or biometric."""

import json
from datetime import UTC, datetime

import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import deployments, transparency

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PERIOD = transparency.Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def _report(
    deployment_id="dep-0123456789abcdef", start=T0, faces=31_000, alerts=4, false_alerts=1,
    state=pb.DEPLOYMENT_STATE_CLOSED,
):  # fmt: skip
    report = pb.DeploymentReport(
        deployment_id=deployment_id, name="Op Harbour", purpose="find John Q. Wanted, PNC 12/345", location="High St",
        authorising_officer="Supt. A. Example", where="crime_hotspot", state=state,
        authorisation="urgent, ratified in writing by Ch Insp. Other", threshold=0.69, threshold_floor=0.69,
        model_id="sface-2021dec", watchlist_images=120, watchlist_subjects=110, faces_scanned=faces,
        outcomes=pb.AlertOutcomes(alerts=alerts, true_alerts=alerts - false_alerts, false_alerts=false_alerts,
                                  engaged=2, arrests=1),
        false_alerts_per_face_scanned=pb.RateEstimate(count=false_alerts, total=faces, rate=false_alerts / faces,
                                                      lower_95=0.0, upper_95=0.001),
        false_alerts_per_alert=pb.RateEstimate(count=false_alerts, total=alerts, rate=false_alerts / alerts,
                                               lower_95=0.0, upper_95=0.7),
        watchlist_categories={"wanted": 100, "missing": 20},
        predicted_false_alerts=pb.FalseAlertPrediction(watchlist_size=120, per_face=1e-6, expected=0.031,
                                                       expected_lower_95=0.0, expected_upper_95=2.4),
        equity=pb.EquityReport(groups=[pb.PerceivedGroupFigures(dimension="ethnicity", group="IC3", true_alerts=2,
                                                                false_alerts=1, reference_share=0.042, p_value=0.12)]),
    )  # fmt: skip
    report.start.FromDatetime(start)
    report.end.FromDatetime(start.replace(hour=17))
    return report


def test_the_record_sums_deployments_per_month_and_in_total_and_validates():
    reports = [_report(), _report("dep-1111111111111111", T0.replace(day=20), faces=9_000, alerts=1, false_alerts=0)]
    record = transparency.record(reports, PERIOD, T0)
    assert [d["deployment_id"] for d in record["deployments"]] == ["dep-0123456789abcdef", "dep-1111111111111111"]
    totals = record["totals"]
    assert (totals["deployments"], totals["faces_scanned"], totals["alerts"], totals["false_alerts"]) == (
        2,
        40_000,
        5,
        1,
    )
    assert totals["false_alerts_per_face_scanned"]["total"] == 40_000 and totals["false_alerts_per_alert"]["count"] == 1
    assert [m["month"] for m in record["months"]] == ["2026-11"]
    assert record["deployments"][0]["predicted_false_alerts"]["expected"] == pytest.approx(0.031)
    assert record["deployments"][0]["authorisation"] == "urgent, ratified in writing"
    assert record["deployments"][0]["false_alerts_by_perceived_group"] == [
        {"dimension": "ethnicity", "group": "IC3", "true_alerts": 2, "false_alerts": 1, "reference_share": 0.042,
         "p_value": pytest.approx(0.12)}
    ]  # fmt: skip
    assert "| 2026-11-02 | Op Harbour |" in transparency.markdown(record)
    assert transparency.csv_text(record).splitlines()[0].startswith("deployment_id,operation,location")


def test_a_period_without_deployments_gives_a_valid_empty_record():
    outside = _report(start=datetime(2026, 10, 30, tzinfo=UTC))
    running = _report(state=pb.DEPLOYMENT_STATE_ACTIVE)
    record = transparency.record([outside, running], PERIOD, T0)
    assert record["deployments"] == [] and record["months"] == [] and record["totals"]["deployments"] == 0
    assert record["totals"]["false_alerts_per_alert"] == {
        "count": 0, "total": 0, "rate": 0.0, "lower_95": 0.0, "upper_95": 1.0
    }  # fmt: skip


def test_neither_document_holds_a_name_a_purpose_or_anything_biometric():
    deployment = pb.Deployment(
        deployment_id="dep-0123456789abcdef", name="Op Harbour", location="High St", where="crime_hotspot",
        purpose="find John Q. Wanted", authorising_officer="Supt. A. Example", threshold=0.69, model_id="sface-2021dec",
        enrolled_images=120, alert_public_key=b"k" * 32,
    )  # fmt: skip
    deployment.planned_start.FromDatetime(T0)
    deployment.planned_end.FromDatetime(T0.replace(hour=17))
    for document in (transparency.notice(deployment, _report(), T0), transparency.record([_report()], PERIOD, T0)):
        text = json.dumps(document)
        for personal in ("John Q. Wanted", "PNC 12/345", "Supt. A. Example", "Ch Insp. Other"):
            assert personal not in text
        assert transparency.markdown(document) and transparency.csv_text(document)


def test_a_document_that_breaks_its_schema_is_refused_naming_the_field():
    record = transparency.record([_report()], PERIOD, T0)
    record["deployments"][0]["subject_ids"] = ["S-1042"]
    with pytest.raises(transparency.TransparencyError, match="deployments/0: Additional properties"):
        transparency.validated(record, transparency.RECORD_SCHEMA)


def test_the_notice_and_the_report_say_how_the_threshold_was_derived():
    point = pb.OperatingPoint(
        entries=104, budget=1 / 1000, derived_threshold=0.625, bound_by="budget", group="lfw sex_image_afifi=F",
        predicted_fpir_upper=9.6e-4, per_pass_ratio_upper=8.05, curve_version="9fe39bda3dc5", equitability_floor=0.62,
        threshold_source="derived", predicted_recall=pb.RateEstimate(count=17, total=17, rate=1.0, lower_95=0.82,
                                                                     upper_95=1.0),
    )  # fmt: skip
    deployment = pb.Deployment(
        deployment_id="dep-0123456789abcdef", name="Op Harbour", location="High St", where="crime_hotspot",
        threshold=0.625, model_id="sface-2021dec", enrolled_images=104, operating_point=point,
    )  # fmt: skip
    deployment.planned_start.FromDatetime(T0)
    deployment.planned_end.FromDatetime(T0.replace(hour=17))
    notice = transparency.notice(deployment, _report(), T0)  # validated against its schema
    assert notice["operating_point"] == {
        "entries": 104, "false_alert_budget": 1 / 1000, "derived_threshold": 0.625, "threshold_source": "derived",
        "bound_by": "budget", "group": "lfw sex_image_afifi=F", "predicted_false_alerts_per_face_upper": 9.6e-4,
        "curve_version": "9fe39bda3dc5", "predicted_recall": {"rate": 1.0, "lower_95": 0.82, "upper_95": 1.0},
    }  # fmt: skip
    text = transparency.markdown(notice)
    assert "at most 1 in 1,000 faces scanned falsely alerted, for a watchlist of 104 entries" in text
    assert "about 100% (95%: 82%-100%) of listed people" in text

    report = deployments.plain(pb.DeploymentReport(
        deployment_id="dep-0123456789abcdef", name="Op Harbour", threshold=0.625, operating_point=point,
        outcomes=pb.AlertOutcomes(true_alerts=3),
    ))  # fmt: skip
    rows = deployments._operating_rows(report.get("operating_point"), 3)
    assert "0.625 for 104 entries under a budget of 1 in 1,000 faces (set by the budget" in rows[0]
    assert (
        "| recall per pass predicted / observed | 100% (95%: 82%-100%, 17 of 17 calibration passes) / 3 true" in rows[1]
    )

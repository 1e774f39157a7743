"""`lfr alert list|get` shows only alerts signed by their deployment's alert key, each with its runner-up."""

import json

from lfr.v1 import alerts_pb2, common_pb2
from lfr_cli.control_room import _print, genuine
from lfr_platform.signing import new_alert_key, sign_alert


def test_alerts_not_signed_by_their_deployment_are_dropped_and_named(capsys):
    keys = {"dep-a": new_alert_key(), "dep-b": new_alert_key()}
    alerts = []
    for deployment_id, alert_id, signer in (
        ("dep-a", "a-1", "dep-a"),
        ("dep-b", "b-1", "dep-a"),
        ("dep-b", "b-2", "dep-b"),
    ):
        camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
        alert = alerts_pb2.AlertRaised(alert_id=alert_id, revision=1, camera=camera, subject_id="S-1")
        sign_alert(keys[signer][0], alert)
        alerts.append(alert)

    def public_key(deployment_id: str) -> bytes:
        return keys[deployment_id][1]

    assert [a.alert_id for a in genuine(alerts, public_key)] == ["a-1", "b-2"]
    assert "dropped alert 'b-1' revision 1: not signed by its deployment's alert key" in capsys.readouterr().err


def _lookalike(held: bool) -> alerts_pb2.AlertRaised:
    camera = common_pb2.CameraRef(deployment_id="dep-a", van_id="van-1", camera_id="cam-1")
    return alerts_pb2.AlertRaised(
        alert_id="a-1", revision=1, camera=camera, subject_id="S-1", score=0.73, threshold=0.69,
        state=alerts_pb2.ALERT_STATE_RAISED, runner_up_subject_id="S-2", runner_up_score=0.71, margin=0.02,
        held_for_supervisor=held, hold_reason="runner-up S-2 scores 0.710, within 0.020 of 0.730" if held else "",
    )  # fmt: skip


def test_alert_list_shows_the_runner_up_the_margin_and_the_hold(capsys):
    _print([_lookalike(held=True)], as_json=False)
    table = capsys.readouterr().out
    assert "S-2 0.710" in table and "0.020" in table and "held for a supervisor" in table
    assert "a-1 held for a supervisor: runner-up S-2 scores 0.710, within 0.020 of 0.730" in table
    _print([_lookalike(held=False)], as_json=True)
    shown = json.loads(capsys.readouterr().out)
    assert (shown["runner_up_subject_id"], shown["runner_up_score"], shown["margin"]) == ("S-2", 0.71, 0.02)
    assert shown["held_for_supervisor"] is False and shown["hold_reason"] == ""


def test_an_alert_without_another_subject_on_the_watchlist_has_no_runner_up_nor_margin(capsys):
    alert = _lookalike(held=False)
    alert.ClearField("runner_up_subject_id")
    alert.ClearField("runner_up_score")
    alert.ClearField("margin")
    _print([alert], as_json=True)
    shown = json.loads(capsys.readouterr().out)
    assert (shown["runner_up_subject_id"], shown["runner_up_score"], shown["margin"]) == ("", None, None)


def test_lfr_alert_adjudicate_takes_the_perceived_groups_and_the_report_shows_them_per_group():
    import argparse

    from lfr.v1 import deployments_pb2
    from lfr_cli.control_room import add_parser
    from lfr_cli.deployments import plain, report_markdown

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"), lambda p: p.add_argument("--json", action="store_true"))
    args = parser.parse_args(
        ["alert", "adjudicate", "a-1", "--outcome", "false", "--officer", "PC 1", "--perceived-ethnicity", "IC3"]
    )
    assert (args.perceived_ethnicity, args.perceived_sex) == ("IC3", "")

    equity = deployments_pb2.EquityReport(
        groups=[
            deployments_pb2.PerceivedGroupFigures(
                dimension="ethnicity", group="IC3", true_alerts=1, false_alerts=9, reference_share=0.042,
                p_value=3.2e-11, disparity=True,
            ),
            deployments_pb2.PerceivedGroupFigures(dimension="ethnicity", group="IC9", false_alerts=2),
        ],
        false_alerts_tested={"ethnicity": 9, "sex": 4},
        p_value_limit=0.001,
        min_false_alerts=10,
    )  # fmt: skip
    data = plain(equity)
    assert data["groups"][1]["reference_share"] is None and data["groups"][1]["p_value"] is None  # unset, not 0
    rows = report_markdown(_report(data)).splitlines()
    assert "| ethnicity IC3 | 1 | 9 | 100.0% | 4.2% | 3.2e-11 | **disparity** |" in rows
    assert "| ethnicity IC9 | 0 | 2 |  | not tested |  |  |" in rows
    assert "False alerts tested: ethnicity 9, sex 4 (fewer than 10 for ethnicity, sex: too few to conclude)." in rows


def _report(equity: dict) -> dict:
    rate = {"count": 0, "total": 0, "rate": 0.0, "lower_95": 0.0, "upper_95": 1.0}
    outcomes = dict.fromkeys(
        ("alerts", "true_alerts", "false_alerts", "undetermined", "unadjudicated", "engaged", "not_engaged",
         "arrests", "no_further_action", "safeguarding", "other_outcomes", "held"),
        0,
    )  # fmt: skip
    return {
        "name": "Op", "deployment_id": "dep-1", "state": "closed", "start": "", "end": "", "location": "x",
        "where": "crime_hotspot", "purpose": "p", "authorising_officer": "a", "authorisation": "written",
        "threshold": 0.69, "threshold_floor": 0.69, "threshold_override_reason": "", "model_id": "m",
        "watchlist_images": 1, "watchlist_subjects": 1, "faces_scanned": 0, "outcomes": outcomes,
        "false_alerts_per_face_scanned": rate, "false_alerts_per_alert": rate, "vans": [], "generated_at": "now",
        "equity": equity,
    }  # fmt: skip

"""`lfr alert list|get` shows only alerts signed by their deployment's alert key."""

from lfr.v1 import alerts_pb2, common_pb2
from lfr_cli.control_room import genuine
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

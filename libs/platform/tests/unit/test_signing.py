"""Alert revisions signed by their deployment: what a reader accepts and why it refuses the rest."""

from lfr.v1 import alerts_pb2, common_pb2
from lfr_platform.signing import Revisions, new_alert_key, sign_alert, verify_alert


def _alert(revision: int = 1, subject: str = "S-1") -> alerts_pb2.AlertRaised:
    camera = common_pb2.CameraRef(deployment_id="dep-a", van_id="van-1", camera_id="cam-1")
    return alerts_pb2.AlertRaised(alert_id="a-1", revision=revision, camera=camera, subject_id=subject, score=0.8)


def test_a_signed_revision_verifies_and_any_change_breaks_it():
    private, public = new_alert_key()
    alert = _alert()
    sign_alert(private, alert)
    assert verify_alert(public, alert)
    for change in (
        lambda a: setattr(a, "subject_id", "FORGED"),
        lambda a: setattr(a, "revision", 999),
        lambda a: a.captured_at.FromSeconds(1),
        lambda a: setattr(a, "probe_crop", b"\xff\xd8"),
    ):
        altered = alerts_pb2.AlertRaised()
        altered.CopyFrom(alert)
        change(altered)
        assert not verify_alert(public, altered)
    assert not verify_alert(new_alert_key()[1], alert)  # another deployment's key
    assert not verify_alert(public, _alert())  # unsigned
    assert not verify_alert(b"short", alert)


def test_a_reader_shows_genuine_revisions_newer_than_the_one_shown():
    private, public = new_alert_key()
    revisions = Revisions(kept=2)
    first, second = _alert(1), _alert(2)
    sign_alert(private, first)
    sign_alert(private, second)
    assert revisions.check(public, first) is None
    assert revisions.check(public, second) is None
    assert revisions.check(public, first) == Revisions.OUT_OF_ORDER  # older, replayed
    assert revisions.check(public, second) == Revisions.OUT_OF_ORDER  # repeated
    assert revisions.check(None, second) == Revisions.FORGED  # no key known for its deployment
    forged = _alert(3, "FORGED")
    sign_alert(new_alert_key()[0], forged)
    assert revisions.check(public, forged) == Revisions.FORGED

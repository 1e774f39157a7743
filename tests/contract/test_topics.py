"""The topic catalogue is the contract between the services: names, types, keys, retention."""

from lfr.v1 import common_pb2, deadletter_pb2, frames_pb2
from lfr_contracts import (
    ALERTS_RAISED,
    AUDIT_RECORDED,
    FACES_DETECTED,
    FACES_EMBEDDED,
    FRAMES_CAPTURED,
    MATCHES_FOUND,
    PIPELINE_TOPICS,
    Retention,
    camera_key,
    dead_letter_topic,
)
from lfr_contracts.topics import STAGE_INPUTS, MalformedMessage
from lfr_platform.kafka import topic_configs
from lfr_platform.settings import PlatformSettings


def test_topics_are_versioned_and_past_tense():
    for topic in PIPELINE_TOPICS:
        assert topic.base_name.endswith(".v1")
    assert FRAMES_CAPTURED.message is frames_pb2.FrameCaptured


def test_topics_of_people_not_on_the_watchlist_are_biometric_and_short_lived():
    assert {t.retention for t in (FRAMES_CAPTURED, FACES_DETECTED, FACES_EMBEDDED)} == {Retention.BIOMETRIC}
    assert MATCHES_FOUND.retention is ALERTS_RAISED.retention is Retention.OPERATIONAL
    assert AUDIT_RECORDED.retention is Retention.AUDIT
    configs = topic_configs(PlatformSettings(biometric_retention_s=60), FRAMES_CAPTURED)
    # segment.ms must not exceed the retention, or Kafka keeps closed-segment data far longer.
    assert configs["retention.ms"] == "60000" and configs["segment.ms"] == "60000"
    assert topic_configs(PlatformSettings(), AUDIT_RECORDED)["retention.ms"] == "-1"


def test_every_stage_has_a_dead_letter_topic_as_short_lived_as_its_input():
    for stage, source in STAGE_INPUTS.items():
        dlq = dead_letter_topic(stage)
        assert dlq in PIPELINE_TOPICS
        assert dlq.message is deadletter_pb2.DeadLetter
        assert dlq.retention is source.retention


def test_records_are_keyed_by_camera():
    ref = common_pb2.CameraRef(deployment_id="dep-1", van_id="van-2", camera_id="cam-3")
    assert camera_key(ref) == b"dep-1/van-2/cam-3"


def test_malformed_bytes_are_refused_with_the_type_expected():
    for bad in (b"", b"\xff\xff\xff"):
        try:
            FRAMES_CAPTURED.decode(bad)
        except MalformedMessage as exc:
            assert "FrameCaptured" in str(exc) or "empty" in str(exc)
        else:
            raise AssertionError("accepted garbage")


def test_prefix_namespaces_names():
    assert FRAMES_CAPTURED.name("t1.") == "t1.frames.captured.v1"


def test_metric_constants_never_share_a_name_with_topic_constants():
    """`FACES_EMBEDDED` is the topic; the counter of faces embedded is `FACES_EMBEDDED_TOTAL`."""
    import lfr_contracts
    from lfr_platform import metrics

    def constants(module) -> set[str]:
        return {name for name in dir(module) if name.isupper()}

    assert not constants(lfr_contracts) & constants(metrics)

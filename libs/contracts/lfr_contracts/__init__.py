"""Contracts shared by every service: the generated protobuf messages and the topic catalogue.

The messages themselves are generated from `protos/lfr/v1/*.proto` into the `lfr.v1` package
(`make protos`); this package adds what protobuf cannot say: which topic carries which message,
how it is keyed, and how long it may be kept.
"""

from lfr_contracts.topics import (
    ALERTS_ADJUDICATED,
    ALERTS_RAISED,
    AUDIT_RECORDED,
    FACES_DETECTED,
    FACES_EMBEDDED,
    FRAMES_CAPTURED,
    MATCHES_FOUND,
    PIPELINE_TOPICS,
    WATCHLIST_CHANGED,
    Retention,
    Topic,
    camera_key,
    dead_letter_topic,
    deployment_key,
)

__all__ = [
    "ALERTS_ADJUDICATED",
    "ALERTS_RAISED",
    "AUDIT_RECORDED",
    "FACES_DETECTED",
    "FACES_EMBEDDED",
    "FRAMES_CAPTURED",
    "MATCHES_FOUND",
    "PIPELINE_TOPICS",
    "Retention",
    "Topic",
    "WATCHLIST_CHANGED",
    "camera_key",
    "dead_letter_topic",
    "deployment_key",
]

"""The topic catalogue: each topic's name, message type, key and retention class, bound once.

Services never spell a topic name; they take a `Topic` from here and resolve its name with the
deployment-wide prefix (`Topic.name(prefix)`), which tests use to get topics of their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from lfr.v1 import (
    alerts_pb2,
    audit_pb2,
    common_pb2,
    deadletter_pb2,
    embeddings_pb2,
    faces_pb2,
    frames_pb2,
    matches_pb2,
    watchlist_pb2,
)

M = TypeVar("M", bound=Message)


class Retention(enum.Enum):
    """How long a topic's records may live; the seconds for each class are settings."""

    # Biometric data of people who are not on the watchlist: deleted once processed (default 60 s).
    BIOMETRIC = "biometric"
    # Matches and alerts: kept for adjudication and review (default 7 days).
    OPERATIONAL = "operational"
    # The audit trail (default: never deleted by the broker).
    AUDIT = "audit"
    # The watchlists as a log (sealed entries): kept longer than the longest deployment, so that a
    # match replica started at any time can rebuild every open watchlist from it.
    WATCHLIST = "watchlist"


class MalformedMessage(ValueError):
    """A record's value is not a valid encoding of the topic's message type."""


@dataclass(frozen=True)
class Topic(Generic[M]):
    base_name: str
    message: type[M]
    retention: Retention
    description: str

    def name(self, prefix: str = "") -> str:
        return f"{prefix}{self.base_name}"

    def decode(self, data: bytes | None) -> M:
        if not data:
            raise MalformedMessage(f"empty record on {self.base_name}")
        msg = self.message()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RuntimeError) as exc:
            raise MalformedMessage(f"not a {self.message.DESCRIPTOR.full_name}: {exc}") from exc
        return msg

    def encode(self, msg: M) -> bytes:
        if not isinstance(msg, self.message):
            raise TypeError(f"{self.base_name} carries {self.message.__name__}, not {type(msg).__name__}")
        return msg.SerializeToString()


def camera_key(camera: common_pb2.CameraRef) -> bytes:
    """The record key of every pipeline topic: one camera's records stay in one partition, in order."""
    return f"{camera.deployment_id}/{camera.van_id}/{camera.camera_id}".encode()


FRAMES_CAPTURED = Topic(
    "frames.captured.v1",
    frames_pb2.FrameCaptured,
    Retention.BIOMETRIC,
    "sampled camera frames, sealed JPEG",
)
FACES_DETECTED = Topic(
    "faces.detected.v1",
    faces_pb2.FacesDetected,
    Retention.BIOMETRIC,
    "identifiable faces per frame: sealed crop, 5 landmarks, score, quality",
)
FACES_EMBEDDED = Topic(
    "faces.embedded.v1",
    embeddings_pb2.FacesEmbedded,
    Retention.BIOMETRIC,
    "sealed face vectors and crops, with the model id",
)
MATCHES_FOUND = Topic(
    "matches.found.v1",
    matches_pb2.MatchFound,
    Retention.OPERATIONAL,
    "faces that scored at or above the deployment's threshold",
)
ALERTS_RAISED = Topic(
    "alerts.raised.v1",
    alerts_pb2.AlertRaised,
    Retention.OPERATIONAL,
    "control-room alerts, one per subject per camera per window, revised as matches fold in",
)
ALERTS_ADJUDICATED = Topic(
    "alerts.adjudicated.v1",
    alerts_pb2.AlertAdjudicated,
    Retention.OPERATIONAL,
    "every officer decision on an alert: adjudication, engagement, final outcome, corrections",
)
AUDIT_RECORDED = Topic(
    "audit.recorded.v1",
    audit_pb2.AuditRecorded,
    Retention.AUDIT,
    "deployment lifecycle events with the acting identity",
)

WATCHLIST_CHANGED = Topic(
    "watchlist.changed.v1",
    watchlist_pb2.WatchlistChanged,
    Retention.WATCHLIST,
    "every change to a watchlist (created, sealed entries added or removed, dropped at close), read whole by "
    "every match replica",
)


def deployment_key(deployment_id: str) -> bytes:
    """The record key of the watchlist log: one deployment's changes stay in one partition, in order."""
    return deployment_id.encode()


# What each stage consumes; its dead-letter topic inherits the input's retention because it
# holds the input's records as they were.
STAGE_INPUTS: dict[str, Topic] = {
    "detect": FRAMES_CAPTURED,
    "embed": FACES_DETECTED,
    "match": FACES_EMBEDDED,
    "alert": MATCHES_FOUND,
}


def dead_letter_topic(stage: str) -> Topic[deadletter_pb2.DeadLetter]:
    return Topic(
        f"{stage}.deadletter.v1",
        deadletter_pb2.DeadLetter,
        STAGE_INPUTS[stage].retention,
        f"records {stage} could not process, with the reason",
    )


PIPELINE_TOPICS: tuple[Topic, ...] = (
    FRAMES_CAPTURED,
    FACES_DETECTED,
    FACES_EMBEDDED,
    MATCHES_FOUND,
    ALERTS_RAISED,
    ALERTS_ADJUDICATED,
    AUDIT_RECORDED,
    WATCHLIST_CHANGED,
    *(dead_letter_topic(stage) for stage in STAGE_INPUTS),
)

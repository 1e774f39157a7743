"""The audit trail: every lifecycle event and officer decision on audit.recorded.v1, with the acting
identity. An event that cannot reach the broker is not lost: it is kept in the outbox and re-sent.
"""

from __future__ import annotations

import logging
import uuid

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import audit_pb2
from lfr_contracts import AUDIT_RECORDED
from lfr_platform.outbox import Outbox, OutboxRecord

log = logging.getLogger(__name__)

SYSTEM = "system"


def audit_event(event: str, deployment_id: str, actor: str, role: str, **details) -> audit_pb2.AuditRecorded:
    at = Timestamp()
    at.GetCurrentTime()
    body = Struct()
    body.update({k: v for k, v in details.items() if v is not None})
    return audit_pb2.AuditRecorded(
        event_id=uuid.uuid4().hex,
        event=event,
        deployment_id=deployment_id,
        actor=actor,
        role=role,
        at=at,
        details=body,
    )


class AuditLog:
    def __init__(self, outbox: Outbox, topic_prefix: str) -> None:
        self.outbox = outbox
        self.topic = AUDIT_RECORDED.name(topic_prefix)

    def as_record(self, message: audit_pb2.AuditRecorded) -> OutboxRecord:
        return OutboxRecord(self.topic, message.deployment_id.encode(), AUDIT_RECORDED.encode(message))

    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> audit_pb2.AuditRecorded:
        message = audit_event(event, deployment_id, actor, role, **details)
        await self.outbox.send_or_keep(self.as_record(message))
        log.info("audit %s", event, extra={"deployment_id": deployment_id, "actor": actor})
        return message

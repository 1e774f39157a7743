"""The audit trail: every lifecycle event and officer decision on audit.recorded.v1, with the acting
identity. An event that cannot reach the broker is not lost: it is kept in the outbox and re-sent.
Each event is chained when it is produced (lfr_platform.audit_chain), so that anyone can check that
nobody edited the trail (`lfr audit verify`, docs/audit.md).
"""

from __future__ import annotations

import logging
import uuid

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import audit_pb2
from lfr_contracts import AUDIT_RECORDED
from lfr_platform.audit_chain import AuditChain, chain_keys
from lfr_platform.clock import Clock, system
from lfr_platform.logs import ID_LIMIT, printable
from lfr_platform.outbox import Outbox, OutboxRecord

log = logging.getLogger(__name__)

SYSTEM = "system"


# An audit event keeps ids to logs.ID_LIMIT characters and a detail to logs.FIELD_LIMIT.


def _bounded(value):
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value[:100]]
    if isinstance(value, dict):
        return {printable(k, ID_LIMIT): _bounded(v) for k, v in list(value.items())[:100]}
    return value


def audit_event(event: str, deployment_id: str, actor: str, role: str, **details) -> audit_pb2.AuditRecorded:
    """An audit event, every field bounded and printable (control characters escaped)."""
    at = Timestamp()
    at.GetCurrentTime()
    body = Struct()
    body.update({k: _bounded(v) for k, v in details.items() if v is not None})
    return audit_pb2.AuditRecorded(
        event_id=uuid.uuid4().hex,
        event=event,
        deployment_id=printable(deployment_id, ID_LIMIT),
        actor=printable(actor, ID_LIMIT),
        role=printable(role, ID_LIMIT),
        at=at,
        details=body,
    )


class AuditLog:
    def __init__(
        self, outbox: Outbox, topic_prefix: str, clock: Clock = system, writer_key: bytes | None = None
    ) -> None:
        """`writer_key`: the audit key's private half (lfr_platform.audit_roots.audit_key), which signs
        every entry; a service always gives it, so that a verifier with the published key can tell its
        entries from ones anybody who can write the topic produced."""
        self.outbox = outbox
        self.topic = AUDIT_RECORDED.name(topic_prefix)
        # The outbox produces this topic's records through the chain, whichever path sends them.
        self.chain = AuditChain(
            outbox.client,
            chain_keys(outbox.stream, topic_prefix),
            send_timeout_s=outbox.send_timeout_s,
            clock=clock,
            writer_key=writer_key,
        )
        outbox.senders[self.topic] = self.chain.send

    def add(self, pipe, event: str, deployment_id: str, actor: str, role: str, **details) -> None:
        """The event into the outbox on the caller's Redis transaction: kept if and only if the change
        it records commits (sent by the outbox's next drain)."""
        self.outbox.add(pipe, self.as_record(audit_event(event, deployment_id, actor, role, **details)))

    def as_record(self, message: audit_pb2.AuditRecorded) -> OutboxRecord:
        return OutboxRecord(self.topic, message.deployment_id.encode(), AUDIT_RECORDED.encode(message))

    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> audit_pb2.AuditRecorded:
        message = audit_event(event, deployment_id, actor, role, **details)
        await self.outbox.send_or_keep(self.as_record(message))
        log.info("audit %s", event, extra={"deployment_id": deployment_id, "actor": actor})
        return message

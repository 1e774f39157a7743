"""The audit trail: every lifecycle event on audit.recorded.v1, with the acting identity.

An event that cannot reach the broker is not lost: it is kept in Redis and re-sent by the janitor.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import audit_pb2
from lfr_contracts import AUDIT_RECORDED
from lfr_match.deployments.store import DeploymentStore

log = logging.getLogger(__name__)

SYSTEM = "system"


class AuditLog:
    def __init__(
        self,
        producer: AIOKafkaProducer | None,
        store: DeploymentStore,
        topic_prefix: str,
        send_timeout_s: float = 10.0,
    ) -> None:
        # Set once the producer has started (match starts it before serving any call).
        self.producer = producer
        self.store = store
        self.topic = AUDIT_RECORDED.name(topic_prefix)
        self.send_timeout_s = send_timeout_s

    async def record(self, event: str, deployment_id: str, actor: str, role: str, **details) -> audit_pb2.AuditRecorded:
        at = Timestamp()
        at.GetCurrentTime()
        body = Struct()
        body.update({k: v for k, v in details.items() if v is not None})
        message = audit_pb2.AuditRecorded(
            event_id=uuid.uuid4().hex,
            event=event,
            deployment_id=deployment_id,
            actor=actor,
            role=role,
            at=at,
            details=body,
        )
        payload = AUDIT_RECORDED.encode(message)
        try:
            if self.producer is None:
                raise KafkaError("audit producer not started")
            await asyncio.wait_for(
                self.producer.send_and_wait(self.topic, payload, key=deployment_id.encode()),
                self.send_timeout_s,
            )
        except (KafkaError, TimeoutError) as exc:
            log.error("audit event %s kept for re-sending: %s", event, exc, extra={"deployment_id": deployment_id})
            await self.store.push_pending_audit(payload)
        log.info("audit %s", event, extra={"deployment_id": deployment_id, "actor": actor})
        return message

    async def resend_pending(self) -> int:
        if self.producer is None:
            return 0
        pending = await self.store.pending_audit()
        sent = 0
        for payload in pending:
            message = AUDIT_RECORDED.decode(payload)
            try:
                await asyncio.wait_for(
                    self.producer.send_and_wait(self.topic, payload, key=message.deployment_id.encode()),
                    self.send_timeout_s,
                )
            except (KafkaError, TimeoutError):
                break
            sent += 1
        if sent:
            await self.store.drop_pending_audit(sent)
            log.info("re-sent %d audit event(s)", sent)
        return sent

"""The live side of the page: alert revisions read from alerts.raised.v1, and the state of what the
page depends on (the broker, the AlertService), fanned out to every open event stream.

The topic is read without a consumer group, from its end when the feed (re)connects: every console
replica sees every revision, and what was raised while the feed was away the page reloads from the
AlertService when it hears the feed is back.

Nothing read from the topic is shown unless it is an alert: a revision must carry its deployment's
signature (lfr_platform.signing; the public key from the deployment's record) and be newer than the
revision of that alert already shown. A forged, altered, repeated or older revision is dropped,
counted (`lfr_alert_revisions_refused_total{reason}`) and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from lfr_contracts import ALERTS_RAISED
from lfr_contracts.topics import MalformedMessage
from lfr_contracts.views import alert_json
from lfr_platform import metrics
from lfr_platform.kafka import new_consumer
from lfr_platform.logs import printable
from lfr_platform.settings import PlatformSettings
from lfr_platform.signing import Revisions

log = logging.getLogger(__name__)

# Events a slow browser has not taken yet; past this it is sent a "resync" and reloads its list.
_QUEUE_EVENTS = 200


@dataclass(frozen=True)
class Event:
    kind: str  # "alert", "status" or "resync"
    data: dict

    def encode(self) -> bytes:
        return f"event: {self.kind}\ndata: {json.dumps(self.data)}\n\n".encode()


class Subscription:
    def __init__(self, session_id: str = "") -> None:
        self.session_id = session_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_QUEUE_EVENTS)
        self.ended = asyncio.Event()  # its session ended: the stream closes at once

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Drop what is queued: the page reloads everything from the AlertService instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Event("resync", {}))


class Feed:
    def __init__(
        self, platform: PlatformSettings, public_key: Callable[[str], Awaitable[bytes | None]] | None = None
    ) -> None:
        """`public_key(deployment_id)`: the key that verifies the deployment's alert revisions."""
        self.platform = platform
        self.public_key = public_key
        self.status = {"broker": False, "alert_service": False}
        self._subscriptions: set[Subscription] = set()
        self._keys: dict[str, bytes] = {}
        self._revisions = Revisions()

    def subscribe(self, session_id: str = "") -> Subscription:
        subscription = Subscription(session_id)
        self._subscriptions.add(subscription)
        subscription.offer(Event("status", dict(self.status)))
        return subscription

    def end_session(self, session_id: str) -> int:
        """Close every stream of a session that ended (signed out here, or on another replica)."""
        ended = [s for s in self._subscriptions if s.session_id == session_id]
        for subscription in ended:
            subscription.ended.set()
        return len(ended)

    async def trusted(self, alert) -> bool:
        """A genuine revision newer than the one shown: else dropped, counted and logged."""
        deployment_id = alert.camera.deployment_id
        key = self._keys.get(deployment_id)
        if key is None and self.public_key is not None:
            key = await self.public_key(deployment_id)
            if key is not None:
                self._keys[deployment_id] = key
        refused = self._revisions.check(key, alert)
        if refused == Revisions.FORGED:
            self._refuse(refused, alert, "not signed by its deployment's alert key")
        elif refused == Revisions.OUT_OF_ORDER:
            self._refuse(refused, alert, "not newer than the revision shown")
        return refused is None

    @staticmethod
    def _refuse(reason: str, alert, why: str) -> None:
        metrics.ALERT_REVISIONS_REFUSED.labels(reason).inc()
        log.warning(
            "alert revision dropped (%s): %s",
            reason,
            why,
            extra={"alert_id": printable(alert.alert_id), "revision": alert.revision},
        )

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    def _publish(self, event: Event) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def set_status(self, name: str, ok: bool, detail: str = "") -> None:
        if self.status[name] == ok:
            return
        self.status[name] = ok
        log.log(
            logging.INFO if ok else logging.WARNING,
            "%s %s",
            name,
            "reachable" if ok else "unreachable",
            extra={"detail": detail} if detail else None,
        )
        self._publish(Event("status", dict(self.status)))

    async def run(self) -> None:
        """Read the alert topic until cancelled; reconnect with backoff when the broker goes away."""
        delay = 0.5
        while True:
            consumer = None
            try:
                consumer = new_consumer(self.platform, None)
                await consumer.start()
                await self._follow(consumer)
            except (KafkaError, OSError) as exc:
                self.set_status("broker", False, str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if consumer is not None:
                    await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        topic = ALERTS_RAISED.name(self.platform.topic_prefix)
        while topic not in await consumer.topics():  # the services create it at start
            await asyncio.sleep(0.5)
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    try:
                        alert = ALERTS_RAISED.decode(record.value)
                    except MalformedMessage:
                        continue
                    if await self.trusted(alert):
                        self._publish(Event("alert", alert_json(alert)))

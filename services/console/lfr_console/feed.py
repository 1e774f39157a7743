"""The live side of the page: alert revisions read from alerts.raised.v1, and the state of what the
page depends on (the broker, the AlertService), fanned out to every open event stream.

The topic is read without a consumer group, from its end when the feed (re)connects: every console
replica sees every revision, and what was raised while the feed was away the page reloads from the
AlertService when it hears the feed is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from lfr_contracts import ALERTS_RAISED
from lfr_contracts.topics import MalformedMessage
from lfr_contracts.views import alert_json
from lfr_platform.kafka import new_consumer
from lfr_platform.settings import PlatformSettings

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
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_QUEUE_EVENTS)

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Drop what is queued: the page reloads everything from the AlertService instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Event("resync", {}))


class Feed:
    def __init__(self, platform: PlatformSettings) -> None:
        self.platform = platform
        self.status = {"broker": False, "alert_service": False}
        self._subscriptions: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        subscription.offer(Event("status", dict(self.status)))
        return subscription

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
                    self._publish(Event("alert", alert_json(alert)))

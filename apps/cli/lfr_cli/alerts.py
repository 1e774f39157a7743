"""Reading alerts.raised.v1: the control room's view, as JSON.

An alert is re-published with a higher revision each time a match folds into it; a reader keeps
the highest revision of each alert_id, and only genuine ones: each must carry its deployment's
signature (lfr_platform.signing), else it is dropped and counted.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.v1 import alerts_pb2
from lfr_contracts import ALERTS_RAISED
from lfr_contracts.topics import MalformedMessage
from lfr_platform.signing import Revisions


class AlertCollector:
    """Reads one deployment's alerts from the topic's start in a thread of its own; keeps the latest
    genuine revision of each (`refused`: how many were dropped, by reason)."""

    def __init__(self, bootstrap: str, topic_prefix: str, deployment_id: str, public_key: bytes, on_alert=None) -> None:
        self.bootstrap = bootstrap
        self.topic = ALERTS_RAISED.name(topic_prefix)
        self.deployment_id = deployment_id
        self.public_key = public_key
        self.on_alert = on_alert
        self.latest: dict[str, alerts_pb2.AlertRaised] = {}
        self.records = 0
        self.refused: Counter[str] = Counter()
        self._revisions = Revisions()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._consume()), name="alerts", daemon=True)

    def start(self, timeout_s: float = 30) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"could not read {self.topic} within {timeout_s}s")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def alerts(self) -> list[alerts_pb2.AlertRaised]:
        with self._lock:
            return sorted(self.latest.values(), key=lambda a: a.raised_at.ToNanoseconds())

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            while self.topic not in await consumer.topics():  # the services create it at start
                await asyncio.sleep(0.2)
            partitions = consumer.partitions_for_topic(self.topic) or set()
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            self._ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        try:
                            alert = ALERTS_RAISED.decode(record.value)
                        except MalformedMessage:
                            self.refused["malformed"] += 1
                            continue
                        if alert.camera.deployment_id != self.deployment_id:
                            continue
                        refused = self._revisions.check(self.public_key, alert)
                        with self._lock:
                            self.records += 1
                            if refused:
                                self.refused[refused] += 1
                                continue
                            self.latest[alert.alert_id] = alert
                        if self.on_alert:
                            self.on_alert(alert)
        finally:
            await consumer.stop()

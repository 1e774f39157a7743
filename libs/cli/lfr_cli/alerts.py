"""Reading alerts.raised.v1: the control room's view, as JSON.

An alert is re-published with a higher revision each time a match folds into it; a reader keeps
the highest revision of each alert_id.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.v1 import alerts_pb2
from lfr_contracts import ALERTS_RAISED


def _iso(ts) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return datetime.fromtimestamp(ts.ToNanoseconds() / 1e9, UTC).isoformat(timespec="milliseconds")


def _name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower() if value else ""


def _decision(step) -> dict | None:
    if not step.HasField("decision"):
        return None
    d = step.decision
    return {
        "officer": d.officer,
        "recorded_by": d.recorded_by,
        "role": d.role,
        "decided_at": _iso(d.decided_at),
        "note": d.note,
        "correction_reason": d.correction_reason,
    }


def alert_json(alert: alerts_pb2.AlertRaised) -> dict:
    """The alert without its probe crop: biometric images do not go to stdout or logs."""
    pb = alerts_pb2
    return {
        "alert_id": alert.alert_id,
        "revision": alert.revision,
        "deployment_id": alert.camera.deployment_id,
        "van_id": alert.camera.van_id,
        "camera_id": alert.camera.camera_id,
        "subject_id": alert.subject_id,
        "category": alert.category,
        "score": round(alert.score, 4),
        "threshold": round(alert.threshold, 4),
        "match_count": alert.match_count,
        "state": _name(pb.AlertState, alert.state, "ALERT_STATE_"),
        "outcome": _name(pb.AdjudicationOutcome, alert.adjudication.outcome, "ADJUDICATION_OUTCOME_"),
        "engaged": alert.engagement.engaged if alert.HasField("engagement") else None,
        "final_outcome": _name(pb.FinalOutcome, alert.resolution.outcome, "FINAL_OUTCOME_"),
        "final_detail": alert.resolution.detail,
        "captured_at": _iso(alert.captured_at),
        "raised_at": _iso(alert.raised_at),
        "last_seen_at": _iso(alert.last_seen_at),
        "updated_at": _iso(alert.updated_at),
        "latency_s": round((alert.raised_at.ToNanoseconds() - alert.captured_at.ToNanoseconds()) / 1e9, 3),
        "adjudication": _decision(alert.adjudication),
        "engagement": _decision(alert.engagement),
        "resolution": _decision(alert.resolution),
        "model_id": alert.model_id,
    }


class AlertCollector:
    """Reads the alert topic from its start in a thread of its own; keeps the latest revision of each."""

    def __init__(self, bootstrap: str, topic_prefix: str, on_alert=None) -> None:
        self.bootstrap = bootstrap
        self.topic = ALERTS_RAISED.name(topic_prefix)
        self.on_alert = on_alert
        self.latest: dict[str, alerts_pb2.AlertRaised] = {}
        self.records = 0
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
                        alert = ALERTS_RAISED.decode(record.value)
                        with self._lock:
                            self.records += 1
                            current = self.latest.get(alert.alert_id)
                            if current is None or alert.revision >= current.revision:
                                self.latest[alert.alert_id] = alert
                        if self.on_alert:
                            self.on_alert(alert)
        finally:
            await consumer.stop()

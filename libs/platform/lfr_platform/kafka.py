"""Kafka clients configured the one way the services use them, and topic creation.

Topics are created by the system with their retention class applied, because the retention of
biometric topics is a promise we make (docs/deletion.md), not something left to broker defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from lfr_contracts import Retention, Topic
from lfr_platform.settings import PlatformSettings

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36


def retention_ms(settings: PlatformSettings, retention: Retention) -> int:
    seconds = {
        Retention.BIOMETRIC: settings.biometric_retention_s,
        Retention.OPERATIONAL: settings.operational_retention_s,
        Retention.AUDIT: settings.audit_retention_s,
        Retention.WATCHLIST: settings.watchlist_retention_s,
    }[retention]
    return -1 if seconds < 0 else seconds * 1000


def topic_configs(settings: PlatformSettings, topic: Topic) -> dict[str, str]:
    ms = retention_ms(settings, topic.retention)
    configs = {
        "cleanup.policy": "delete",
        "retention.ms": str(ms),
        "max.message.bytes": str(settings.kafka_max_message_bytes),
    }
    if ms > 0:
        # Kafka deletes whole closed segments only: without a segment as short as the retention,
        # a 60 s retention would keep records for the default segment age of 7 days.
        configs["segment.ms"] = str(ms)
    return configs


def new_producer(settings: PlatformSettings, **overrides) -> AIOKafkaProducer:
    options = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        # Idempotence needs broker support the local broker lacks; at-least-once holds without it
        # because offsets are committed only after the outputs are acknowledged.
        "enable_idempotence": False,
        "max_request_size": settings.kafka_max_message_bytes,
        "linger_ms": 5,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def new_consumer(settings: PlatformSettings, group_id: str | None, *topics: str, **overrides) -> AIOKafkaConsumer:
    options = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_partition_fetch_bytes": settings.kafka_max_message_bytes,
        "fetch_max_bytes": max(settings.kafka_max_message_bytes, 50 * 1024 * 1024),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }
    if group_id and settings.kafka_group_instance_id:
        options["group_instance_id"] = settings.kafka_group_instance_id
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: PlatformSettings, topics: Iterable[Topic]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                t.name(settings.topic_prefix),
                settings.topic_partitions,
                settings.topic_replication_factor,
                topic_configs=topic_configs(settings, t),
            )
            for t in topics
            if t.name(settings.topic_prefix) not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created = []
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != _TOPIC_EXISTS:  # another service won the race: fine
                raise KafkaError(f"cannot create topic {name}: {message} (error {code})")
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


def _topic_errors(response) -> list[tuple[str, int, str | None]]:
    out = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        out.append((name, code, message))
    return out


async def start_with_retry(factory, what: str, max_delay_s: float = 10.0):
    """Build and start a Kafka client, retrying with backoff while the broker cannot be reached.

    A client whose start failed is closed and built anew: aiokafka clients are not restartable.
    """
    delay = 0.2
    while True:
        client = factory()
        try:
            await client.start()
            return client
        except (KafkaConnectionError, OSError) as exc:
            log.warning("cannot reach the broker for %s, retrying in %.1fs: %s", what, delay, exc)
            try:
                await client.stop()
            except Exception:  # noqa: BLE001 - it never started; nothing to save
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)

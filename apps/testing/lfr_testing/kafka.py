"""Producing to and reading from real topics in tests, without consumer groups."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from lfr_contracts import Topic
from lfr_platform.kafka import ensure_topics
from lfr_platform.settings import PlatformSettings


async def produce(
    platform: PlatformSettings,
    topic: Topic,
    records: list[tuple[bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send raw (key, value) records, each with `headers`, and wait for the broker's acknowledgements."""
    await ensure_topics(platform, [topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=platform.kafka_bootstrap_servers, max_request_size=platform.kafka_max_message_bytes
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic.name(platform.topic_prefix), value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read(
    platform: PlatformSettings, topic: Topic, *, count: int, timeout_s: float = 30.0, settle_s: float = 0.0
) -> list[ConsumerRecord]:
    """Records of a topic from its start until `count` arrived (then `settle_s` more, to catch extras).

    Fails when fewer than `count` arrive in time.
    """
    deadline = time.monotonic() + timeout_s  # every step is bounded: a test fails, it never hangs
    async with asyncio.timeout(timeout_s):
        await ensure_topics(platform, [topic])
    name = topic.name(platform.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=platform.kafka_bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=platform.kafka_max_message_bytes,
    )
    async with asyncio.timeout(timeout_s):
        await consumer.start()
    try:
        while name not in await consumer.topics():
            assert time.monotonic() < deadline, f"{name} is not in the broker's metadata after {timeout_s}s"
            await asyncio.sleep(0.1)
        partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        settle_until = None
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            now = time.monotonic()
            if len(records) >= count and settle_until is None:
                settle_until = now + settle_s
            if settle_until is not None and now >= settle_until:
                return records
            if now > deadline:
                raise AssertionError(f"{len(records)} record(s) on {name} within {timeout_s}s, {count} expected")
    finally:
        await consumer.stop()


def decoded(topic: Topic, records: list[ConsumerRecord]) -> list:
    return [topic.decode(r.value) for r in records]


# Where an image can start in a record: JPEG, PNG, and WebP/GIF for completeness.
_IMAGE_STARTS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF", b"GIF8")


def images_in(value: bytes) -> int:
    """How many images anywhere in these bytes decode (OpenCV, as anyone holding the bytes would)."""
    import cv2
    import numpy as np

    found = 0
    for start in _IMAGE_STARTS:
        at = value.find(start)
        while at >= 0:
            image = cv2.imdecode(np.frombuffer(value[at:], np.uint8), cv2.IMREAD_UNCHANGED)
            if image is not None and image.size:
                found += 1
            at = value.find(start, at + 1)
    return found


async def clear_images(
    bootstrap_servers: str, topic_prefix: str, timeout_s: float = 120.0
) -> dict[str, tuple[int, int]]:
    """Every topic of the prefix read from its start to its end, as an attacker reading the bus would:
    {topic: (records, records holding a decodable image)}."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, max_partition_fetch_bytes=64 * 1024 * 1024
    )
    found: dict[str, tuple[int, int]] = {}
    async with asyncio.timeout(timeout_s):
        await consumer.start()
        try:
            topics = sorted(t for t in await consumer.topics() if t.startswith(topic_prefix) and t[:2] != "__")
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            if not partitions:
                return found
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        seen, images = found.get(tp.topic, (0, 0))
                        found[tp.topic] = (seen + 1, images + bool(record.value and images_in(record.value)))
        finally:
            await consumer.stop()
    return found

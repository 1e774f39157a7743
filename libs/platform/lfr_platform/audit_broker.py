"""The audit topic as the chain's writers and its verifiers read it: the partition the producer gives
a key, and partitions read to their high-water marks as the fetches report them (ListOffsets
"latest" is wrong on the local broker: docs/decisions/0009-local-broker.md)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from lfr_platform.audit_trail import TrailRecord

READ_TIMEOUT_S = 30.0


class KafkaBroker:
    """The broker as the chain sees it, through the outbox's producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def partition_for(self, topic: str, key: bytes) -> int:
        partitions = sorted(await self.producer.partitions_for(topic))
        return DefaultPartitioner()(key, partitions, partitions)  # the producer's own choice for the key

    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> asyncio.Future:
        return await self.producer.send(topic, value, key=key, partition=partition)

    async def read(self, topic: str, partition: int, start: int | None) -> tuple[list[TrailRecord], int]:
        """The partition's records from `start` (None: its end) to its high-water mark, and the mark."""
        servers = [f"{host}:{port}" for host, port, _ in self.producer.client.hosts]
        records, marks = await read_topic(servers, topic, partitions=[partition], start=start)
        return records, marks.get(partition, 0)


async def read_topic(
    bootstrap_servers, topic: str, *, partitions: list[int] | None = None, start: int | None = 0,
    timeout_s: float = READ_TIMEOUT_S,
) -> tuple[list[TrailRecord], dict[int, int]]:  # fmt: skip
    """Records of `partitions` (None: all) from offset `start` (0: the first kept; None: about the
    end) to their high-water marks, and the marks; ([], {}) for a topic the broker does not know."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # an offset before the first kept one: from the first kept
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    records: list[TrailRecord] = []
    marks: dict[int, int] = {}
    async with asyncio.timeout(timeout_s):
        try:
            await consumer.start()
            if partitions is None:
                await consumer.topics()  # metadata of every topic, this one included if it exists
                partitions = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in partitions]
            if not tps:
                return [], {}
            consumer.assign(tps)
            if start is None:  # ListOffsets "latest" may say less than the end here, never more
                for tp, end in (await consumer.end_offsets(tps)).items():
                    consumer.seek(tp, max(0, end - 1))
            else:
                for tp in tps:
                    consumer.seek(tp, start)
            waiting = set(tps)
            while waiting:
                for tp, batch in (await consumer.getmany(*tps, timeout_ms=200)).items():
                    records += [TrailRecord(tp.partition, r.offset, r.key, r.value, r.timestamp) for r in batch]
                for tp in list(waiting):
                    mark = consumer.highwater(tp)
                    if mark is not None and await consumer.position(tp) >= mark:
                        marks[tp.partition] = mark
                        waiting.discard(tp)
        finally:
            await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset)), marks

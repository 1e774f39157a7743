"""`make bench` (brokers): the two local brokers side by side (docs/decisions/0009): time to accept
connections, produce rate of 150 KB records (a 720p frame) with acks=all, and a new consumer group's
wait for its first record. Medians of 3 runs (the full run's), each on a fresh broker."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from lfr_stack.infrastructure import BROKERS, start_broker
from lfr_stack.processes import stop_process

SIZE = 150_000


async def _measure(bootstrap: str, records: int) -> tuple[float, float]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("bench", 3, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20, linger_ms=5, acks="all")
    await producer.start()
    payload = os.urandom(SIZE)
    started = time.perf_counter()
    sent = [await producer.send("bench", payload, key=str(i % 9).encode()) for i in range(records)]
    await asyncio.gather(*sent)
    produce = records / (time.perf_counter() - started)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        "bench", bootstrap_servers=bootstrap, group_id="bench", auto_offset_reset="earliest",
        session_timeout_ms=6000, heartbeat_interval_ms=1000, max_partition_fetch_bytes=8 << 20,
    )  # fmt: skip
    started = time.perf_counter()
    await consumer.start()
    while not any((await consumer.getmany(timeout_ms=200)).values()):
        pass
    first = time.perf_counter() - started
    await consumer.stop()
    return produce, first


def run(records: int = 600, runs: int = 3) -> dict:
    figures = {}
    for kind in BROKERS:
        rows = []
        for _ in range(runs):
            folder = Path(tempfile.mkdtemp(prefix="lfr-broker-"))
            started = time.perf_counter()
            process, bootstrap = start_broker(folder, kind, folder / "data")
            ready = time.perf_counter() - started
            try:
                rows.append((ready, *asyncio.run(_measure(bootstrap, records))))
            finally:
                stop_process(process.pid)
        ready, produce, first = (statistics.median(column) for column in zip(*rows, strict=True))
        figures[kind] = {
            "ready_ms": round(ready * 1e3),
            "produce_records_per_s": round(produce),
            "produce_mb_per_s": round(produce * SIZE / 1e6),
            "first_record_of_a_new_group_s": round(first, 2),
        }
        print(f"  {kind}: {figures[kind]}")
    return figures

"""`make bench` (catch-up): how long a new match replica takes to rebuild its copy of a watchlist from
the watchlist log (docs/decisions/0011), at 10,000 and 200,000 entries, and how long after a close's
`dropped` change two replicas have deleted their copies and reported it.

On a fresh local broker (tansu) and Redis: one deployment record (lfr_platform.registry, as the
deployments service writes it), then N entries published to watchlist.changed.v1 one per record,
sealed, as enrolment publishes them (random unit vectors of 128 dimensions: the cost of reading,
unsealing and indexing does not depend on whose faces they are). A match replica (match's own
build(), on an empty folder) is then started and timed until its readiness says its copy has caught
up: read to the log's end, every entry in its embedded index, the HNSW index built.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lfr_contracts import PIPELINE_TOPICS, WATCHLIST_CHANGED, deployment_key
from lfr_match.app import build
from lfr_match.settings import MatchSettings
from lfr_platform import sealing
from lfr_platform.kafka import ensure_topics, new_producer
from lfr_platform.registry import RedisKeys, new_deployment_record, write_new_deployment
from lfr_platform.settings import PlatformSettings
from lfr_platform.signing import new_alert_key
from lfr_stack.infrastructure import start_broker, start_redis
from lfr_stack.processes import stop_process
from lfr_watchlist import Entry
from lfr_watchlist import log as changes

SIZES = (10_000, 200_000)


async def _publish(platform: PlatformSettings, deployment_id: str, key: bytes, n: int) -> float:
    rng = np.random.default_rng(7)
    producer = new_producer(platform, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        topic = WATCHLIST_CHANGED.name(platform.topic_prefix)
        await producer.send_and_wait(
            topic, WATCHLIST_CHANGED.encode(changes.created(deployment_id, 128, "sface-2021dec")),
            key=deployment_key(deployment_id),
        )  # fmt: skip
        pending = []
        for i in range(n):
            vector = rng.standard_normal(128).astype(np.float32)
            entry = Entry(
                f"00000000-0000-4000-8000-{i:012d}", vector / np.linalg.norm(vector), f"S{i}", "wanted",
                "bench", "bench", time.time(), f"{i:064x}",
            )  # fmt: skip
            change = changes.upserted(deployment_id, key, [entry])
            pending.append(
                await producer.send(topic, WATCHLIST_CHANGED.encode(change), key=deployment_key(deployment_id))
            )
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def _caught_up(shell) -> bool:
    return shell.health.report()["checks"]["watchlists"]["ok"]


async def _measure(root: Path, n: int) -> dict:
    broker, bootstrap = start_broker(root)
    redis_process, redis_url = start_redis(root)
    kek = root / "kek"
    kek.write_bytes(np.random.default_rng().bytes(32))
    platform = PlatformSettings(
        kafka_bootstrap_servers=bootstrap, redis_url=redis_url, key_encryption_key_file=kek, topic_partitions=3
    )
    redis = platform.redis_client()
    tasks, stop = [], asyncio.Event()
    try:
        await ensure_topics(platform, PIPELINE_TOPICS)
        now = time.time()
        deployment_id, key = "dep-bench000000000001", sealing.new_data_key()
        record = new_deployment_record(
            deployment_id, name="bench", purpose="bench", authorising_officer="bench", location="bench",
            planned_start=now - 1, planned_end=now + 3600, cameras=[], threshold=0.6, threshold_floor=0.6,
            threshold_override_reason="", model_id="sface-2021dec", watchlist_size_limit=n, created_at=now,
            created_by="bench", alert_public_key=new_alert_key()[1], where="intelligence_led",
        )  # fmt: skip
        keys = RedisKeys(platform.redis_prefix)
        await write_new_deployment(redis, keys, platform.key_wrap(), record, key, new_alert_key()[0], 3600)
        publish_s = await _publish(platform, deployment_id, key, n)
        catch_up = []
        for name in ("match-1", "match-2"):  # one after the other: each timed alone on the machine's cores
            replica = platform.model_copy(update={"replica_name": name})
            shell = build(replica, MatchSettings(http_port=0, data_dir=root / name, heartbeat_interval_s=1.0))
            started = time.perf_counter()
            tasks.append(asyncio.create_task(shell.run(stop)))
            while not _caught_up(shell):
                if tasks[-1].done():
                    tasks[-1].result()
                    raise RuntimeError(f"{name} ended before its copy caught up")
                await asyncio.sleep(0.01)
            catch_up.append(time.perf_counter() - started)
        # A close: the `dropped` change, then both replicas' reports of their deletion.
        producer = new_producer(platform)
        await producer.start()
        started = time.perf_counter()
        await producer.send_and_wait(
            WATCHLIST_CHANGED.name(platform.topic_prefix),
            WATCHLIST_CHANGED.encode(changes.dropped(deployment_id, "bench")),
            key=deployment_key(deployment_id),
        )
        await producer.stop()
        report_key = RedisKeys(platform.redis_prefix).index_copies(deployment_id)
        while await redis.hlen(report_key) < 2:
            await asyncio.sleep(0.01)
        dropped_s = time.perf_counter() - started
        return {
            "entries": n, "publish_s": round(publish_s, 1),
            "catch_up_s": [round(s, 2) for s in catch_up], "close_to_every_copy_deleted_s": round(dropped_s, 3),
        }  # fmt: skip
    finally:
        stop.set()  # each replica stops, closing its copy
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        stop_process(broker.pid)
        stop_process(redis_process.pid)


def run(sizes=SIZES) -> dict:
    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="lfr-catchup-") as tmp:
            figures = asyncio.run(_measure(Path(tmp), n))
        figures["catch_up_median_s"] = round(statistics.median(figures["catch_up_s"]), 2)
        print(
            f"new match replica, {n:,} entries on the log: caught up in {figures['catch_up_s']} s "
            f"(published in {figures['publish_s']} s); after a close, both copies deleted in "
            f"{figures['close_to_every_copy_deleted_s']} s"
        )
        out[str(n)] = figures
    return out


if __name__ == "__main__":
    import sys

    run(tuple(int(n) for n in sys.argv[1:]) or SIZES)

"""The shared stage runner against the real broker: commits, dead letters, retries, crashes."""

import asyncio

import pytest
import redis.exceptions
from aiokafka import AIOKafkaConsumer, TopicPartition

from lfr.v1 import common_pb2, frames_pb2
from lfr_contracts import FRAMES_CAPTURED, Retention, Topic, dead_letter_topic
from lfr_platform import metrics
from lfr_platform.http import Health
from lfr_platform.stage import Output, Rejected, StageRunner
from lfr_testing.kafka import decoded, produce, read

pytestmark = pytest.mark.integration

OUT = Topic("test.echoed.v1", frames_pb2.FrameCaptured, Retention.BIOMETRIC, "test output")


def _frame(sequence: int) -> bytes:
    camera = common_pb2.CameraRef(deployment_id="dep-x", van_id="van", camera_id="cam")
    return frames_pb2.FrameCaptured(camera=camera, sequence=sequence).SerializeToString()


class Echo:
    """Echoes frames; rejects sequence 13; raises on 66; `gate` holds a record until released."""

    input = FRAMES_CAPTURED

    def __init__(self, transient_failures: int = 0) -> None:
        self.transient_failures = transient_failures
        self.gate: asyncio.Event | None = None
        self.seen: list[int] = []

    async def handle(self, batch):
        if self.transient_failures:
            self.transient_failures -= 1
            raise redis.exceptions.ConnectionError("redis is restarting")
        outcomes = []
        for item in batch:
            sequence = item.message.sequence
            self.seen.append(sequence)
            if self.gate is not None:
                await self.gate.wait()
            if sequence == 66:
                raise ValueError("a bug in the handler")
            if sequence == 13:
                outcomes.append(Rejected("undecodable_frame", "thirteen"))
            else:
                outcomes.append([Output(OUT, item.record.key, item.message)])
        return outcomes


async def _committed(platform, group: str) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=platform.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(FRAMES_CAPTURED.name(platform.topic_prefix), 0))
    finally:
        await consumer.stop()


async def _run(runner: StageRunner):
    task = asyncio.create_task(runner.run())
    return task


async def _stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_outputs_are_published_and_then_offsets_committed(platform, namespace, eventually):
    await produce(platform, FRAMES_CAPTURED, [(b"k", _frame(i)) for i in range(3)])
    runner = StageRunner("detect", Echo(), platform, Health("kafka"), group_id=namespace)
    task = await _run(runner)
    try:
        out = decoded(OUT, await read(platform, OUT, count=3))
        assert [m.sequence for m in out] == [0, 1, 2]

        async def committed():
            assert await _committed(platform, namespace) == 3

        await eventually(committed)
    finally:
        await _stop(task)


async def test_bad_records_go_to_the_dead_letter_topic_with_reason_and_origin(platform, namespace):
    await produce(platform, FRAMES_CAPTURED, [(b"k", b"\xff\x00garbage"), (b"k", _frame(13)), (b"k", _frame(1))])
    task = await _run(StageRunner("detect", Echo(), platform, Health("kafka"), group_id=namespace))
    try:
        letters = decoded(dead_letter_topic("detect"), await read(platform, dead_letter_topic("detect"), count=2))
        assert [(d.reason, d.offset, d.stage) for d in letters] == [
            ("malformed_message", 0, "detect"),
            ("undecodable_frame", 1, "detect"),
        ]
        assert letters[0].value == b"\xff\x00garbage" and letters[0].topic == FRAMES_CAPTURED.name(
            platform.topic_prefix
        )
        assert letters[1].detail == "thirteen"
        assert [m.sequence for m in decoded(OUT, await read(platform, OUT, count=1))] == [1]
    finally:
        await _stop(task)


async def test_a_handler_bug_is_isolated_to_the_record_that_triggers_it(platform, namespace):
    await produce(platform, FRAMES_CAPTURED, [(b"k", _frame(i)) for i in (1, 66, 2)])
    task = await _run(StageRunner("detect", Echo(), platform, Health("kafka"), group_id=namespace))
    try:
        out = decoded(OUT, await read(platform, OUT, count=2, settle_s=0.5))
        assert sorted(m.sequence for m in out) == [1, 2]
        letter = decoded(dead_letter_topic("detect"), await read(platform, dead_letter_topic("detect"), count=1))[0]
        assert letter.reason == "handler_error" and "a bug in the handler" in letter.detail and letter.offset == 1
    finally:
        await _stop(task)


async def test_transient_failures_retry_the_batch_instead_of_dropping_it(platform, namespace):
    retries = metrics.BATCH_RETRIES.labels(FRAMES_CAPTURED.name(platform.topic_prefix))
    before = retries._value.get()
    await produce(platform, FRAMES_CAPTURED, [(b"k", _frame(5))])
    health = Health("kafka")
    task = await _run(
        StageRunner("detect", Echo(transient_failures=2), platform, health, group_id=namespace, retry_max_delay_s=0.2)
    )
    try:
        assert [m.sequence for m in decoded(OUT, await read(platform, OUT, count=1))] == [5]
        assert retries._value.get() - before == 2
        assert health.report()["checks"]["dependencies"]["ok"]
    finally:
        await _stop(task)


async def test_a_crash_before_the_output_is_acknowledged_loses_nothing(platform, namespace, eventually):
    await produce(platform, FRAMES_CAPTURED, [(b"k", _frame(7))])
    stuck = Echo()
    stuck.gate = asyncio.Event()  # never released: the stage dies holding the record
    first = await _run(StageRunner("detect", stuck, platform, Health("kafka"), group_id=namespace))
    await eventually(lambda: stuck.seen == [7])
    await _stop(first)  # the crash: nothing was published, so nothing may have been committed
    assert await _committed(platform, namespace) is None
    second = await _run(StageRunner("detect", Echo(), platform, Health("kafka"), group_id=namespace))
    try:
        assert [m.sequence for m in decoded(OUT, await read(platform, OUT, count=1))] == [7]
    finally:
        await _stop(second)


class UnluckyPublisher(StageRunner):
    """Publishing fails (as when the broker drops out) until `healed` is set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.healed = asyncio.Event()
        self.attempts = 0

    async def _publish(self, records, outcomes):
        self.attempts += 1
        if not self.healed.is_set():
            from aiokafka.errors import KafkaConnectionError

            raise KafkaConnectionError("broker went away")
        await super()._publish(records, outcomes)


async def test_offsets_are_committed_only_after_the_output_is_acknowledged(platform, namespace, eventually):
    await produce(platform, FRAMES_CAPTURED, [(b"k", _frame(3))])
    runner = UnluckyPublisher("detect", Echo(), platform, Health("kafka"), group_id=namespace, retry_max_delay_s=0.3)
    task = await _run(runner)
    try:
        await eventually(lambda: runner.attempts >= 3)
        assert await _committed(platform, namespace) is None  # handled, not acknowledged: not committed
        runner.healed.set()
        assert [m.sequence for m in decoded(OUT, await read(platform, OUT, count=1))] == [3]

        async def committed():
            assert await _committed(platform, namespace) == 1

        await eventually(committed)
    finally:
        await _stop(task)


async def test_more_replicas_than_the_input_has_partitions_are_refused_at_start(platform, namespace, eventually):
    from lfr_platform.kafka import ensure_topics
    from lfr_platform.runtime import StartRefused

    await ensure_topics(platform, [FRAMES_CAPTURED])  # with the platform's partitions
    too_many = platform.model_copy(update={"stage_replicas": platform.topic_partitions + 1})
    runner = StageRunner("detect", Echo(), too_many, Health("kafka"), group_id=namespace)
    idle = rf"{platform.topic_partitions} partition\(s\): 1 replica\(s\) would sit idle"
    with pytest.raises(StartRefused, match=idle):
        async with asyncio.timeout(60):
            await runner.run()
    enough = platform.model_copy(update={"stage_replicas": platform.topic_partitions})
    health = Health("kafka")
    task = await _run(StageRunner("detect", Echo(), enough, health, group_id=namespace))

    def consuming():  # past the check
        assert not task.done(), task.exception()
        assert health.ready, health.report()

    await eventually(consuming, timeout_s=60)
    await _stop(task)


async def test_a_record_over_the_topics_limit_is_dead_lettered_as_a_reference_and_the_stage_goes_on(
    platform, namespace
):
    """Issue 25 (1): a 10 MB record on an input (tansu, like a misconfigured broker, takes it) made a
    dead letter too big to send, and the stage retried it for ever. It is dead-lettered as a
    reference (topic, partition, offset, size), never decoded, and the next record goes through; a
    record near the limit whose copy would not fit is referenced too."""
    big = platform.model_copy(update={"kafka_max_message_bytes": 16 * 1024 * 1024})
    near = frames_pb2.FrameCaptured(sequence=13, image=b"\0" * (platform.kafka_max_message_bytes - 4096))
    headers = [("h", b"\1" * 100_000)]
    await produce(big, FRAMES_CAPTURED, [(b"k", b"\0" * (10 * 1024 * 1024))])
    await produce(big, FRAMES_CAPTURED, [(b"k", near.SerializeToString())], headers=headers)
    await produce(big, FRAMES_CAPTURED, [(b"k", _frame(1))])
    health = Health("kafka")
    task = await _run(StageRunner("detect", Echo(), platform, health, group_id=namespace))
    try:
        assert [m.sequence for m in decoded(OUT, await read(big, OUT, count=1))] == [1]
        letters = decoded(dead_letter_topic("detect"), await read(big, dead_letter_topic("detect"), count=2))
        assert [(d.reason, d.offset, d.copy_omitted) for d in letters] == [
            ("record_too_large", 0, True),
            ("undecodable_frame", 1, True),
        ]
        assert letters[0].value_size == 10 * 1024 * 1024 and not letters[0].value and not letters[0].headers
        assert letters[1].value_size == len(near.SerializeToString()) and not letters[1].value
        assert health.report()["checks"]["progress"]["ok"]
    finally:
        await _stop(task)

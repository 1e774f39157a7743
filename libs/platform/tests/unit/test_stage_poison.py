"""The stage runner when the broker refuses a record (a fake producer and consumer behind the same
calls aiokafka's have): the batch is tried `max_attempts` times, then record by record; a record the
broker refuses is dead-lettered as a reference, or skipped and counted when its dead letter is refused
too, and the partition is committed past it. An unreachable broker is waited for, never skipped."""

import asyncio

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord, TopicPartition

from lfr.v1 import deadletter_pb2, frames_pb2
from lfr_contracts import FRAMES_CAPTURED, dead_letter_topic
from lfr_platform import metrics
from lfr_platform.http import Health
from lfr_platform.settings import PlatformSettings
from lfr_platform.stage import Output, StageRunner

SETTINGS = PlatformSettings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix="unit.")
TP = TopicPartition(FRAMES_CAPTURED.name("unit."), 0)


def _record(offset: int, sequence: int) -> ConsumerRecord:
    value = frames_pb2.FrameCaptured(sequence=sequence).SerializeToString()
    return ConsumerRecord(TP.topic, 0, offset, 0, 0, b"k", value, None, len(b"k"), len(value), ())


class Echo:
    input = FRAMES_CAPTURED

    async def handle(self, batch):
        return [[Output(FRAMES_CAPTURED, b"out", item.message)] for item in batch]


class Broker:
    """Takes what it is sent, except outputs of `poison` sequences (and, with `refuse_letters`, their
    dead letters): those fail as a broker that enforces its message size fails them."""

    def __init__(self, poison: set[int], refuse_letters: bool = False, unreachable: int = 0) -> None:
        self.poison = poison
        self.refuse_letters = refuse_letters
        self.unreachable = unreachable
        self.taken: list[tuple[str, bytes]] = []
        self.committed: dict[TopicPartition, int] = {}

    async def send(self, topic: str, value: bytes, key=None):
        future = asyncio.get_running_loop().create_future()
        if self.unreachable:
            self.unreachable -= 1
            future.set_exception(KafkaConnectionError("broker down"))
        elif topic.endswith("deadletter.v1") and self.refuse_letters:
            future.set_exception(MessageSizeTooLargeError("refused"))
        elif not topic.endswith("deadletter.v1") and FRAMES_CAPTURED.decode(value).sequence in self.poison:
            future.set_exception(MessageSizeTooLargeError("refused"))
        else:
            self.taken.append((topic, value))
            future.set_result(None)
        return future

    async def commit(self, offsets) -> None:
        self.committed.update(offsets)


def _runner(broker: Broker, health: Health) -> StageRunner:
    runner = StageRunner("detect", Echo(), SETTINGS, health, retry_max_delay_s=0.0, max_attempts=3)
    runner._producer = broker
    runner._consumer = broker
    return runner


def _abandoned() -> float:
    return metrics.RECORDS_ABANDONED.labels(TP.topic)._value.get()


async def test_a_record_the_broker_refuses_is_dead_lettered_as_a_reference_and_the_rest_go_on():
    broker, health = Broker(poison={2}), Health("progress")
    await _runner(broker, health)._process(TP, [_record(10, 1), _record(11, 2), _record(12, 3)])
    outputs = [FRAMES_CAPTURED.decode(v).sequence for t, v in broker.taken if t == TP.topic]
    letters = [deadletter_pb2.DeadLetter.FromString(v) for t, v in broker.taken if t != TP.topic]
    assert set(outputs) == {1, 3}  # each try of the batch sent them again (at least once, never lost)
    assert [(d.reason, d.offset, d.copy_omitted, d.value) for d in letters] == [("unpublishable", 11, True, b"")]
    assert broker.committed == {TP: 13} and health.ready


async def test_a_record_whose_dead_letter_is_refused_too_is_skipped_and_counted():
    broker, health = Broker(poison={2}, refuse_letters=True), Health("progress")
    before = _abandoned()
    await _runner(broker, health)._process(TP, [_record(10, 1), _record(11, 2)])
    assert {FRAMES_CAPTURED.decode(v).sequence for _, v in broker.taken} == {1}
    assert _abandoned() - before == 1 and broker.committed == {TP: 12}


async def test_an_unreachable_broker_is_waited_for_and_nothing_is_skipped():
    broker, health = Broker(poison=set(), unreachable=5), Health("progress")
    before = _abandoned()
    await _runner(broker, health)._process(TP, [_record(10, 1), _record(11, 2)])
    assert {FRAMES_CAPTURED.decode(v).sequence for _, v in broker.taken} == {1, 2}  # once the broker is back
    assert _abandoned() == before and broker.committed == {TP: 12}
    assert not any(t == dead_letter_topic("detect").name("unit.") for t, _ in broker.taken)


async def test_a_broker_that_goes_away_while_the_batch_is_split_is_waited_for():
    """The record-by-record pass meets an unreachable broker: the batch is tried again, the stage
    goes on (it never ends on it), and nothing is skipped."""

    class Flaky(Broker):
        def __init__(self) -> None:
            super().__init__(poison={2})
            self.sends = 0

        async def send(self, topic: str, value: bytes, key=None):
            self.sends += 1
            if self.sends == 7:  # in the record-by-record pass (3 tries of 2 sends, then this)
                self.unreachable = 1
            return await super().send(topic, value, key)

    broker, health = Flaky(), Health("progress")
    before = _abandoned()
    await _runner(broker, health)._process(TP, [_record(10, 1), _record(11, 2)])
    assert broker.committed == {TP: 12} and _abandoned() == before and health.ready
    letters = [deadletter_pb2.DeadLetter.FromString(v) for t, v in broker.taken if t != TP.topic]
    assert [(d.reason, d.offset) for d in letters] == [("unpublishable", 11)]

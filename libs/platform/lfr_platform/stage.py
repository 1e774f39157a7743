"""The consume -> handle -> produce -> commit loop that detect, embed, match and alert share.

Guarantees (at-least-once, per camera order):
- a partition's batch is committed only after every output and dead letter of the batch has been
  acknowledged by the broker, so a crash at any point re-delivers, never loses;
- a record that cannot be decoded or that its handler rejects goes to the stage's dead-letter
  topic with the reason, topic, partition and offset, and the stage carries on;
- a transient failure (broker, Redis) retries the same batch with backoff instead of dropping it;
- an unexpected exception is isolated to the record that caused it, which is dead-lettered;
- a record over its topic's max.message.bytes is dead-lettered as a reference, never decoded, and a
  dead letter always fits the broker (a reference when the copy would not);
- a batch the broker keeps refusing (not unreachable: refusing) is published record by record after
  `max_attempts`, and a record whose outputs and dead letter are both refused is skipped, counted
  (lfr_records_abandoned_total) and logged: one poison record never stops a partition. Readiness
  turns false while a batch retries (check `progress`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import redis.exceptions
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from aiokafka.structs import ConsumerRecord
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lfr.v1 import deadletter_pb2
from lfr_contracts import Topic, dead_letter_topic, reasons
from lfr_contracts.topics import MalformedMessage
from lfr_platform import metrics
from lfr_platform.http import Health
from lfr_platform.kafka import new_consumer, new_producer, start_with_retry
from lfr_platform.logs import RateLimitedLog
from lfr_platform.runtime import StartRefused, honour_cancellation
from lfr_platform.settings import PlatformSettings

log = logging.getLogger(__name__)
# A flood of junk records must not flood the logs (50k wrote 9 MB): 10 lines a minute per reason; the
# metrics count every one.
_DEAD_LETTERS_LOG = RateLimitedLog(log, per_interval=10, interval_s=60)

M = TypeVar("M", bound=Message)
# Most records a stage takes in one batch: embed runs its model once per batch (16 faces fill a run).
BATCH_MAX_RECORDS = 16
# Room left in a dead letter for its own fields (stage, reason, detail, topic, ...), under the broker's
# message size: a copy that would leave less is left out.
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024
# A dead letter's Kafka key is the record's when it is this small, else none (a key can be any size).
DEAD_LETTER_MAX_KEY_BYTES = 1024
# Failures that mean the broker cannot be reached, not that it refuses a record: retried for ever
# (skipping would lose good records), with readiness false.
UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


class TransientError(Exception):
    """A dependency is unavailable for now: retry the batch later, do not dead-letter it."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    KafkaConnectionError,
    ConnectionError,
)


@dataclass(frozen=True)
class Rejected:
    """The record is bad (poison): dead-letter it with a machine reason and a human detail."""

    reason: str  # one of lfr_contracts.reasons.DEAD_LETTER
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in reasons.DEAD_LETTER:
            raise ValueError(f"{self.reason!r} is not a dead-letter reason of lfr_contracts.reasons")


@dataclass(frozen=True)
class Skipped:
    """The record is fine but deliberately not processed (e.g. its deployment was closed)."""

    reason: str  # one of lfr_contracts.reasons.SKIPPED

    def __post_init__(self) -> None:
        if self.reason not in reasons.SKIPPED:
            raise ValueError(f"{self.reason!r} is not a skip reason of lfr_contracts.reasons")


@dataclass(frozen=True)
class Output:
    topic: Topic
    key: bytes
    message: Message


@dataclass
class Incoming(Generic[M]):
    message: M
    record: ConsumerRecord


# What a handler decides for one input record: outputs to publish (possibly none), or why not.
Outcome = list[Output] | Rejected | Skipped


class StageHandler(Protocol[M]):
    input: Topic[M]

    async def handle(self, batch: Sequence[Incoming[M]]) -> list[Outcome]:
        """One outcome per input, in order. Raise a TRANSIENT_ERRORS type to have the batch retried."""
        ...

    async def published(self, done: list[tuple[M, Outcome]]) -> None:
        """After the broker acknowledged the batch's outputs and dead letters, before the commit:
        what each input led to (e.g. alert remembers the match ids it announced). A transient
        failure is retried; a record it misses is processed again after a crash, never lost."""
        ...


@dataclass
class StageRunner(Generic[M]):
    stage: str
    handler: StageHandler[M]
    settings: PlatformSettings
    health: Health
    group_id: str | None = None
    retry_max_delay_s: float = 10.0
    # Tries of a batch the broker refuses before it is published record by record (about a minute at
    # the default backoff), and of each of its records alone.
    max_attempts: int = 8
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _producer: AIOKafkaProducer | None = field(default=None, init=False)
    _lag_reported: set[TopicPartition] = field(default_factory=set, init=False)
    _lag_at: float = field(default=0.0, init=False)

    @property
    def input_name(self) -> str:
        return self.handler.input.name(self.settings.topic_prefix)

    @property
    def consumer_group(self) -> str:
        """The stage's consumer group: its replicas share it. Prefixed like the topics, so that two
        installations on one Kafka cluster (the chart's `topics.prefix`) never join each other's."""
        return self.group_id or f"{self.settings.topic_prefix}{self.stage}"

    async def run(self) -> None:
        """Process records until cancelled."""
        self._producer = await start_with_retry(lambda: new_producer(self.settings), f"{self.stage} producer")
        self._consumer = await start_with_retry(
            lambda: new_consumer(self.settings, self.consumer_group, self.input_name),
            f"{self.stage} consumer",
        )
        await self._refuse_idle_replicas()
        self.health.set("kafka", True)
        self.health.set("progress", True)
        log.info("consuming %s as group %s", self.input_name, self.consumer_group)
        try:
            while True:
                honour_cancellation()
                batches = await self._consumer.getmany(timeout_ms=500, max_records=BATCH_MAX_RECORDS)
                for tp, records in batches.items():
                    await self._process(tp, records)
                await self._report_lag()
        finally:
            self.health.set("kafka", False)
            # Bounded: a consumer stopped while its group is still joining can wait for the join; the
            # offsets it committed are safe either way, and a stop must never hang the process.
            for client in (self._consumer, self._producer):
                try:
                    async with asyncio.timeout(5):
                        await client.stop()
                except TimeoutError:
                    log.warning("%s: a Kafka client took over 5 s to stop; left behind", self.stage)

    async def _refuse_idle_replicas(self) -> None:
        """More replicas than the input has partitions: the ones beyond would never get a record."""
        if self.settings.stage_replicas <= 1:
            return
        await self._consumer.topics()  # refreshes the metadata
        partitions = self._consumer.partitions_for_topic(self.input_name) or set()
        if len(partitions) < self.settings.stage_replicas:
            idle = self.settings.stage_replicas - len(partitions)
            raise StartRefused(
                f"{self.stage} runs {self.settings.stage_replicas} replicas (LFR_STAGE_REPLICAS) but its input "
                f"{self.input_name} has {len(partitions)} partition(s): {idle} replica(s) would sit idle; "
                "give the topic as many partitions as replicas (LFR_TOPIC_PARTITIONS "
                "before it is created; kafka-topics --alter on a cluster), or run fewer replicas"
            )

    async def _report_lag(self, every_s: float = 1.0) -> None:
        """Records of each assigned partition not processed yet, from the fetch's high-water mark
        (right on every broker, unlike ListOffsets on tansu) and this consumer's position."""
        if time.monotonic() - self._lag_at < every_s:
            return
        self._lag_at = time.monotonic()
        assigned = self._consumer.assignment()
        self.health.info["partitions"] = sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)
        for tp in self._lag_reported - assigned:
            metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        reported = set()
        for tp in assigned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except KafkaError:
                continue  # moved to another member meanwhile
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
            reported.add(tp)
        self._lag_reported = reported

    async def _process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        metrics.MESSAGES_CONSUMED.labels(self.input_name).inc(len(records))
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(records)
        batch: list[tuple[int, Incoming[M]]] = []
        limit = self.settings.kafka_max_message_bytes
        for i, record in enumerate(records):
            size = len(record.value or b"")
            if size > limit:  # the topic declares max.message.bytes; a broker may not enforce it
                outcomes[i] = Rejected("record_too_large", f"{size} bytes, over the topic's max.message.bytes {limit}")
                continue
            try:
                batch.append((i, Incoming(self.handler.input.decode(record.value), record)))
            except MalformedMessage as exc:
                outcomes[i] = Rejected("malformed_message", str(exc))
        if batch:
            results = await self._handle([item for _, item in batch])
            for (i, _), outcome in zip(batch, results, strict=True):
                outcomes[i] = outcome
        elapsed = time.perf_counter() - started
        for _ in records:
            metrics.PROCESSING_SECONDS.labels(self.input_name).observe(elapsed / len(records))
        done = [(item.message, outcomes[i]) for i, item in batch]
        await self._publish_and_commit(tp, records, outcomes, done)  # type: ignore[arg-type]

    async def _handle(self, batch: list[Incoming[M]]) -> list[Outcome]:
        delay = 0.2
        while True:
            try:
                outcomes = await self.handler.handle(batch)
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(batch)} records")
                self.health.set("dependencies", True)
                return outcomes
            except TRANSIENT_ERRORS as exc:
                metrics.BATCH_RETRIES.labels(self.input_name).inc()
                self.health.set("dependencies", False, str(exc))
                log.warning("transient failure, retrying the batch in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)
            except Exception as exc:
                if len(batch) == 1:
                    log.exception("handler failed on %s", _where(batch[0].record))
                    return [Rejected("handler_error", f"{type(exc).__name__}: {exc}")]
                # Find the record that breaks the handler: retry each on its own.
                return [outcome for item in batch for outcome in await self._handle([item])]

    async def _publish_and_commit(
        self, tp: TopicPartition, records: list[ConsumerRecord], outcomes: list[Outcome], done: list[tuple]
    ) -> None:
        delay = 0.2
        attempts = 0
        while True:
            try:
                await self._publish(records, outcomes)
                break
            except TRANSIENT_ERRORS + (KafkaError,) as exc:
                # Nothing is committed: publishing again may duplicate some outputs, never lose one.
                attempts += 1
                metrics.BATCH_RETRIES.labels(self.input_name).inc()
                self.health.set("progress", False, f"publishing a batch of {_where(records[0])} failed: {exc}")
                if attempts >= self.max_attempts and not isinstance(exc, TRANSIENT_ERRORS + UNREACHABLE):
                    # The broker answers, and refuses: find the record it refuses, and go on without it.
                    try:
                        await self._publish_each(records, outcomes, exc)
                        break
                    except TRANSIENT_ERRORS + UNREACHABLE as lost:  # the broker went away meanwhile
                        exc = lost
                log.warning("publishing failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)
        await self._after_publish(done)
        await self._commit(tp, records[-1].offset + 1)
        self.health.set("progress", True)
        metrics.LAST_PROGRESS.labels(self.input_name).set(time.time())

    async def _publish_each(self, records: list[ConsumerRecord], outcomes: list[Outcome], cause: Exception) -> None:
        """The batch, one record at a time: a record whose outputs the broker refuses is dead-lettered
        as a reference; one whose dead letter is refused too is skipped, counted and logged."""
        for i, (record, outcome) in enumerate(zip(records, outcomes, strict=True)):
            try:
                await self._publish([record], [outcome])
                continue
            except TRANSIENT_ERRORS + UNREACHABLE:
                raise  # not the record's fault: the batch is tried again later, whole
            except KafkaError as exc:
                refused = Rejected("unpublishable", f"{type(exc).__name__}: {exc} (the batch: {cause})")
                outcomes[i] = refused
            try:
                fut, name = await self._dead_letter(record, refused, reference=True)
                await fut
                metrics.MESSAGES_PRODUCED.labels(name).inc()
            except TRANSIENT_ERRORS + UNREACHABLE:
                raise
            except KafkaError as exc:
                metrics.RECORDS_ABANDONED.labels(self.input_name).inc()
                log.error(
                    "abandoned %s: the broker refuses its outputs and its dead letter: %s",
                    _where(record),
                    exc,
                    extra={"reason": "unpublishable"},
                )

    async def _after_publish(self, done: list[tuple]) -> None:
        hook = getattr(self.handler, "published", None)
        if hook is None or not done:
            return
        delay = 0.2
        for attempt in range(5):
            try:
                await hook(done)
                return
            except TRANSIENT_ERRORS as exc:
                if attempt == 4:
                    log.error("after publishing, %s's record of it failed: %s", self.stage, exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)

    async def _commit(self, tp: TopicPartition, offset: int, attempts: int = 5) -> None:
        """Commit after the outputs were acknowledged. If it cannot be done, the records are delivered
        again later (their outputs then appear twice, which every consumer tolerates): never lost."""
        delay = 0.2
        for attempt in range(attempts):
            try:
                await self._consumer.commit({tp: offset})
                return
            except CommitFailedError as exc:
                # The partition moved to another member during the batch; it will re-deliver.
                log.warning("commit refused after a rebalance, records will be re-delivered: %s", exc)
                return
            except KafkaError as exc:
                if attempt == attempts - 1:
                    log.warning("commit failed, records will be re-delivered: %s", exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_delay_s)

    async def _publish(self, records: list[ConsumerRecord], outcomes: list[Outcome]) -> None:
        pending: list[tuple[asyncio.Future, str]] = []
        for record, outcome in zip(records, outcomes, strict=True):
            if isinstance(outcome, Skipped):
                metrics.MESSAGES_SKIPPED.labels(self.input_name, outcome.reason).inc()
                continue
            if isinstance(outcome, list):
                try:
                    for out in outcome:
                        name = out.topic.name(self.settings.topic_prefix)
                        fut = await self._producer.send(name, out.topic.encode(out.message), key=out.key)
                        pending.append((fut, name))
                    continue
                except MessageSizeTooLargeError as exc:
                    outcome = Rejected("output_too_large", str(exc))
            pending.append(await self._dead_letter(record, outcome))
        # Every acknowledgement is awaited (none left unretrieved), then the first failure raised.
        results = await asyncio.gather(*(fut for fut, _ in pending), return_exceptions=True)
        for (_, name), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            metrics.MESSAGES_PRODUCED.labels(name).inc()

    async def _dead_letter(
        self, record: ConsumerRecord, rejected: Rejected, reference: bool = False
    ) -> tuple[asyncio.Future, str]:
        topic = dead_letter_topic(self.stage)
        now = Timestamp()
        now.GetCurrentTime()
        letter = deadletter_pb2.DeadLetter(
            stage=self.stage,
            reason=rejected.reason,
            detail=rejected.detail[:2000],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            value_size=len(record.value or b""),
            failed_at=now,
        )
        copy = deadletter_pb2.DeadLetter(
            key=record.key or b"",
            value=record.value or b"",
            headers=[deadletter_pb2.Header(key=k, value=v or b"") for k, v in (record.headers or ())],
        )
        # Always fits: a copy that would take the letter over the broker's size is left out.
        fits = letter.ByteSize() + copy.ByteSize() <= self.settings.kafka_max_message_bytes - DEAD_LETTER_HEADROOM_BYTES
        if fits and not reference:
            letter.MergeFrom(copy)
        else:
            letter.copy_omitted = True
        key = record.key if record.key is not None and len(record.key) <= DEAD_LETTER_MAX_KEY_BYTES else None
        metrics.MESSAGES_DEAD_LETTERED.labels(self.input_name, rejected.reason).inc()
        _DEAD_LETTERS_LOG.warning(
            rejected.reason,
            "dead-lettered %s: %s",
            _where(record),
            rejected.reason,
            extra={"reason": rejected.reason, "detail": rejected.detail[:300]},
        )
        name = topic.name(self.settings.topic_prefix)
        return await self._producer.send(name, topic.encode(letter), key=key), name


def _where(record: ConsumerRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"

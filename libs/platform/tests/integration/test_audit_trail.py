"""The audit trail on the real broker and Redis, written through the real AuditLog and outbox: an
untouched trail holds; each kind of tampering, produced to the broker (and into an export), makes
`lfr audit verify` fail naming the entry; the broker's uncertain answers never break the chain."""

import asyncio
import contextlib
import os
from datetime import UTC, date, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from lfr.v1 import audit_pb2
from lfr_cli.main import main as lfr
from lfr_contracts import AUDIT_RECORDED
from lfr_platform.audit import AuditLog
from lfr_platform.audit_broker import read_topic
from lfr_platform.audit_roots import DaySealer, day_roots, roots_keys
from lfr_platform.audit_trail import (
    DAY_SEALED,
    TrailRecord,
    entry_hash,
    export_lines,
    read_export,
    root_as_dict,
    seal_entry,
    sign_root,
    verify_root,
)
from lfr_platform.audit_verify import verify
from lfr_platform.kafka import ensure_topics, new_producer
from lfr_platform.outbox import Outbox
from lfr_platform.registry import RedisKeys

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
def platform3(platform):
    return platform.model_copy(update={"topic_partitions": PARTITIONS})


@contextlib.asynccontextmanager
async def writer(platform, producer_type=None, clock=None, key: bytes | None = None):
    """An AuditLog as a service has one: its own outbox object and producer, the shared Redis, and
    the audit key (`key`) that signs its entries."""
    producer = new_producer(platform)
    await producer.start()
    redis = platform.redis_client()
    outbox = Outbox(redis, RedisKeys(platform.redis_prefix).outbox())
    outbox.producer = producer_type(producer) if producer_type else producer
    try:
        yield AuditLog(outbox, platform.topic_prefix, writer_key=key, **({"clock": clock} if clock else {}))
    finally:
        await producer.stop()
        await redis.aclose()


async def _trail(platform, prefix: str | None = None) -> list[TrailRecord]:
    records, _ = await read_topic(
        platform.kafka_bootstrap_servers, AUDIT_RECORDED.name(prefix or platform.topic_prefix)
    )
    return records


async def _lfr(*argv: str) -> int:
    """The `lfr` command as a user runs it (its own event loop: in a thread here)."""
    return await asyncio.to_thread(lfr, list(argv))


async def _lfr_verify(platform, capsys, prefix: str, *more: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await _lfr(
        "audit", "verify", "--bootstrap-servers", platform.kafka_bootstrap_servers, "--topic-prefix", prefix, *more
    )
    return code, capsys.readouterr().out


async def _copy(platform, records: list[TrailRecord], prefix: str) -> None:
    """The records produced, in this order and partition by partition, into the audit topic of `prefix`."""
    await ensure_topics(platform.model_copy(update={"topic_prefix": prefix}), [AUDIT_RECORDED])
    producer = AIOKafkaProducer(bootstrap_servers=platform.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(AUDIT_RECORDED.name(prefix), r.value, key=r.key, partition=r.partition)
    finally:
        await producer.stop()


def _message(record: TrailRecord) -> audit_pb2.AuditRecorded:
    message = audit_pb2.AuditRecorded()
    message.ParseFromString(record.value)
    return message


def _tampered(records: list[TrailRecord], partition: int) -> dict[str, tuple[list[TrailRecord], int, str]]:
    """Each kind of tampering of one partition: (the records as the broker would then hold them, the
    offset the verifier must name, the event id it must name)."""
    rows = [r for r in records if r.partition == partition]
    rest = [r for r in records if r.partition != partition]

    def renumbered(new: list[TrailRecord]) -> list[TrailRecord]:
        return rest + [TrailRecord(partition, i, r.key, r.value) for i, r in enumerate(new)]

    changed = bytearray(rows[3].value)
    changed[len(changed) // 3] ^= 0x01
    forged = _message(rows[3])  # a believable entry in sequence 3's place, linked to sequence 2
    forged.actor = "forger"
    forged.event_id = "f" * 32
    damaged = TrailRecord(partition, 3, rows[3].key, bytes(changed))
    inserted = TrailRecord(partition, 3, b"", seal_entry(forged)[0])
    return {
        "changed": (renumbered([*rows[:3], damaged, *rows[4:]]), 3, _message(rows[3]).event_id),
        "dropped": (renumbered([*rows[:3], *rows[4:]]), 3, _message(rows[4]).event_id),
        "duplicated": (renumbered([*rows[:5], rows[1], *rows[5:]]), 5, _message(rows[1]).event_id),
        "reordered": (renumbered([*rows[:2], rows[3], rows[2], *rows[4:]]), 2, _message(rows[3]).event_id),
        "inserted": (renumbered([*rows[:3], inserted, *rows[3:]]), 3, "f" * 32),
    }


async def test_a_trail_of_two_concurrent_writers_holds_and_each_tampering_on_the_broker_is_named(
    platform3, capsys, tmp_path
):
    await ensure_topics(platform3, [AUDIT_RECORDED])
    async with writer(platform3) as one, writer(platform3) as two:

        async def immediate(i: int) -> None:
            await one.record("test.recorded", f"dep-{i % 7}", "officer-1", "officer", n=i)

        async def in_a_transaction(i: int) -> None:
            async with two.outbox.client.pipeline(transaction=True) as pipe:
                two.add(pipe, "test.kept", f"dep-{i % 5}", "officer-2", "officer", n=i)
                await pipe.execute()
            await two.outbox.drain()

        await asyncio.gather(*(f(i) for i in range(20) for f in (immediate, in_a_transaction)))
    records = await _trail(platform3)
    assert len(records) == 40 and {r.partition for r in records} == set(range(PARTITIONS))
    assert len({_message(r).event_id for r in records}) == 40  # each event once: no honest duplicate
    code, out = await _lfr_verify(platform3, capsys, platform3.topic_prefix)
    assert code == 0 and out.startswith(f"chain holds: 40 entries in {PARTITIONS} chains"), out
    export = tmp_path / "audit.jsonl"
    assert await _lfr("audit", "export", "--bootstrap-servers", platform3.kafka_bootstrap_servers, "--topic-prefix",
                      platform3.topic_prefix, "--out", str(export)) == 0  # fmt: skip
    assert await _lfr("audit", "verify", "--export", str(export)) == 0

    partition = max(range(PARTITIONS), key=lambda p: sum(r.partition == p for r in records))
    for kind, (copy, offset, event_id) in _tampered(records, partition).items():
        prefix = f"{platform3.topic_prefix}{kind}."
        await _copy(platform3, copy, prefix)
        code, out = await _lfr_verify(platform3, capsys, prefix)
        assert code == 1, (kind, out)
        assert out.startswith(f"chain broken: {kind}: partition {partition} offset {offset} event_id {event_id}"), out
        tampered_export = tmp_path / f"{kind}.jsonl"
        tampered_export.write_text("\n".join(export_lines("copy", copy)) + "\n")
        code, out = await _lfr_verify(platform3, capsys, prefix, "--export", str(tampered_export))
        assert code == 1 and f"{kind}: partition {partition} offset {offset}" in out, (kind, out)


async def test_a_chain_head_lost_from_redis_begins_an_epoch_that_verify_reports(platform):
    await ensure_topics(platform, [AUDIT_RECORDED])
    async with writer(platform) as audit:
        for i in range(3):
            await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=i)
        keys = audit.chain.keys
        await audit.outbox.client.delete(keys.head(0), keys.days, keys.chains)  # as a Redis that lost its data
        for i in range(2):
            await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=3 + i)
    verdict = verify(await _trail(platform))
    assert verdict.holds and verdict.entries == 5 and len(verdict.chains) == 2
    assert len(verdict.restarts) == 1 and "offset 3" in verdict.restarts[0]


class AnswerLost:
    """A producer whose broker writes the record but whose answer never comes back (the writer dies
    or times out before it learns the outcome)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer, self.client = producer, producer.client

    async def partitions_for(self, topic):
        return await self.producer.partitions_for(topic)

    async def send(self, topic, value, key=None, partition=None):
        await (await self.producer.send(topic, value, key=key, partition=partition))
        raise KafkaTimeoutError("the answer was lost")


class NeverSent(AnswerLost):
    async def send(self, topic, value, key=None, partition=None):
        raise KafkaConnectionError("the broker is away")


class RetriedTwice(AnswerLost):
    """The broker keeps the first record twice: a producer retry after an answer lost on the wire."""

    repeated = False

    async def send(self, topic, value, key=None, partition=None):
        if not self.repeated:
            self.repeated = True
            await (await self.producer.send(topic, value, key=key, partition=partition))
        return await self.producer.send(topic, value, key=key, partition=partition)


@pytest.mark.parametrize("failure", [AnswerLost, NeverSent])
async def test_an_entry_whose_outcome_was_not_known_is_settled_from_the_broker_never_sent_twice(platform, failure):
    await ensure_topics(platform, [AUDIT_RECORDED])
    async with writer(platform) as audit:
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=0)
    async with writer(platform, failure) as failing:
        await failing.record("test.uncertain", "dep-a", "officer-1", "officer", n=1)  # kept in the outbox
        assert await failing.outbox.pending() == 1
    async with writer(platform) as audit:
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=2)
        # The kept event is re-sent by the outbox's reclaim (another consumer name): claim it now.
        audit.outbox.reclaim_idle_s = 0
        await audit.outbox.drain()
        assert await audit.outbox.pending() == 0
    records = await _trail(platform)
    events = [_message(r).event for r in records]
    assert sorted(events) == ["test.recorded", "test.recorded", "test.uncertain"]
    verdict = verify(records)
    assert verdict.holds and verdict.entries == 3 and len(verdict.chains) == 1, verdict.report()


async def test_a_record_the_broker_kept_twice_is_noted_on_the_trail_and_the_chain_holds(platform):
    await ensure_topics(platform, [AUDIT_RECORDED])
    async with writer(platform, RetriedTwice) as audit:
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=0)
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=1)
    records = await _trail(platform)
    assert [_message(r).event for r in records] == ["test.recorded"] * 2 + ["audit.chain_repeat", "test.recorded"]
    verdict = verify(records)
    assert verdict.holds and verdict.entries == 3 and len(verdict.repeats) == 1, verdict.report()
    assert not verify([r for r in records if _message(r).event != "audit.chain_repeat"]).holds


async def test_a_day_sealed_overnight_is_signed_on_the_trail_and_pins_that_day(platform, capsys, tmp_path):
    day = date(2026, 3, 1)
    now = [datetime(2026, 3, 1, 22, 0, tzinfo=UTC).timestamp()]
    key = os.urandom(32)
    await ensure_topics(platform, [AUDIT_RECORDED])
    async with writer(platform, clock=lambda: now[0], key=key) as audit:
        for i in range(4):
            await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=i)
        now[0] += 3 * 3600  # 01:00 the next day
        sealer = DaySealer(audit, key, clock=lambda: now[0])
        roots = await sealer.seal_due()
        assert [(r.day, r.count, r.last_sequence) for r in roots] == [("2026-03-01", 4, 3)]
        assert await sealer.seal_due() == []  # once
        now[0] -= 5400  # a writer whose clock is half an hour behind: nothing goes into a sealed day
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=4)
        await audit.outbox.drain()  # the audit.day_sealed event, kept in the outbox when the day was sealed
        kept = await day_roots(audit.outbox.client, roots_keys(platform.redis_prefix, platform.topic_prefix), day, day)
    assert [root_as_dict(r) for r in kept] == [root_as_dict(r) for r in roots]
    assert verify_root(kept[0], sealer.public_key)
    records = await _trail(platform)
    assert [_message(r).event for r in records][4:] == ["test.recorded", DAY_SEALED]
    assert _message(records[4]).link.chained_at.ToDatetime() == datetime(2026, 3, 2)  # the sealed day's end
    code, out = await _lfr_verify(platform, capsys, platform.topic_prefix, "--public-key", sealer.public_key.hex())
    assert code == 0 and "chain holds: 6 entries in 1 chains" in out and "1 signed daily roots checked" in out, out

    # A broker admin rewrites the sealed day consistently (every hash computed again): the chain
    # holds, the signed root does not.
    previous, rewritten = b"\x00" * 32, []
    for r in records:
        message = _message(r)
        if message.link.sequence == 1:
            message.actor = "someone-else"
        message.link.previous_hash = previous
        value, previous = seal_entry(message)
        rewritten.append(TrailRecord(r.partition, r.offset, r.key, value))
    prefix = f"{platform.topic_prefix}rewritten."
    await _copy(platform, rewritten, prefix)
    code, out = await _lfr_verify(platform, capsys, prefix)
    assert code == 1 and "chain broken: changed: partition 0 offset 3" in out and "signed root of 2026-03-01" in out, (
        out
    )
    assert entry_hash(rewritten[3].value) != roots[0].last_hash
    # A period, the day after: each chain's first entry checked against the sealed day's last one,
    # read from the broker or from an export of the period (which carries that anchor).
    period = ("--from", "2026-03-02", "--to", "2026-03-03")
    code, out = await _lfr_verify(platform, capsys, platform.topic_prefix, *period)
    assert code == 0 and "chain holds: 2 entries in 1 chains" in out, out
    export = tmp_path / "period.jsonl"
    assert await _lfr("audit", "export", "--bootstrap-servers", platform.kafka_bootstrap_servers, "--topic-prefix",
                      platform.topic_prefix, *period, "--out", str(export)) == 0  # fmt: skip
    assert len(read_export(export.read_text().splitlines())[1]) == 3  # the anchor and the day's two
    code, out = await _lfr_verify(platform, capsys, platform.topic_prefix, *period, "--export", str(export))
    assert code == 0 and "chain holds: 2 entries in 1 chains" in out, out
    # The export alone: it is checked as the period its header names, with the writers' key.
    code, out = await _lfr_verify(
        platform, capsys, platform.topic_prefix, "--export", str(export), "--public-key", sealer.public_key.hex()
    )
    assert code == 0 and "chain holds: 2 entries in 1 chains" in out and "writers not checked" not in out, out
    # The sealed day alone: its export carries the root sealed after it, which is checked.
    day_one = ("--from", "2026-03-01", "--to", "2026-03-02")
    assert await _lfr("audit", "export", "--bootstrap-servers", platform.kafka_bootstrap_servers, "--topic-prefix",
                      platform.topic_prefix, *day_one, "--out", str(export)) == 0  # fmt: skip
    code, out = await _lfr_verify(platform, capsys, platform.topic_prefix, *day_one, "--export", str(export))
    assert code == 0 and "chain holds: 4 entries in 1 chains" in out and "1 signed daily roots checked" in out, out


async def test_a_forged_epoch_and_a_forged_continuation_on_the_broker_are_named_by_lfr_audit_verify(platform, capsys):
    """Issue 25 (5), on the real broker: anyone who can produce to the audit topic wrote a new epoch
    (a `deployment.closed`) and a continuation of the chain, both correctly hashed and linked;
    `lfr audit verify` passed the first and then blamed the genuine entry after it. With the
    published key it names both as forged, and the genuine chain around them holds."""
    key = os.urandom(32)
    await ensure_topics(platform, [AUDIT_RECORDED])
    async with writer(platform, key=key) as audit:
        for i in range(3):
            await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=i)
        head = (await _trail(platform))[-1]
        forged_epoch = _message(head)
        forged_epoch.event, forged_epoch.event_id = "deployment.closed", "e" * 32
        forged_epoch.link.epoch, forged_epoch.link.sequence, forged_epoch.link.previous_hash = "forged", 0, bytes(32)
        continuation = _message(head)
        continuation.event, continuation.event_id = "deployment.closed", "c" * 32
        continuation.link.sequence += 1
        continuation.link.previous_hash = entry_hash(head.value)
        forged = [
            TrailRecord(head.partition, 0, head.key, seal_entry(m, os.urandom(32))[0])
            for m in (forged_epoch, continuation)
        ]
        await _copy(platform, forged, platform.topic_prefix)
        await audit.record("test.recorded", "dep-a", "officer-1", "officer", n=3)  # the genuine next write
    public_key = sign_root(key, audit_pb2.AuditDayRoot()).public_key
    code, out = await _lfr_verify(platform, capsys, platform.topic_prefix, "--public-key", public_key.hex())
    assert code == 1, out
    assert f"chain broken: forged: partition {head.partition} offset 3 event_id {'e' * 32}" in out, out
    assert f"offset 4 event_id {'c' * 32}: no published audit key signed it" in out, out
    assert "inserted" not in out and "dropped" not in out, out
    verdict = verify(await _trail(platform), public_keys=[public_key])
    assert verdict.entries == 4 and [f.offset for f in verdict.forged] == [3, 4]

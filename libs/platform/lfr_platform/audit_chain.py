"""The writers' side of the tamper-evident audit trail: each entry chained to the one before it in its
partition at the moment it is produced, so that the chain's order is the broker's order.

One chain per partition of the audit topic (and epoch). Every writer (deployments, each alert
replica) sends audit events through its outbox, and for this topic the outbox hands each record to
`AuditChain.send`. Under the partition's lock in Redis (one holder among all writers, renewed while
held) it reads the chain's head, sets the entry's link (epoch, partition, sequence, previous hash,
time), hashes the entry, writes it to the head as *pending*, produces it to that partition, waits for
the broker's acknowledgement, and only then moves the head, with the day's count and a marker that
the event is chained (an outbox's re-send of it is then acknowledged without a second entry).

What the broker's answer leaves open is settled by reading the partition back, never guessed: a
pending entry found at the head's next holder (its sender died, or the broker failed it after
perhaps writing it) is looked for after the head's offset; an acknowledgement at another offset than
the one expected means the broker holds more than this entry there: copies of it (a producer retry
after a lost answer) are noted on the trail (audit.chain_repeat), anything else is counted and logged
as written around the chain (the verifier will name it). A send that outlives the outbox's timeout
keeps the lock until the broker decides; the outbox keeps the event meanwhile.

No chain head in Redis (the partition's first entry, or Redis lost the chain's state) begins a new
epoch: sequence 0, previous hash zero, a new epoch id, counted and logged; the verifier reports each
epoch that begins after another. docs/audit.md; docs/decisions/0016-a-tamper-evident-audit-trail.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from lfr.v1 import audit_pb2
from lfr_contracts import AUDIT_RECORDED
from lfr_contracts.topics import MalformedMessage
from lfr_platform import metrics
from lfr_platform.audit_broker import KafkaBroker
from lfr_platform.audit_trail import CHAIN_REPEAT, GENESIS, entry_hash, seal_entry, trail_event
from lfr_platform.clock import Clock, system
from lfr_platform.outbox import OutboxRecord
from lfr_platform.runtime import pause

log = logging.getLogger(__name__)

# A dead holder blocks its chain this long at most; a live one renews the lock every RENEW_S.
LOCK_TTL_MS = 10_000
RENEW_S = 3.0
# How long an event stays marked as chained: longer than the outbox keeps an event it could not send
# (a broker away for days). An event re-sent later still gets a second, well-linked entry: a repeat
# of the event (same event_id), never a break of the chain.
SENT_MEMORY_S = 7 * 86400
# Most days one sealing signs per chain (after a long stop, the rest at the next sweeps).
SEAL_DAYS_AT_ONCE = 31

_GUARDED_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], '1', 'EX', tonumber(ARGV[5])) end
return 1
"""
_SEALED_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
for i = 3, #ARGV, 5 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('XADD', KEYS[4], '*', 'topic', ARGV[i + 2], 'key', ARGV[i + 3], 'value', ARGV[i + 4])
end
return 1
"""
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class ChainLockLost(TimeoutError):
    """The partition's lock expired while held (this process stalled): nothing more is chained."""


@dataclass(frozen=True)
class ChainKeys:
    """Where the chains of one audit topic live: beside the outbox that sends it."""

    stream: str  # the outbox's stream (the sealed days' events go into it)
    topic: str  # the audit topic's full name

    @property
    def base(self) -> str:
        return f"{self.stream}:chain:{self.topic}"

    def head(self, partition: int) -> str:
        return f"{self.base}:{partition}"

    def lock(self, partition: int) -> str:
        return f"{self.base}:{partition}:lock"

    @property
    def chains(self) -> str:  # set of partitions with a chain
        return f"{self.base}:chains"

    @property
    def days(self) -> str:  # "partition:epoch:day" -> the day's first, count, last sequence and hash
        return f"{self.base}:days"

    @property
    def roots(self) -> str:  # "partition:epoch:day" -> the signed AuditDayRoot
        return f"{self.base}:roots"

    def sent(self, event_id: str) -> str:
        return f"{self.base}:sent:{event_id}"


def chain_keys(outbox_stream: str, topic_prefix: str) -> ChainKeys:
    return ChainKeys(outbox_stream, AUDIT_RECORDED.name(topic_prefix))


@dataclass(frozen=True)
class Head:
    """A chain's last entry, and what it is waiting for."""

    epoch: str
    sequence: int  # -1 before the epoch's first entry
    hash: str  # hex
    offset: int  # of the last entry on the broker
    chained_at: float  # seconds since the epoch
    floor: float = 0.0  # nothing is chained before this: the end of the last day sealed
    first_day: str = ""
    sealed_day: str = ""  # the last day whose root is signed
    sealed_sequence: int = -1
    sealed_hash: str = ""
    pending: dict | None = None  # the entry produced and not yet known to be on the broker

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: bytes | str | None) -> Head | None:
        return cls(**json.loads(raw)) if raw else None


def utc_day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


class _Lock:
    """One holder per partition among every writer; renewed while held; handed to a task that waits
    for a send's outcome (`passed`), which then releases it."""

    def __init__(self, client, key: str) -> None:
        self.client, self.key, self.token = client, key, uuid.uuid4().hex
        self.held = False
        self.passed = False
        self._keeper: asyncio.Task | None = None

    async def acquire(self) -> _Lock:
        delay = 0.005
        while not await self.client.set(self.key, self.token, nx=True, px=LOCK_TTL_MS):
            if await self.client.get(self.key) == self.token.encode():  # a retried SET whose first try took it
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        self.held = True
        self._keeper = asyncio.create_task(self._keep(), name=f"keep {self.key}")
        return self

    async def _keep(self) -> None:
        while True:
            await pause(RENEW_S)
            try:
                if not await self.client.eval(_RENEW, 1, self.key, self.token, LOCK_TTL_MS):
                    return  # expired: the next write under it finds out (ChainLockLost)
            except RedisError as exc:
                log.warning("audit chain lock not renewed: %s", exc)

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        self.held = False
        await self.client.eval(_RELEASE, 1, self.key, self.token)


class AuditChain:
    def __init__(
        self,
        client,
        keys: ChainKeys,
        *,
        send_timeout_s: float = 10.0,
        clock: Clock = system,
        writer_key: bytes | None = None,
    ) -> None:
        self.client = client
        self.writer_key = writer_key  # the audit key's private half: every entry signed with it
        self.keys = keys
        self.send_timeout_s = send_timeout_s
        self.clock = clock
        self._local: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)  # this process's turn
        self._waiting: set[asyncio.Task] = set()  # sends that outlived their caller
        self._guarded_write = client.register_script(_GUARDED_WRITE)
        self._sealed_write = client.register_script(_SEALED_WRITE)

    async def send(self, producer: AIOKafkaProducer, record: OutboxRecord) -> None:
        """Chain and produce one kept audit event (as AuditLog wrote it). Raises KafkaError or
        TimeoutError while it is not known to be on the broker: the outbox keeps it."""
        try:
            message = AUDIT_RECORDED.decode(record.value)
        except MalformedMessage as exc:  # never written by AuditLog: nothing to chain
            log.error("an outbox record for %s is not an audit event, dropped: %s", record.topic, exc)
            metrics.AUDIT_CHAIN_ANOMALIES.labels("unreadable").inc()
            return
        broker = KafkaBroker(producer)
        async with asyncio.timeout(self.send_timeout_s):
            partition = await broker.partition_for(record.topic, record.key)
        async with self._locked(partition) as lock:
            if await self.client.exists(self.keys.sent(message.event_id)):
                return  # an earlier attempt reached the broker after its caller gave up
            head = await self._settled_head(broker, lock, partition)
            if await self.client.exists(self.keys.sent(message.event_id)):
                return
            await self._append(broker, lock, record.key, partition, head, message)

    @contextlib.asynccontextmanager
    async def _locked(self, partition: int):
        """This process's turn (an asyncio lock), then the partition's lock in Redis, both waited for
        at most the send timeout. A lock `passed` to a send's outcome is released by that task."""
        local = self._local[partition]
        lock = _Lock(self.client, self.keys.lock(partition))
        acquired = False
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await local.acquire()
                acquired = True
                await lock.acquire()
            yield lock
        finally:
            if acquired:
                local.release()
            if lock.held and not lock.passed:
                await lock.release()

    async def head(self, partition: int) -> Head | None:
        return Head.loads(await self.client.get(self.keys.head(partition)))

    async def _write(self, lock: _Lock, partition: int, head: Head, day: str = "", summary: str = "", sent: str = ""):
        ok = await self._guarded_write(
            keys=[self.keys.lock(partition), self.keys.head(partition), self.keys.days, self.keys.sent(sent)],
            args=[lock.token, head.dumps(), day, summary, str(SENT_MEMORY_S) if sent else ""],
        )
        if not ok:
            metrics.AUDIT_CHAIN_ANOMALIES.labels("lock_lost").inc()
            log.error("the audit chain lock of partition %d expired while held: nothing chained now", partition)
            raise ChainLockLost(f"audit chain lock of partition {partition} lost")

    async def _settled_head(self, broker: KafkaBroker, lock: _Lock, partition: int) -> Head | None:
        """The head, a pending entry settled by reading the partition back: found, or never landed."""
        head = await self.head(partition)
        if head is None or head.pending is None:
            return head
        records, _ = await broker.read(self.keys.topic, partition, head.pending["from"])
        wanted = bytes.fromhex(head.pending["hash"])
        copies = [r.offset for r in records if entry_hash(r.value) == wanted]
        if copies:
            log.warning("audit entry %s found on the broker after its send was not confirmed", head.pending["event_id"])
            return await self._landed(broker, lock, partition, head, copies[-1], records)
        self._foreign(partition, [r.offset for r in records])
        settled = replace(head, pending=None, offset=max([head.offset, *(r.offset for r in records)]))
        await self._write(lock, partition, settled)
        return settled

    async def _append(self, broker, lock: _Lock, key: bytes, partition: int, head: Head | None, message) -> Head:
        """Chain `message` after `head` and produce it; the head once the broker has it."""
        if head is None:  # no chain here, or Redis lost it: a new epoch, never a silent continuation
            _, mark = await broker.read(self.keys.topic, partition, None)
            head = Head(uuid.uuid4().hex, -1, GENESIS.hex(), mark - 1, 0.0)
            await self.client.sadd(self.keys.chains, partition)
            metrics.AUDIT_CHAIN_EPOCHS.inc()
            log.warning(
                "audit chain of partition %d begins epoch %s at offset %d: no chain head in Redis (the "
                "partition's first entry, or Redis lost the chain's state)",
                partition,
                head.epoch,
                mark,
            )
        chained_at = max(self.clock(), head.chained_at, head.floor)
        entry = audit_pb2.AuditRecorded()
        entry.CopyFrom(message)
        entry.link.epoch, entry.link.partition, entry.link.sequence = head.epoch, partition, head.sequence + 1
        entry.link.previous_hash = bytes.fromhex(head.hash)
        entry.link.chained_at.FromNanoseconds(int(chained_at * 1e9))
        value, digest = seal_entry(entry, self.writer_key)
        day = utc_day(chained_at)
        summary = json.loads(await self.client.hget(self.keys.days, f"{partition}:{head.epoch}:{day}") or "null")
        waiting = replace(
            head,
            pending={
                "hash": digest.hex(),
                "event_id": message.event_id,
                "from": head.offset + 1,  # where it lands if the broker holds nothing else there
                "sequence": head.sequence + 1,
                "chained_at": chained_at,
                "day": day,
                "first": summary["first"] if summary else head.sequence + 1,
                "count": (summary["count"] if summary else 0) + 1,
                "note": message.event == CHAIN_REPEAT,
            },
        )
        await self._write(lock, partition, waiting)
        async with asyncio.timeout(self.send_timeout_s):  # queued or not at all: a cancelled wait sends nothing
            future = await broker.send(self.keys.topic, value, key, partition)
        try:
            done, _ = await asyncio.wait({future}, timeout=self.send_timeout_s)
        except asyncio.CancelledError:
            self._wait_for(broker, lock, partition, waiting, future)
            raise
        if not done:
            self._wait_for(broker, lock, partition, waiting, future)
            raise TimeoutError(f"the broker has not answered in {self.send_timeout_s:g} s")
        return await self._landed(broker, lock, partition, waiting, future.result().offset)

    def _wait_for(self, broker, lock: _Lock, partition: int, waiting: Head, future) -> None:
        """The send outlived its caller: the lock stays held until the broker decides."""
        lock.passed = True

        async def outcome() -> None:
            lock.passed = False
            try:
                await self._landed(broker, lock, partition, waiting, (await future).offset)
            except (KafkaError, RedisError, TimeoutError) as exc:  # still pending: its next holder reads back
                log.warning("audit entry not confirmed on partition %d: %s", partition, exc)
            finally:
                if not lock.passed:
                    await lock.release()

        task = asyncio.create_task(outcome(), name=f"audit chain {partition}: a send's outcome")
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _landed(self, broker, lock, partition: int, head: Head, offset: int, records=None) -> Head:
        """The pending entry is on the broker at `offset`: move the head; note what else is there."""
        pending = head.pending
        assert pending is not None
        if offset != pending["from"] and records is None:  # the broker holds more than this entry
            records, _ = await broker.read(self.keys.topic, partition, pending["from"])
        wanted = bytes.fromhex(pending["hash"])
        copies = [r.offset for r in records or () if entry_hash(r.value) == wanted]
        self._foreign(partition, [r.offset for r in records or () if r.offset not in copies])
        moved = replace(
            head,
            sequence=pending["sequence"],
            hash=pending["hash"],
            offset=max([offset, *(r.offset for r in records or ())]),
            chained_at=pending["chained_at"],
            first_day=head.first_day or pending["day"],
            pending=None,
        )
        summary = {"first": pending["first"], "count": pending["count"], "last": moved.sequence, "hash": moved.hash}
        day = f"{partition}:{head.epoch}:{pending['day']}"
        await self._write(lock, partition, moved, day, json.dumps(summary), pending["event_id"])
        if pending.get("note"):  # a broker that repeats the note too is broken: no note of a note
            copies = copies[:1]
        for copy in copies[1:]:  # the first copy is the chain's entry; each later one is noted on the trail
            metrics.AUDIT_CHAIN_ANOMALIES.labels("repeat").inc()
            log.error("the broker holds audit entry %s twice (offsets %d, %d)", pending["event_id"], copies[0], copy)
            note = trail_event(CHAIN_REPEAT, offset=copy, of_offset=copies[0], sequence=moved.sequence, hash=moved.hash)
            moved = await self._append(broker, lock, b"", partition, moved, note)
        return moved

    def _foreign(self, partition: int, offsets: list[int]) -> None:
        if offsets:
            metrics.AUDIT_CHAIN_ANOMALIES.labels("foreign").inc(len(offsets))
            log.error("records written around the audit chain on partition %d at offsets %s", partition, offsets)

    async def seal(self, producer, partition: int, until: date, sign, announce) -> list[audit_pb2.AuditDayRoot]:
        """Sign the roots of the chain's days up to `until` that are not signed yet (`sign`); each goes
        into Redis and, in the same transaction, its event into the outbox (`announce`: the record).
        Nothing is chained into a sealed day afterwards: the head's floor moves past it."""
        head = await self.head(partition)
        if head is None or _unsealed(head) is None or _unsealed(head) > until:  # nothing due: no lock taken
            return []
        broker = KafkaBroker(producer)
        async with self._locked(partition) as lock:
            head = await self._settled_head(broker, lock, partition)
            day = _unsealed(head) if head is not None else None
            if day is None:
                return []
            roots, sequence, last = [], head.sealed_sequence, head.sealed_hash
            while day <= until and len(roots) < SEAL_DAYS_AT_ONCE:
                raw = await self.client.hget(self.keys.days, f"{partition}:{head.epoch}:{day.isoformat()}")
                summary = json.loads(raw) if raw else {"first": 0, "count": 0, "last": sequence, "hash": last}
                sequence, last = summary["last"], summary["hash"]
                root = audit_pb2.AuditDayRoot(partition=partition, epoch=head.epoch, day=day.isoformat())
                root.count, root.first_sequence = summary["count"], summary["first"]
                root.last_sequence, root.last_hash = sequence, bytes.fromhex(last)
                roots.append(sign(root))
                day += timedelta(days=1)
            if not roots:
                return []
            sealed = replace(
                head,
                floor=max(head.floor, datetime.combine(day, datetime.min.time(), UTC).timestamp()),
                sealed_day=roots[-1].day,
                sealed_sequence=sequence,
                sealed_hash=last,
            )
            args: list = []
            for root in roots:
                record = announce(root)
                args += [f"{partition}:{root.epoch}:{root.day}", root.SerializeToString(deterministic=True)]
                args += [record.topic, record.key, record.value]
            ok = await self._sealed_write(
                keys=[self.keys.lock(partition), self.keys.head(partition), self.keys.roots, self.keys.stream],
                args=[lock.token, sealed.dumps(), *args],
            )
            if not ok:
                raise ChainLockLost(f"audit chain lock of partition {partition} lost")
            metrics.AUDIT_ROOTS_SIGNED.inc(len(roots))
            return roots


def _unsealed(head: Head) -> date | None:
    """The chain's first day whose root is not signed yet (None before its first entry)."""
    if head.sealed_day:
        return date.fromisoformat(head.sealed_day) + timedelta(days=1)
    return date.fromisoformat(head.first_day) if head.first_day else None

"""The audit trail's check on trails built here as the writers build them: what holds, and the entry
named for each kind of edit (changed, dropped, inserted, duplicated, reordered), with the signed
daily roots that pin the past."""

import base64
import io
import os
from datetime import UTC, datetime, timedelta

import pytest

from lfr.v1 import audit_pb2
from lfr_platform.audit_trail import (
    CHAIN_REPEAT,
    DAY_SEALED,
    GENESIS,
    ExportError,
    TrailRecord,
    entry_hash,
    export_lines,
    read_export,
    root_as_dict,
    root_from_dict,
    roots_on_trail,
    seal_entry,
    sign_root,
    trail_event,
    verify_root,
)
from lfr_platform.audit_verify import verify

DAY = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Writer:
    """Chains entries the way lfr_platform.audit_chain does, one partition, one epoch at a time."""

    def __init__(self, partition: int = 0, epoch: str = "e1", key: bytes | None = None) -> None:
        self.partition, self.epoch, self.key = partition, epoch, key
        self.sequence, self.previous = -1, GENESIS
        self.records: list[TrailRecord] = []

    def restart(self, epoch: str) -> None:  # Redis lost the head
        self.epoch, self.sequence, self.previous = epoch, -1, GENESIS

    def add(self, event: str = "deployment.created", at: datetime = DAY, message=None) -> TrailRecord:
        entry = message or trail_event(event, n=len(self.records))
        self.sequence += 1
        entry.link.epoch, entry.link.partition, entry.link.sequence = self.epoch, self.partition, self.sequence
        entry.link.previous_hash = self.previous
        entry.link.chained_at.FromDatetime(at)
        value, self.previous = seal_entry(entry, self.key)
        record = TrailRecord(self.partition, len(self.records), b"dep", value)
        self.records.append(record)
        return record


def _trail(n: int = 6, partition: int = 0) -> list[TrailRecord]:
    writer = Writer(partition)
    for i in range(n):
        writer.add(at=DAY + timedelta(minutes=i))
    return writer.records


def _event_id(record: TrailRecord) -> str:
    message = audit_pb2.AuditRecorded()
    message.ParseFromString(record.value)
    return message.event_id


def _renumbered(records: list[TrailRecord]) -> list[TrailRecord]:
    """As the broker would hold a tampered copy: offsets in order again."""
    return [TrailRecord(r.partition, i, r.key, r.value) for i, r in enumerate(records)]


def test_an_untouched_trail_holds_with_its_count_of_entries_and_chains():
    verdict = verify(_trail(6, 0) + _trail(3, 1))
    assert verdict.holds and verdict.entries == 9 and len(verdict.chains) == 2
    assert verdict.report()[0] == "chain holds: 9 entries in 2 chains"


def test_an_entry_hashes_its_bytes_as_written_and_any_changed_byte_breaks_it():
    record = _trail(1)[0]
    assert entry_hash(record.value) is not None and record.value[-34:-32] == b"\x7a\x20"
    for at in (0, 5, len(record.value) // 2, len(record.value) - 40, len(record.value) - 1):
        changed = bytearray(record.value)
        changed[at] ^= 0x01
        assert entry_hash(bytes(changed)) is None, at
    assert entry_hash(record.value + b"\x08\x01") is None  # bytes appended after the hash


@pytest.mark.parametrize("at", [3, 40, -40, -1])
def test_a_changed_byte_is_named_as_changed(at):
    trail = _trail()
    changed = bytearray(trail[2].value)
    changed[at] ^= 0x20
    trail[2] = TrailRecord(0, 2, b"dep", bytes(changed))
    verdict = verify(trail)
    assert not verdict.holds
    assert (verdict.finding.kind, verdict.finding.offset) == ("changed", 2)
    assert verdict.report()[0].startswith("chain broken: changed: partition 0 offset 2")


def test_an_entry_changed_and_hashed_again_is_named_by_the_link_of_the_entry_after_it():
    trail = _trail()
    forged = audit_pb2.AuditRecorded()
    forged.ParseFromString(trail[2].value)
    forged.actor = "someone-else"
    trail[2] = TrailRecord(0, 2, b"dep", seal_entry(forged)[0])
    finding = verify(trail).finding
    assert (finding.kind, finding.offset, finding.event_id) == ("changed", 2, _event_id(trail[2]))
    assert "changed and its hash computed again" in finding.detail


def test_a_dropped_entry_is_named_with_the_missing_sequence_and_the_entry_before_it():
    trail = _trail()
    finding = verify(_renumbered(trail[:3] + trail[4:])).finding
    assert (finding.kind, finding.offset) == ("dropped", 3)
    assert "sequence 3 of epoch e1" in finding.detail and _event_id(trail[2]) in finding.detail


def test_a_dropped_first_entry_is_named():
    finding = verify(_renumbered(_trail()[1:])).finding
    assert (finding.kind, finding.offset) == ("dropped", 0) and "sequences 0..0" in finding.detail


def test_a_duplicated_entry_is_named_as_the_same_entry_as_the_first():
    trail = _trail()
    finding = verify(_renumbered(trail[:4] + [trail[1]] + trail[4:])).finding
    assert (finding.kind, finding.offset, finding.event_id) == ("duplicated", 4, _event_id(trail[1]))
    assert "offset 1" in finding.detail


def test_two_swapped_entries_are_named_as_reordered():
    trail = _trail()
    finding = verify(_renumbered([*trail[:2], trail[3], trail[2], *trail[4:]])).finding
    assert (finding.kind, finding.offset, finding.event_id) == ("reordered", 2, _event_id(trail[3]))
    assert "before sequence 2" in finding.detail


def test_an_inserted_entry_with_a_correct_link_is_named_as_inserted():
    trail = _trail()
    forger = Writer()
    forger.sequence, forger.previous = 2, entry_hash(trail[2].value)
    forged = forger.add("deployment.closed", at=DAY + timedelta(minutes=2, seconds=30))
    finding = verify(_renumbered([*trail[:3], forged, *trail[3:]])).finding
    assert (finding.kind, finding.offset, finding.event_id) == ("inserted", 3, _event_id(forged))


def test_an_entry_copied_from_another_partition_is_named_as_inserted():
    trail, other = _trail(), _trail(3, partition=1)
    moved = TrailRecord(0, 3, b"dep", other[1].value)
    finding = verify([*trail[:3], moved, *[TrailRecord(0, r.offset + 1, r.key, r.value) for r in trail[3:]]]).finding
    assert (finding.kind, finding.offset) == ("inserted", 3) and "partition 1" in finding.detail


def test_a_new_epoch_after_redis_lost_the_head_holds_and_is_reported():
    writer = Writer()
    for i in range(3):
        writer.add(at=DAY + timedelta(minutes=i))
    writer.restart("e2")
    for i in range(2):
        writer.add(at=DAY + timedelta(minutes=10 + i))
    verdict = verify(writer.records)
    assert verdict.holds and verdict.entries == 5 and len(verdict.chains) == 2
    assert len(verdict.restarts) == 1 and "epoch e2 began after offset 2" in verdict.restarts[0]
    # An epoch's start replayed later is no restart: it is an insertion.
    finding = verify(_renumbered([*writer.records, writer.records[3]])).finding
    assert finding.kind == "duplicated"


def test_a_repeat_the_writer_noted_holds_and_an_unnoted_one_does_not():
    writer = Writer()
    for i in range(3):
        writer.add(at=DAY + timedelta(minutes=i))
    repeat = TrailRecord(0, 3, b"dep", writer.records[2].value)  # a producer retry the broker kept
    writer.records.append(repeat)
    note = trail_event(CHAIN_REPEAT, offset=3, of_offset=2, sequence=2, hash=entry_hash(repeat.value).hex())
    writer.add(message=note, at=DAY + timedelta(minutes=3))
    verdict = verify(writer.records)
    assert verdict.holds and verdict.entries == 4 and len(verdict.repeats) == 1
    assert not verify(writer.records[:4]).holds  # the same copy without the writer's note


def test_entries_from_before_the_chain_began_are_counted_not_checked():
    old = [TrailRecord(0, i, b"dep", trail_event("deployment.created").SerializeToString()) for i in range(2)]
    chained = [TrailRecord(0, r.offset + 2, r.key, r.value) for r in _trail(3)]
    verdict = verify(old + chained)
    assert verdict.holds and (verdict.unchained, verdict.entries) == (2, 3)
    finding = verify(chained + [TrailRecord(0, 5, b"dep", old[0].value)]).finding
    assert (finding.kind, finding.offset) == ("inserted", 5)


def test_a_period_is_checked_against_the_entry_before_it():
    writer = Writer()
    for day in range(3):
        for i in range(3):
            writer.add(at=DAY + timedelta(days=day, minutes=i))
    start, end = DAY.replace(hour=0) + timedelta(days=1), DAY.replace(hour=0) + timedelta(days=2)
    verdict = verify(writer.records, start=start, end=end)
    assert verdict.holds and verdict.entries == 3
    # The period's first entry must link to the anchor: drop the anchor's successor and it fails.
    gone = _renumbered(writer.records[:3] + writer.records[4:])
    assert verify(gone, start=start, end=end).finding.kind == "dropped"
    # An edit outside the period is not the period's finding.
    outside = list(writer.records)
    outside[7] = TrailRecord(0, 7, b"dep", outside[7].value[:-1] + b"\x00")
    assert verify(outside, start=start, end=end).holds
    # Without the anchor (an export cut at the period), the first entry's predecessors are missing.
    assert verify(writer.records[3:6], start=start, end=end).finding.kind == "dropped"


def _sealed_day(writer: Writer, key: bytes, day: datetime) -> audit_pb2.AuditDayRoot:
    last = audit_pb2.AuditRecorded()
    last.ParseFromString(writer.records[-1].value)
    root = audit_pb2.AuditDayRoot(partition=writer.partition, epoch=writer.epoch, day=day.date().isoformat())
    root.count = sum(1 for r in writer.records if _day_of(r) == root.day)
    root.first_sequence = last.link.sequence - root.count + 1
    root.last_sequence, root.last_hash = last.link.sequence, entry_hash(writer.records[-1].value)
    return sign_root(key, root)


def _day_of(record: TrailRecord) -> str:
    message = audit_pb2.AuditRecorded()
    message.ParseFromString(record.value)
    return message.link.chained_at.ToDatetime().date().isoformat()


def _with_roots(key: bytes) -> tuple[Writer, audit_pb2.AuditDayRoot]:
    writer = Writer(key=key)
    for i in range(4):
        writer.add(at=DAY + timedelta(minutes=i))
    root = _sealed_day(writer, key, DAY)
    event = trail_event(DAY_SEALED, root=base64.b64encode(root.SerializeToString()).decode())
    writer.add(message=event, at=DAY + timedelta(days=1, minutes=1))
    writer.add(at=DAY + timedelta(days=1, minutes=2))
    return writer, root


def test_a_signed_root_on_the_trail_is_checked_and_names_its_key():
    key = os.urandom(32)
    writer, root = _with_roots(key)
    verdict = verify(writer.records, public_keys=[root.public_key])
    assert verdict.holds and verdict.roots == 1 and verdict.root_keys == {root.public_key}
    assert "1 signed daily roots checked" in verdict.report()[1] and verdict.authors_checked
    # The day alone: its root, chained the day after, is checked all the same.
    midnight = DAY.replace(hour=0)
    assert verify(writer.records, start=midnight, end=midnight + timedelta(days=1)).roots == 1
    assert not verify(writer.records, public_keys=[os.urandom(32)]).holds  # another key published
    # A key rotated: the old key still verifies what it signed, beside the new one.
    assert verify(writer.records, public_keys=[os.urandom(32), root.public_key]).holds


def _public(key: bytes) -> bytes:
    return sign_root(key, audit_pb2.AuditDayRoot()).public_key


def test_a_forged_epoch_and_a_forged_continuation_are_named_and_the_genuine_entries_hold():
    """Issue 25 (5): whoever can produce to the topic can hash and chain entries, so a forged new
    epoch (a `deployment.closed` blaming a lost Redis) or a forged continuation of the chain passed,
    and the genuine entry after them was named `inserted`. Only the writers can sign: with the
    published key, each forged entry is named and left out, and the genuine chain holds around it."""
    key = os.urandom(32)
    genuine = Writer(key=key)
    for i in range(3):
        genuine.add(at=DAY + timedelta(minutes=i))
    # A forged epoch: sequence 0 of a new epoch, correctly hashed, unsigned (or signed by another key).
    forger = Writer(epoch="forged", key=os.urandom(32))
    epoch = forger.add("deployment.closed", at=DAY + timedelta(minutes=3))
    # A forged continuation: the next sequence of the genuine chain, linked to its head's hash.
    continuation = Writer(key=None)
    continuation.epoch, continuation.sequence, continuation.previous = "e1", 2, entry_hash(genuine.records[-1].value)
    follows = continuation.add("deployment.closed", at=DAY + timedelta(minutes=4))
    records = [*genuine.records, epoch, follows]
    genuine.add(at=DAY + timedelta(minutes=5))  # the next genuine write continues the genuine chain
    records = _renumbered([*records, genuine.records[-1]])
    verdict = verify(records, public_keys=[_public(key)])
    assert [(f.kind, f.offset) for f in verdict.forged] == [("forged", 3), ("forged", 4)]
    assert verdict.finding == verdict.forged[0] and not verdict.holds
    assert verdict.entries == 4  # the genuine ones, every one accepted: none blamed
    assert "forged: partition 0 offset 3" in verdict.report()[0]
    # Without the published key the forged epoch passes as an epoch; the report says what was not checked.
    unkeyed = verify(records)
    assert not unkeyed.authors_checked and "writers not checked" in unkeyed.report()[-1]


def test_a_signed_entry_whose_bytes_changed_is_changed_not_forged():
    key = os.urandom(32)
    writer = Writer(key=key)
    for i in range(3):
        writer.add(at=DAY + timedelta(minutes=i))
    damaged = bytearray(writer.records[1].value)
    damaged[10] ^= 0x01
    records = [writer.records[0], TrailRecord(0, 1, b"dep", bytes(damaged)), writer.records[2]]
    finding = verify(records, public_keys=[_public(key)]).finding
    assert (finding.kind, finding.offset) == ("changed", 1)


def test_a_consistent_rewrite_of_a_sealed_day_passes_the_chain_but_not_its_root():
    """A broker admin can recompute every hash after an edit (the chain has no key); the root they
    cannot sign again names the old hash."""
    key = os.urandom(32)
    writer, root = _with_roots(key)
    rewritten = Writer()
    for i, record in enumerate(writer.records):
        message = audit_pb2.AuditRecorded()
        message.ParseFromString(record.value)
        if i == 1:
            message.actor = "someone-else"
        rewritten.add(message=message, at=message.link.chained_at.ToDatetime(tzinfo=UTC))
    finding = verify(rewritten.records).finding
    assert (finding.kind, finding.offset) == ("changed", 3) and "signed root of 2026-03-01" in finding.detail
    # The same rewrite, its root events dropped too, still fails against the published root.
    published = [root_from_dict(root_as_dict(root))]
    no_roots = [r for r in rewritten.records if _event(r) != DAY_SEALED]
    assert verify(_renumbered(no_roots)).finding.kind == "dropped"  # the chain itself shows the drop
    assert verify(rewritten.records[:4], roots=published).finding.kind == "changed"


def _event(record: TrailRecord) -> str:
    message = audit_pb2.AuditRecorded()
    message.ParseFromString(record.value)
    return message.event


def test_a_tail_dropped_after_a_published_root_is_found():
    key = os.urandom(32)
    writer, root = _with_roots(key)
    finding = verify(writer.records[:2], roots=[root]).finding
    assert (finding.kind, finding.offset) == ("dropped", 1) and "sequence 3" in finding.detail


def test_a_root_round_trips_through_a_transparency_record_and_any_change_breaks_it():
    key = os.urandom(32)
    writer, root = _with_roots(key)
    assert roots_on_trail(writer.records, "2026-03-01", "2026-03-31") == [root]
    assert roots_on_trail(writer.records, "2026-03-02", "2026-03-31") == []
    again = root_from_dict(root_as_dict(root))
    assert verify_root(again) and verify_root(again, root.public_key)
    again.count += 1
    assert not verify_root(again)


def test_an_export_round_trips_and_a_damaged_line_is_refused():
    trail = _trail(3)
    text = "\n".join(export_lines("audit.recorded.v1", trail, exported_at="now")) + "\n"
    header, records = read_export(io.StringIO(text))
    assert header["topic"] == "audit.recorded.v1" and records == trail
    with pytest.raises(ExportError, match="line 3"):
        read_export(text.splitlines()[:2] + ['{"partition": 0}'])
    with pytest.raises(ExportError, match="header"):
        read_export(text.splitlines()[1:])


def test_an_entry_chained_back_in_time_is_named_as_changed():
    writer = Writer()
    writer.add(at=DAY)
    writer.add(at=DAY + timedelta(minutes=5))
    writer.add(at=DAY + timedelta(minutes=1))  # the writers never do this: max(clock, the head's time)
    finding = verify(writer.records).finding
    assert (finding.kind, finding.offset) == ("changed", 2) and "before offset 1" in finding.detail

"""Whether anyone edited the audit trail: every chain walked in the broker's order, every signed
daily root held against it, and the first entry that was changed, dropped, inserted, duplicated or
reordered named by its partition, offset and event id.

Each partition holds its chains one after another (a new epoch begins only when the writers lost the
chain's head: docs/audit.md). Within an epoch, the entry at sequence n+1 must follow the entry at
sequence n in the partition and carry its hash; every entry's own bytes must hash to the hash it
carries. What breaks that is classified by looking at the rest of the partition: the missing entry
found later is a reordering, never found a drop; a second entry claiming a place already taken is an
insertion (the one the chain does not continue from); the same bytes twice a duplicate, unless a
later entry of the chain notes it as the broker's repeat of a producer retry (audit.chain_repeat).

A keyless chain binds the past to the present, not to the writers: whoever can write the topic can
rewrite a chain's tail consistently. The signed daily roots bound that: each names a chain's last
entry at the end of a UTC day and how many entries the day added, signed with a key the broker does
not hold, so a rewrite of anything a published root covers no longer matches it. And every entry is
signed by its writer with the same key: given the published keys, an entry anybody else produced (a
forged epoch, a forged continuation) is named `forged` and left out of the walk, so the genuine
entries around it are judged as if it were not there, never blamed for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lfr.v1 import audit_pb2
from lfr_platform.audit_trail import (
    CHAIN_REPEAT,
    GENESIS,
    TrailRecord,
    entry_hash,
    fingerprint,
    parsed,
    root_in_entry,
    verify_root,
    written_by,
)

CHANGED, DROPPED, INSERTED, DUPLICATED, REORDERED = "changed", "dropped", "inserted", "duplicated", "reordered"
FORGED = "forged"  # it hashes and may even chain, but no published audit key signed it


@dataclass(frozen=True)
class Finding:
    """The first entry found edited: what happened to it, where, and why the verifier says so."""

    kind: str
    partition: int
    offset: int | None
    event_id: str
    detail: str

    def __str__(self) -> str:
        where = f"partition {self.partition}" + (f" offset {self.offset}" if self.offset is not None else "")
        who = f" event_id {self.event_id}" if self.event_id else ""
        return f"{self.kind}: {where}{who}: {self.detail}"


@dataclass
class Verdict:
    entries: int = 0  # chained entries checked
    chains: set[tuple[int, str]] = field(default_factory=set)  # (partition, epoch)
    unchained: int = 0  # entries from before the chain began on a partition: not evidence
    restarts: list[str] = field(default_factory=list)  # epochs that began after another
    repeats: list[str] = field(default_factory=list)  # the broker's repeats the writers noted
    roots: int = 0  # signed daily roots held against the chains
    root_keys: set[bytes] = field(default_factory=set)
    authors_checked: bool = False  # every entry's signature held against the published keys
    forged: list[Finding] = field(default_factory=list)  # entries no published key signed: left out
    finding: Finding | None = None

    @property
    def holds(self) -> bool:
        return self.finding is None

    def report(self) -> list[str]:
        lines = (
            [f"chain holds: {self.entries} entries in {len(self.chains)} chains"]
            if self.holds
            else [f"chain broken: {self.finding}"]
        )
        if self.roots:
            keys = ", ".join(sorted(fingerprint(k) for k in self.root_keys))
            lines.append(f"{self.roots} signed daily roots checked (key {keys})")
        lines += [f"new chain epoch: {r}" for r in self.restarts]
        lines += [f"noted repeat: {r}" for r in self.repeats]
        if self.unchained:
            lines.append(f"{self.unchained} entries from before the chain began, not checked")
        lines += [f"forged entry, left out of the chain: {f}" for f in self.forged]
        if not self.authors_checked:
            lines.append("writers not checked: give the published audit key (--public-key) to check who wrote each")
        return lines


@dataclass(frozen=True)
class _Entry:
    record: TrailRecord
    message: audit_pb2.AuditRecorded | None
    hash: bytes | None

    @property
    def chained(self) -> bool:
        return self.hash is not None and self.message is not None and self.message.HasField("link")

    @property
    def unchained(self) -> bool:
        """An entry from before chaining began: it parses and has neither link nor hash."""
        return self.message is not None and not self.message.HasField("link") and not self.message.hash

    @property
    def link(self) -> audit_pb2.AuditLink:
        return self.message.link  # type: ignore[union-attr]

    @property
    def time(self) -> datetime | None:
        return self.link.chained_at.ToDatetime(tzinfo=UTC) if self.chained else None

    @property
    def day(self) -> str:
        return self.time.date().isoformat() if self.time else ""

    @property
    def event_id(self) -> str:
        if self.message is not None:
            return self.message.event_id
        return _leading_event_id(self.record.value or b"")

    def finding(self, kind: str, detail: str) -> Finding:
        return Finding(kind, self.record.partition, self.record.offset, self.event_id, detail)

    def named(self) -> str:
        return f"offset {self.record.offset} (sequence {self.link.sequence}, event_id {self.event_id})"


def _leading_event_id(value: bytes) -> str:
    """The event id of bytes that no longer parse, if their first field (event_id, written first) is intact."""
    if len(value) > 2 and value[0] == 0x0A and value[1] <= 64:
        text = value[2 : 2 + value[1]].decode("ascii", "replace")
        if text.isalnum():
            return text
    return ""


def _opened(record: TrailRecord) -> _Entry:
    return _Entry(record, parsed(record.value), entry_hash(record.value))


class _Chains:
    """What the walk accepted, for the roots: entries by (partition, epoch, sequence), days counted."""

    def __init__(self) -> None:
        self.at: dict[tuple[int, str, int], _Entry] = {}
        self.last: dict[tuple[int, str], _Entry] = {}
        self.days: dict[tuple[int, str, str], int] = defaultdict(int)

    def accept(self, entry: _Entry, counted: bool = True) -> None:
        link = entry.link
        self.at[(link.partition, link.epoch, link.sequence)] = entry
        self.last[(link.partition, link.epoch)] = entry
        if counted:
            self.days[(link.partition, link.epoch, entry.day)] += 1


def verify(
    records: Iterable[TrailRecord],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    roots: Iterable[audit_pb2.AuditDayRoot] = (),
    public_keys: Iterable[bytes] = (),
) -> Verdict:
    """Check the trail (records in each partition's order), or its entries chained in [start, end).

    A period's first entry in each chain is checked against the entry before it (the anchor, read
    but not itself checked: that is the earlier period's question, or a signed root's). Roots are
    those the trail carries plus `roots` (from a transparency record). With `public_keys` (the
    published audit keys: the current one and those it replaced) a root signed by any other key is a
    finding, and so is an entry that none of them signed: it is named `forged` and left out.
    """
    keys = set(public_keys)
    verdict = Verdict(authors_checked=bool(keys))
    chains = _Chains()
    partitions: dict[int, list[_Entry]] = defaultdict(list)
    carried = []  # the roots on the trail, wherever they are: a signature, not a place, makes them evidence
    for record in records:
        entry = _opened(record)
        if keys and entry.chained and not written_by(record.value, keys):
            verdict.forged.append(entry.finding(FORGED, "no published audit key signed it"))
            continue
        partitions[record.partition].append(entry)
        root = root_in_entry(entry.message) if entry.chained else None  # type: ignore[arg-type]
        if root is not None:
            carried.append(root)
    for partition in sorted(partitions):
        verdict.finding = _walk(partitions[partition], start, end, verdict, chains)
        if verdict.finding is not None:
            break
    if verdict.finding is None:
        verdict.finding = _check_roots([*carried, *roots], chains, start, end, keys, verdict)
    if verdict.forged:  # the first forged entry is what broke the trail; the walk saw the genuine ones
        verdict.finding = verdict.forged[0]
    return verdict


def with_anchors(records: Iterable[TrailRecord], start: datetime | None, end: datetime | None) -> list[TrailRecord]:
    """The records chained in [start, end) and, in each partition, the one before them (the anchor its
    first entry links to), then the roots of the period's days sealed after it: what an export of the
    period holds, so that it verifies on its own."""
    partitions: dict[int, list[_Entry]] = defaultdict(list)
    for record in records:
        partitions[record.partition].append(_opened(record))
    kept = []
    for partition in sorted(partitions):
        entries = partitions[partition]
        first, stop = _period(entries, start, end)
        kept += [e.record for e in entries[max(0, first - 1) : stop]]
        for e in entries[stop:]:
            root = root_in_entry(e.message) if e.chained else None  # type: ignore[arg-type]
            if root is not None and (end is None or root.day < end.date().isoformat()):
                kept.append(e.record)
    return kept


def _period(entries: list[_Entry], start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Indexes [first, stop) of the entries chained in [start, end): chains are in time order."""
    first = 0
    if start is not None:
        for i, e in enumerate(entries):
            if e.time is not None and e.time < start:
                first = i + 1
    stop = len(entries)
    if end is not None:
        stop = next((i for i in range(first, len(entries)) if entries[i].time and entries[i].time >= end), stop)
    return first, stop


def _walk(entries: list[_Entry], start, end, verdict: Verdict, chains: _Chains) -> Finding | None:
    first, stop = _period(entries, start, end)
    state: _Entry | None = None  # the last entry accepted
    epochs: set[str] = set()
    if first > 0:
        anchor = entries[first - 1]
        if anchor.chained:
            state = anchor
            epochs.add(anchor.link.epoch)
            chains.accept(anchor, counted=False)
        elif not anchor.unchained:
            return anchor.finding(CHANGED, "the entry the period's first entry links to is damaged")
    later = entries[first:]  # what the classification may look at: the rest of the partition
    noted = _noted_repeats(later)
    seen: dict[bytes, _Entry] = {state.hash: state} if state and state.hash else {}
    chaining_began = state is not None
    for i in range(first, stop):
        e = entries[i]
        if not e.chained:
            if e.unchained and not chaining_began:
                verdict.unchained += 1
                continue
            if e.unchained:
                return e.finding(INSERTED, "an entry without a chain link, after the chain began")
            return e.finding(CHANGED, "its bytes do not hash to the hash it carries")
        chaining_began = True
        link = e.link
        if link.partition != e.record.partition:
            return e.finding(INSERTED, f"it was chained in partition {link.partition}")
        if e.hash in seen:
            original = seen[e.hash]
            if noted.get(e.record.offset) == e.hash:
                verdict.repeats.append(
                    f"partition {link.partition} {e.named()} repeats offset {original.record.offset}"
                )
                continue
            return e.finding(DUPLICATED, f"the same entry as {original.named()}")
        if link.sequence == 0:
            if link.previous_hash != GENESIS or link.epoch in epochs:
                return e.finding(INSERTED, f"a second start of epoch {link.epoch}")
            if state is not None:
                verdict.restarts.append(
                    f"partition {link.partition} offset {e.record.offset}: epoch {link.epoch} began after "
                    f"{state.named()} of epoch {state.link.epoch} (the writers found no chain head in Redis)"
                )
        else:
            broken = _break(e, state, entries, i, stop)
            if broken is not None:
                return broken
            if e.time < state.time:  # type: ignore[operator, union-attr]
                # The writers never chain back in time (nor into a sealed day): a rewritten entry.
                return e.finding(CHANGED, f"chained at {e.time:%Y-%m-%d %H:%M:%S}, before {state.named()}")
        state = e
        epochs.add(link.epoch)
        seen[e.hash] = e  # type: ignore[index]
        chains.accept(e)
        verdict.entries += 1
        verdict.chains.add((link.partition, link.epoch))
    return None


def _noted_repeats(entries: list[_Entry]) -> dict[int, bytes]:
    """{offset: hash} of the copies the writers noted as the broker's repeats (audit.chain_repeat)."""
    noted = {}
    for e in entries:
        if e.chained and e.message.event == CHAIN_REPEAT:  # type: ignore[union-attr]
            details = e.message.details.fields  # type: ignore[union-attr]
            try:
                noted[int(details["offset"].number_value)] = bytes.fromhex(details["hash"].string_value)
            except (KeyError, ValueError):
                continue
    return noted


def _break(e: _Entry, state: _Entry | None, entries: list[_Entry], i: int, stop: int) -> Finding | None:
    """None when `e` follows `state`; else what happened, judged from the rest of the partition."""
    link = e.link
    if state is None:
        return e.finding(DROPPED, f"sequences 0..{link.sequence - 1} of epoch {link.epoch} are missing before it")
    if link.epoch != state.link.epoch:
        return e.finding(INSERTED, f"an entry of epoch {link.epoch} after epoch {state.link.epoch} began")
    expected = state.link.sequence + 1
    if link.sequence == expected and link.previous_hash == state.hash:
        return None
    rest = entries[i + 1 :]

    def found(sequence: int, previous: bytes | None = None) -> _Entry | None:
        return next(
            (
                x
                for x in rest
                if x.chained
                and x.link.epoch == link.epoch
                and x.link.sequence == sequence
                and (previous is None or x.link.previous_hash == previous)
            ),
            None,
        )

    if link.sequence == expected:  # in place, but linked to another hash
        if found(expected, state.hash) is not None:
            return e.finding(INSERTED, f"it claims sequence {expected}, which follows later in the partition")
        return state.finding(
            CHANGED,
            f"the entry after it ({e.named()}) links to hash {link.previous_hash.hex()[:16]}, not to this "
            f"entry's {state.hash.hex()[:16]}: this entry was changed and its hash computed again",  # type: ignore[union-attr]
        )
    if link.sequence > expected:
        missing = found(expected)
        if missing is not None:
            return e.finding(
                REORDERED, f"sequence {link.sequence} comes before sequence {expected} ({missing.named()})"
            )
        gap = (
            f"sequence {expected} of epoch {link.epoch}, after {state.named()}, is missing"
            if link.sequence == expected + 1
            else f"sequences {expected}..{link.sequence - 1} of epoch {link.epoch}, after {state.named()}, are missing"
        )
        return e.finding(DROPPED, f"{gap} before it")
    # A sequence already passed: a second entry for a place in the chain.
    if link.sequence == state.link.sequence and link.previous_hash == state.link.previous_hash:
        if found(expected, e.hash) is not None:  # the chain goes on from `e`: `state` was the insertion
            return state.finding(
                INSERTED, f"a second entry at sequence {link.sequence}; the chain continues from {e.named()}"
            )
        return e.finding(INSERTED, f"a second entry at sequence {link.sequence} (the first: {state.named()})")
    return e.finding(REORDERED, f"sequence {link.sequence} comes after {state.named()}")


def _check_roots(roots, chains: _Chains, start, end, public_keys: set[bytes], verdict: Verdict) -> Finding | None:
    """Each signed root against the chain it names: its last entry's hash, and the day's count."""
    by_place: dict[tuple[int, str, str], audit_pb2.AuditDayRoot] = {}
    for root in roots:
        place = (root.partition, root.epoch, root.day)
        signed = any(verify_root(root, k) for k in public_keys) if public_keys else verify_root(root)
        if not signed:
            why = "is not signed by a published key" if public_keys else "has an invalid signature"
            return Finding(
                CHANGED, root.partition, None, "", f"the daily root of {root.day} (epoch {root.epoch}) {why}"
            )
        if place in by_place and by_place[place].SerializeToString(deterministic=True) != root.SerializeToString(
            deterministic=True
        ):
            return Finding(
                CHANGED, root.partition, None, "", f"two different signed roots of {root.day} for epoch {root.epoch}"
            )
        by_place[place] = root
    for (partition, epoch, day), root in sorted(by_place.items()):
        verdict.root_keys.add(root.public_key)
        begins = datetime.fromisoformat(day).replace(tzinfo=UTC)
        ends = begins + timedelta(days=1)
        inside = (start is None or ends > start) and (end is None or begins < end)  # the day meets the period
        whole_day = (start is None or begins >= start) and (end is None or ends <= end)
        entry = chains.at.get((partition, epoch, root.last_sequence))
        last = chains.last.get((partition, epoch))
        said = f"the signed root of {day} names sequence {root.last_sequence} (hash {root.last_hash.hex()[:16]})"
        if entry is not None:
            if entry.hash != root.last_hash:
                rewritten = "it or an entry before it was changed, the hashes computed again"
                return entry.finding(CHANGED, f"{said}: this entry's differs ({rewritten})")
        elif inside and last is not None and last.link.sequence < root.last_sequence:
            return last.finding(DROPPED, f"{said}, but the chain ends here: the entries after it were dropped")
        elif inside and last is None and start is None:
            return Finding(DROPPED, partition, None, "", f"{said} of epoch {epoch}, which is not on the trail")
        else:
            continue  # the entry it names is outside what was read
        if whole_day and chains.days.get((partition, epoch, day), 0) != root.count:
            found = chains.days.get((partition, epoch, day), 0)
            kind = DROPPED if found < root.count else INSERTED
            return Finding(
                kind, partition, None, "", f"the signed root of {day} counts {root.count} entries, the trail {found}"
            )
        verdict.roots += 1
    return None

"""The audit trail as evidence: how an entry and a signed daily root are encoded, and the export file.

Pure (no broker, no Redis): the writer (lfr_platform.audit_chain), the day sealer
(lfr_platform.audit_roots), the check (lfr_platform.audit_verify) and `lfr audit` share it, so that
what is written and what is checked are one definition. docs/audit.md has the design and the threat
model; docs/decisions/0016-a-tamper-evident-audit-trail.md the reasons.

An entry is the AuditRecorded with its `link` set, serialised deterministically, followed by its
`hash` field: SHA-256 of CONTEXT and every byte before that field, then its `writer_signature` field:
Ed25519 by the installation's audit key over WRITER_CONTEXT and the hash. A verifier hashes the bytes
as the writer produced them, so a changed byte anywhere in the record changes the hash, whatever a
parser would make of it; and with the published key it knows who wrote them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct

from lfr.v1 import audit_pb2

CONTEXT = b"lfr.v1.AuditRecorded\x00"
ROOT_CONTEXT = b"lfr.v1.AuditDayRoot\x00"
WRITER_CONTEXT = b"lfr.v1.AuditEntry.writer\x00"
HASH_BYTES = 32
SIGNATURE_BYTES = 64
# The hash field's tag (field 15, length-delimited: 15 << 3 | 2 = 0x7a) and length (32): an entry's
# last 34 bytes are these two and its hash (before its signature, when it is signed).
HASH_FIELD = bytes([15 << 3 | 2, HASH_BYTES])
# The writer signature's field: tag 16 << 3 | 2 = 130 (varint 0x82 0x01), length 64.
SIGNATURE_FIELD = bytes([0x82, 0x01, SIGNATURE_BYTES])
SIGNED_TAIL = len(SIGNATURE_FIELD) + SIGNATURE_BYTES
GENESIS = bytes(HASH_BYTES)  # the previous hash of an epoch's first entry

# The trail's own events (details in docs/audit.md).
DAY_SEALED = "audit.day_sealed"  # a chain's signed root of a UTC day
CHAIN_REPEAT = "audit.chain_repeat"  # the broker kept one entry twice (a producer retry); names the copy

EXPORT_FORMAT = "lfr.audit-export.v1"


def seal_entry(message: audit_pb2.AuditRecorded, writer_key: bytes | None = None) -> tuple[bytes, bytes]:
    """(record value, hash) of an entry whose `link` is set, signed with `writer_key` (the audit key's
    private half) when given."""
    unhashed = audit_pb2.AuditRecorded()
    unhashed.CopyFrom(message)
    unhashed.ClearField("hash")
    unhashed.ClearField("writer_signature")
    body = unhashed.SerializeToString(deterministic=True)
    digest = hashlib.sha256(CONTEXT + body).digest()
    value = body + HASH_FIELD + digest
    if writer_key is not None:
        value += SIGNATURE_FIELD + Ed25519PrivateKey.from_private_bytes(writer_key).sign(WRITER_CONTEXT + digest)
    return value, digest


def _hashed(value: bytes) -> tuple[bytes, bytes | None]:
    """(the bytes that end with the hash field, the writer's signature or None)."""
    if (
        len(value) >= len(HASH_FIELD) + HASH_BYTES + SIGNED_TAIL
        and value[-SIGNED_TAIL:-SIGNATURE_BYTES] == SIGNATURE_FIELD
        and value[-SIGNED_TAIL - 34 : -SIGNED_TAIL - 32] == HASH_FIELD
    ):
        return value[:-SIGNED_TAIL], value[-SIGNATURE_BYTES:]
    return value, None


def _hash_of(hashed: bytes) -> bytes | None:
    if len(hashed) < len(HASH_FIELD) + HASH_BYTES or hashed[-34:-32] != HASH_FIELD:
        return None
    digest = hashed[-HASH_BYTES:]
    return digest if hashlib.sha256(CONTEXT + hashed[:-34]).digest() == digest else None


def entry_hash(value: bytes | None) -> bytes | None:
    """The hash an entry carries, if its bytes hash to it; None for a changed byte or a non-entry."""
    if not value:
        return None
    hashed, signature = _hashed(value)
    digest = _hash_of(hashed)
    if digest is None and signature is not None:  # bytes that only look like a signed tail
        digest = _hash_of(value)
    return digest


def written_by(value: bytes | None, public_keys) -> bool:
    """The entry's bytes hash to its hash, and that hash is signed by one of `public_keys` (raw
    Ed25519, the published audit keys)."""
    if not value:
        return False
    hashed, signature = _hashed(value)
    digest = _hash_of(hashed)
    if digest is None or signature is None:
        return False
    for key in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, WRITER_CONTEXT + digest)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def trail_event(event: str, **details) -> audit_pb2.AuditRecorded:
    """An event of the trail itself, recorded by the system for no deployment."""
    message = audit_pb2.AuditRecorded(event_id=uuid.uuid4().hex, event=event, actor="system", role="system")
    message.at.GetCurrentTime()
    body = Struct()
    body.update(details)
    message.details.CopyFrom(body)
    return message


@dataclass(frozen=True)
class TrailRecord:
    """One record of the audit topic as read from the broker or an export."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0


# --- signed daily roots ----------------------------------------------------------------------------
def public_key_of(private_key: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    """How a person compares keys: the first 16 hex digits of the key's SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _root_bytes(root: audit_pb2.AuditDayRoot) -> bytes:
    unsigned = audit_pb2.AuditDayRoot()
    unsigned.CopyFrom(root)
    unsigned.signature = b""
    return ROOT_CONTEXT + unsigned.SerializeToString(deterministic=True)


def sign_root(private_key: bytes, root: audit_pb2.AuditDayRoot) -> audit_pb2.AuditDayRoot:
    """The root with its public key and signature set."""
    root.public_key = public_key_of(private_key)
    root.signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(_root_bytes(root))
    return root


def verify_root(root: audit_pb2.AuditDayRoot, public_key: bytes | None = None) -> bool:
    """The root was signed by `public_key` (the published one), or by the key it names when none is
    given (then only the published key's fingerprint, compared by a person, makes it evidence)."""
    key = public_key if public_key is not None else root.public_key
    if len(key) != 32 or not root.signature or (public_key is not None and root.public_key != public_key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(root.signature, _root_bytes(root))
        return True
    except InvalidSignature:
        return False


def root_as_dict(root: audit_pb2.AuditDayRoot) -> dict:
    """JSON of a root, as a transparency record embeds it: bytes in hex, the signed message in base64."""
    return {
        "partition": root.partition,
        "epoch": root.epoch,
        "day": root.day,
        "count": root.count,
        "first_sequence": root.first_sequence,
        "last_sequence": root.last_sequence,
        "last_hash": root.last_hash.hex(),
        "public_key": root.public_key.hex(),
        "signature": root.signature.hex(),
        "signed": base64.b64encode(root.SerializeToString(deterministic=True)).decode(),
    }


def root_from_dict(data: dict) -> audit_pb2.AuditDayRoot:
    """The root a dict of root_as_dict carries: its `signed` bytes, which alone are checked."""
    root = audit_pb2.AuditDayRoot()
    root.ParseFromString(base64.b64decode(data["signed"]))
    return root


def root_in_entry(message: audit_pb2.AuditRecorded) -> audit_pb2.AuditDayRoot | None:
    """The signed root an audit.day_sealed entry carries."""
    if message.event != DAY_SEALED or "root" not in message.details.fields:
        return None
    root = audit_pb2.AuditDayRoot()
    try:
        root.ParseFromString(base64.b64decode(message.details.fields["root"].string_value))
    except (ValueError, DecodeError):
        return None
    return root


def roots_on_trail(records: Iterable[TrailRecord], first: str, last: str) -> list[audit_pb2.AuditDayRoot]:
    """The signed roots the trail carries for the UTC days first..last (YYYY-MM-DD, both included),
    each intact and signed by the key it names (whether that key is the published one is the
    reader's check), in day order."""
    roots = []
    for record in records:
        message = parsed(record.value) if entry_hash(record.value) else None
        root = root_in_entry(message) if message is not None else None
        if root is not None and first <= root.day <= last and verify_root(root):
            roots.append(root)
    return sorted(roots, key=lambda r: (r.day, r.partition, r.epoch))


# --- the export file: JSON lines ------------------------------------------------------------------
def export_lines(topic: str, records: Iterable[TrailRecord], **header) -> Iterator[str]:
    """A header line, then one line per record: partition, offset, key and value (base64) are what is
    checked; event, event_id and sequence are there for people reading the file."""
    yield json.dumps({"format": EXPORT_FORMAT, "topic": topic, **header})
    for r in records:
        line = {
            "partition": r.partition,
            "offset": r.offset,
            "timestamp_ms": r.timestamp_ms,
            "key": base64.b64encode(r.key or b"").decode(),
            "value": base64.b64encode(r.value or b"").decode(),
        }
        message = parsed(r.value)
        if message is not None:
            line.update(event=message.event, event_id=message.event_id)
            if message.HasField("link"):
                line["sequence"] = message.link.sequence
        yield json.dumps(line)


class ExportError(ValueError):
    """The file is not an audit export."""


def read_export(lines: Iterable[str]) -> tuple[dict, list[TrailRecord]]:
    """(header, records in the file's order)."""
    header: dict | None = None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if header is None:
                if data.get("format") != EXPORT_FORMAT:
                    raise ExportError(f"line 1 is not an {EXPORT_FORMAT} header")
                header = data
                continue
            records.append(
                TrailRecord(
                    int(data["partition"]),
                    int(data["offset"]),
                    base64.b64decode(data["key"]),
                    base64.b64decode(data["value"]),
                    int(data.get("timestamp_ms", 0)),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ExportError):
                raise
            raise ExportError(f"line {number} is not an exported record: {exc}") from None
    if header is None:
        raise ExportError("an empty file")
    return header, records


def parsed(value: bytes | None) -> audit_pb2.AuditRecorded | None:
    message = audit_pb2.AuditRecorded()
    try:
        message.ParseFromString(value or b"")
    except (DecodeError, RuntimeError):  # a damaged record: the verifier reports it, not this
        return None
    return message

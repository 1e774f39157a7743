"""The signed daily roots of the audit chains: for each chain and ended UTC day, the hash of the
chain's last entry at the day's end and how many entries the day added, signed with the audit root
key (Ed25519).

The roots are computed from the writers' own record of what they chained (the day counts and heads in
Redis), not from the broker, so a root says what the writers wrote whatever the broker now holds. The
deployments service's janitor signs them soon after midnight UTC (`DaySealer`); each goes into Redis
and onto the trail itself (an audit.day_sealed event, chained like any other), and a transparency
record embeds those of its period (`day_roots`, `root_as_dict`). Once a root is published outside
the broker, no one can change the entries it covers without the change showing: the signing key is
not the broker's to hold.

The key is derived from the key-encryption key (`KeyWrap.derive`): it survives a loss of Redis, needs
no secret of its own, and its public half is logged at the deployments service's start and carried
by every root (docs/audit.md says where to publish it and who else holds it).
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, date, datetime, timedelta

from aiokafka.errors import KafkaError

from lfr.v1 import audit_pb2
from lfr_platform.audit import AuditLog
from lfr_platform.audit_chain import ChainKeys, chain_keys
from lfr_platform.audit_trail import DAY_SEALED, fingerprint, public_key_of, sign_root, trail_event
from lfr_platform.clock import Clock, system
from lfr_platform.outbox import OutboxRecord
from lfr_platform.registry import RedisKeys
from lfr_platform.sealing import KeyWrap

log = logging.getLogger(__name__)

ROOT_KEY_PURPOSE = "audit root"


def root_signing_key(key_wrap: KeyWrap) -> bytes:
    """The audit key's private half (raw Ed25519, 32 bytes): it signs the daily roots and every entry
    (AuditLog's writer_key). HKDF-SHA256 of the key-encryption key, no salt, info "lfr kek audit root":
    every service that holds the KEK derives the same key, and nothing stores it (docs/audit.md)."""
    return key_wrap.derive(ROOT_KEY_PURPOSE)


class DaySealer:
    """Signs the roots of every chain's ended UTC days that are not signed yet."""

    def __init__(self, audit: AuditLog, signing_key: bytes, clock: Clock = system) -> None:
        # The writers' wall clock, not a service's test clock: entries are chained on system time.
        self.audit = audit
        self.signing_key = signing_key
        self.public_key = public_key_of(signing_key)
        self.clock = clock

    async def seal_due(self) -> list[audit_pb2.AuditDayRoot]:
        producer = self.audit.outbox.producer
        if producer is None:
            return []
        yesterday = datetime.fromtimestamp(self.clock(), UTC).date() - timedelta(days=1)
        chain = self.audit.chain
        roots: list[audit_pb2.AuditDayRoot] = []
        for partition in sorted(int(p) for p in await chain.client.smembers(chain.keys.chains)):
            try:
                roots += await chain.seal(producer, partition, yesterday, self._sign, self._announce)
            except (KafkaError, TimeoutError) as exc:  # a pending entry not settled yet: next sweep
                log.warning("audit chain of partition %d not sealed yet: %s", partition, exc)
        if roots:
            log.info("signed %d daily root(s) of the audit chains, up to %s", len(roots), yesterday)
        return roots

    def _sign(self, root: audit_pb2.AuditDayRoot) -> audit_pb2.AuditDayRoot:
        return sign_root(self.signing_key, root)

    def _announce(self, root: audit_pb2.AuditDayRoot) -> OutboxRecord:
        return self.audit.as_record(
            trail_event(
                DAY_SEALED,
                partition=root.partition,
                epoch=root.epoch,
                day=root.day,
                count=root.count,
                first_sequence=root.first_sequence,
                last_sequence=root.last_sequence,
                last_hash=root.last_hash.hex(),
                key=fingerprint(root.public_key),
                root=base64.b64encode(root.SerializeToString(deterministic=True)).decode(),
            )
        )


async def day_roots(client, keys: ChainKeys, first: date, last: date) -> list[audit_pb2.AuditDayRoot]:
    """The signed roots of every chain for the UTC days first..last (both included), in day order."""
    roots = []
    for raw in (await client.hgetall(keys.roots)).values():
        root = audit_pb2.AuditDayRoot()
        root.ParseFromString(raw)
        if first.isoformat() <= root.day <= last.isoformat():
            roots.append(root)
    return sorted(roots, key=lambda r: (r.day, r.partition, r.epoch))


def roots_keys(redis_prefix: str, topic_prefix: str) -> ChainKeys:
    """Where the roots of an installation are (its Redis prefix and topic prefix, as its settings say)."""
    return chain_keys(RedisKeys(redis_prefix).outbox(), topic_prefix)

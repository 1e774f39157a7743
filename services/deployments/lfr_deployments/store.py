"""Deployment records in Redis, written only by the deployments service. Key layout: lfr_platform.registry.RedisKeys."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from lfr_deployments import operating
from lfr_deployments.lifecycle import NewDeployment, Threshold
from lfr_deployments.prediction import Prediction
from lfr_platform.deployment_record import (
    FIELD,
    RECORD_VERSION,
    REVIEW_FIELDS,
    DeploymentRecord,
    RecordInvalid,
    fields,
    increments,
    kept_in_tombstone,
    lost_record,
    new_deployment_record,
)
from lfr_platform.registry import CLOSED, EXPIRED, STATS_PREFIX, RedisKeys, write_new_deployment
from lfr_platform.sealing import KeyWrap, seal
from lfr_platform.signing import new_alert_key

log = logging.getLogger(__name__)

# The version written into a record migrated on reading, if the record still exists (a lost one is
# never re-created by it) and has none.
_MARK_MIGRATED = """
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then
  return redis.call("HSETNX", KEYS[1], ARGV[2], ARGV[3])
end
return 0
"""


class DeploymentStore:
    def __init__(
        self, client: aioredis.Redis, keys: RedisKeys, key_wrap: KeyWrap, operational_retention_s: float = 7 * 86400
    ) -> None:
        self.client = client
        self.keys = keys
        self.key_wrap = key_wrap  # the data key is stored wrapped by the key-encryption key
        # How long after its planned end a deployment's alerts can still be decided (and signed).
        self.operational_retention_s = operational_retention_s

    async def create(
        self, deployment_id: str, new: NewDeployment, data_key: bytes, actor: str, now: float
    ) -> DeploymentRecord:
        alert_key, alert_public_key = new_alert_key()
        record = new_deployment_record(
            deployment_id,
            name=new.name,
            purpose=new.purpose,
            authorising_officer=new.authorising_officer,
            location=new.location,
            planned_start=new.planned_start,
            planned_end=new.planned_end,
            cameras=[(c.van_id, c.camera_id) for c in new.cameras],
            threshold=new.threshold.value,
            threshold_floor=new.threshold.floor,
            threshold_override_reason=new.threshold_override_reason,
            model_id=new.model_id,
            watchlist_size_limit=new.watchlist_size_limit,
            created_at=now,
            created_by=actor,
            alert_public_key=alert_public_key,
            where=new.where,
            urgent=new.urgent,
            ratify_by=new.ratify_by,
            min_margin=new.min_margin,
            perceived_groups=new.perceived_groups,
            equity=new.equity,
            false_alert_budget=new.threshold.point.budget,
            prediction=new.predicted.as_dict() if new.predicted is not None else None,
            operating_point=operating.encode(new.threshold),
        )
        ttl_s = new.planned_end - now + self.operational_retention_s
        await write_new_deployment(self.client, self.keys, self.key_wrap, record, data_key, alert_key, ttl_s)
        return record

    async def get(self, deployment_id: str) -> DeploymentRecord | None:
        """The record, None if there is none; raises RecordInvalid (the field named) for one that
        cannot be read."""
        raw = await self.client.hgetall(self.keys.deployment(deployment_id))
        return DeploymentRecord.from_redis(deployment_id, raw) if raw else None

    async def list(self) -> list[DeploymentRecord]:
        """Every record that can be read; one that cannot is logged with its field, and left out."""
        records = []
        for deployment_id in [i.decode() for i in await self.client.zrange(self.keys.all_deployments(), 0, -1)]:
            try:
                record = await self.get(deployment_id)
            except RecordInvalid as exc:
                log.error("%s: left out of the list", exc, extra={"deployment_id": deployment_id, "field": exc.field})
                continue
            if record is not None:
                records.append(record)
        return records

    async def set_field(self, deployment_id: str, **values: Any) -> None:
        await self.client.hset(self.keys.deployment(deployment_id), mapping=fields(**values))

    async def mark_migrated(self, deployment_id: str) -> None:
        """A record read as version 0 gets the version it was migrated to, so it is migrated once."""
        key = self.keys.deployment(deployment_id)
        await self.client.eval(_MARK_MIGRATED, 1, key, FIELD.deployment_id, FIELD.version, str(RECORD_VERSION))

    async def mark_closed(self, deployment_id: str, status: str, actor: str, reason: str, now: float) -> None:
        """From here on the pipeline refuses the deployment's records; deletion follows."""
        assert status in (CLOSED, EXPIRED)
        await self.client.hset(
            self.keys.deployment(deployment_id),
            mapping=fields(status=status, closed_at=now, closed_by=actor, close_reason=reason),
        )

    async def mark_lost(self, deployment_id: str, now: float) -> None:
        """A record for a deployment whose record was lost: what is known of it now, and when."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.deployment(deployment_id), mapping=lost_record(deployment_id, now))
            pipe.zadd(self.keys.all_deployments(), {deployment_id: now})
            await pipe.execute()

    async def check_epoch(self, known: str | None) -> tuple[str, bool]:
        """This Redis's epoch (written if missing), and whether it differs from the one known before:
        Redis then lost (or was replaced with) the state this process saw."""
        epoch = await self.client.get(self.keys.epoch())
        if epoch is None:
            candidate = uuid.uuid4().hex
            await self.client.set(self.keys.epoch(), candidate, nx=True)
            epoch = await self.client.get(self.keys.epoch())
        epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
        return epoch, known is not None and epoch != known

    async def erase(self, deployment_id: str) -> int:
        """Delete every key of the deployment (data key, alert state, subjects, image hashes) and
        reduce its record to the tombstone fields. Returns how many keys were deleted."""
        deleted = 0
        async for key in self.client.scan_iter(match=self.keys.deployment_pattern(deployment_id), count=500):
            deleted += await self.client.delete(key)
        record_key = self.keys.deployment(deployment_id)
        extra = [f for f in await self.client.hkeys(record_key) if not kept_in_tombstone(f.decode())]
        if extra:
            await self.client.hdel(record_key, *extra)
        return deleted

    async def rewrite_history(self) -> bool:
        """Redis's append-only file still holds the commands that wrote erased keys (the wrapped data
        key among them) until it is rewritten: ask Redis to rewrite it now. Best effort (a managed Redis
        may refuse the command); True when a rewrite was started or scheduled."""
        try:
            info = await self.client.info("persistence")
            if not int(info.get("aof_enabled", 0)):
                return False
            await self.client.bgrewriteaof()
            return True
        except redis.exceptions.ResponseError as exc:
            log.warning("Redis refused to rewrite its append-only file after a deletion: %s", exc)
            return False

    async def finish_close(self, deployment_id: str, report: dict) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.deployment(deployment_id), mapping=fields(deletion=report))
            pipe.zrem(self.keys.planned_ends(), deployment_id)
            await pipe.execute()

    async def data_key(self, deployment_id: str) -> bytes | None:
        """The deployment's data key, None once it is closed (the key destroyed)."""
        wrapped = await self.client.get(self.keys.data_key(deployment_id))
        return None if wrapped is None else self.key_wrap.unwrap(wrapped, deployment_id)

    async def prepare_entry(self, deployment_id: str, entry_id: str, now: float) -> None:
        """Before an entry reaches the watchlist log (and so the match replicas): it is marked pending
        and the watchlist's review cleared, in one transaction, so that no entry a crash leaves in the
        log without its record can be matched under a review that never saw it."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.pending_entries(deployment_id), entry_id, repr(now))
            pipe.hdel(self.keys.deployment(deployment_id), *REVIEW_FIELDS)
            await pipe.execute()

    async def pending_entries(self, deployment_id: str) -> dict[str, float]:
        """Entries prepared and neither recorded nor taken back out (entry id -> time prepared)."""
        raw = await self.client.hgetall(self.keys.pending_entries(deployment_id))
        return {k.decode(): float(v) for k, v in raw.items()}

    async def drop_pending(self, deployment_id: str, entry_id: str) -> None:
        await self.client.hdel(self.keys.pending_entries(deployment_id), entry_id)

    async def entry_recorded(self, deployment_id: str, entry_id: str) -> bool:
        return bool(await self.client.hexists(self.keys.manifest(deployment_id), entry_id))

    async def record_enrolled(
        self,
        deployment_id: str,
        subject_id: str,
        image_sha256: str,
        count: int,
        entry_id: str,
        thumbnail: bytes,
        audited: Callable[[object], None] = lambda pipe: None,
        manifest_row: dict | None = None,
    ) -> int:
        """Returns the number of distinct subjects now enrolled. The reference thumbnail is sealed with
        the deployment's data key and kept under the deployment, so closing deletes it.

        One transaction, with the image's audit event (`audited(pipe)` adds it to the outbox): when it
        raises, nothing of the image is recorded nor audited (the caller then removes its entry from
        the index); when it commits, both are, even if the process dies at once. Only the count of
        subjects, derived, is written after it."""
        wrapped = await self.client.get(self.keys.data_key(deployment_id))
        if wrapped is None:
            raise LookupError(f"deployment {deployment_id} has no data key (closed)")
        data_key = self.key_wrap.unwrap(wrapped, deployment_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(self.keys.subjects(deployment_id), subject_id)
            pipe.sadd(self.keys.image_hashes(deployment_id), image_sha256)
            pipe.set(self.keys.reference_image(deployment_id, entry_id), seal(data_key, thumbnail, deployment_id))
            pipe.hset(self.keys.deployment(deployment_id), mapping=fields(enrolled_images=count))
            pipe.hset(self.keys.manifest(deployment_id), entry_id, json.dumps(manifest_row or {}))
            if manifest_row and manifest_row.get("category"):  # the report's count per category (no ids)
                listed = f"{STATS_PREFIX}listed_{manifest_row['category']}"
                pipe.hincrby(self.keys.deployment(deployment_id), listed, 1)
            # The watchlist changed: its pre-deployment review no longer covers it (matching stops).
            pipe.hdel(self.keys.deployment(deployment_id), *REVIEW_FIELDS)
            pipe.hdel(self.keys.pending_entries(deployment_id), entry_id)  # prepared, now recorded
            audited(pipe)
            pipe.scard(self.keys.subjects(deployment_id))
            *_, subjects = await pipe.execute()
        try:
            await self.set_field(deployment_id, enrolled_subjects=subjects)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # The image is recorded; the next enrolment writes the count again.
            log.warning("count of enrolled subjects not updated: %s", exc, extra={"deployment_id": deployment_id})
        return subjects

    async def review(
        self,
        deployment_id: str,
        officer: str,
        images: int,
        now: float,
        entries: int,
        threshold: Threshold,
        predicted: Prediction,
    ) -> bool:
        """Records the review of the watchlist as it stands (`images` of it, searched as `entries`
        with the subjects' templates) and the threshold derived for it, in one transaction; False if an
        image was enrolled meanwhile (the review would not cover it)."""
        key = self.keys.deployment(deployment_id)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            raw = await pipe.hgetall(key)
            if not raw or DeploymentRecord.from_redis(deployment_id, raw).enrolled_images != images:
                return False
            pipe.multi()
            pipe.hset(
                key,
                mapping=fields(
                    reviewed_by=officer,
                    reviewed_at=now,
                    reviewed_images=images,
                    reviewed_entries=entries,
                    threshold=threshold.value,
                    threshold_floor=threshold.floor,
                    operating_point=operating.encode(threshold),
                    prediction=predicted.as_dict(),
                ),
            )
            try:
                await pipe.execute()
            except redis.exceptions.WatchError:
                return False
        return True

    async def pseudonym_key(self, deployment_id: str) -> bytes:
        """The deployment's pseudonym key (lfr_deployments.provenance.pseudonym), made at first use,
        stored wrapped by the key-encryption key."""
        key, context = self.keys.pseudonym_key(deployment_id), f"pseudonym:{deployment_id}"
        wrapped = await self.client.get(key)
        if wrapped is None:
            await self.client.set(key, self.key_wrap.wrap(os.urandom(32), context), nx=True)
            wrapped = await self.client.get(key)
        return self.key_wrap.unwrap(wrapped, context)

    async def keep_manifest(self, deployment_id: str, closed_at: float, retention_s: float) -> int:
        """At close: the manifest kept `retention_s` more, each listed subject indexed to it. Returns
        the entries kept."""
        rows = await self.manifest(deployment_id)
        ms = max(1, int(retention_s * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            for subject in {row["subject_id"] for row in rows}:
                pipe.zadd(self.keys.listed(subject), {deployment_id: closed_at})
                pipe.pexpire(self.keys.listed(subject), ms)
            pipe.pexpire(self.keys.manifest(deployment_id), ms)
            pipe.pexpire(self.keys.pseudonym_key(deployment_id), ms)  # the audit's pseudonyms go with it
            await pipe.execute()
        return len(rows)

    async def manifest(self, deployment_id: str) -> list[dict]:
        raw = await self.client.hgetall(self.keys.manifest(deployment_id))
        rows = [{"entry_id": k.decode(), **json.loads(v)} for k, v in raw.items()]
        return sorted(rows, key=lambda r: (r.get("enrolled_at", 0), r["entry_id"]))

    async def listings(self, subject_id: str, now: float, retention_s: float) -> list[str]:
        """The deployments whose kept manifests list the subject (those closed within `retention_s`)."""
        key = self.keys.listed(subject_id)
        await self.client.zremrangebyscore(key, "-inf", now - retention_s)
        return [d.decode() for d in await self.client.zrange(key, 0, -1)]

    async def count_reference_images(self, deployment_id: str) -> int:
        return sum([1 async for _ in self.client.scan_iter(match=self.keys.reference_images_pattern(deployment_id))])

    async def record_rejected(self, deployment_id: str, n: int) -> None:
        for name, by in increments(rejected_images=n).items() if n else ():
            await self.client.hincrby(self.keys.deployment(deployment_id), name, by)

    async def image_enrolled(self, deployment_id: str, image_sha256: str) -> bool:
        return bool(await self.client.sismember(self.keys.image_hashes(deployment_id), image_sha256))

    async def due_to_expire(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [i.decode() for i in await self.client.zrangebyscore(self.keys.planned_ends(), "-inf", now)]

"""Where deployments live in Redis: their keys, the writing of a new deployment, and the read view the
pipeline stages use. The record itself, its fields and its codec, is lfr_platform.deployment_record,
so that the writer and the readers agree on it.

The deployments service (through its DeploymentService) is the only writer in production. Every
key that belongs to a deployment starts with `<prefix>:dep:<id>`, so that closing one can find and
delete them all, and a test can prove that nothing is left. After close only the record itself remains, reduced to the
non-biometric tombstone fields (deployment_record.TOMBSTONE_FIELDS), so that Get, List and a repeated
Close can still answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis

# The record's names, re-exported: the stages and the tools import them from here.
from lfr_platform.deployment_record import (  # noqa: F401
    CLOSED,
    EXPIRED,
    FIELD,
    LOST,
    OPEN,
    STATS_PREFIX,
    TOMBSTONE_FIELDS,
    DeploymentRecord,
    kept_in_tombstone,
    new_deployment_record,
    stat_fields,
)
from lfr_platform.equity import EquityPolicy

DEPLOYMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "lfr"

    def deployment(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}"

    def deployment_pattern(self, deployment_id: str) -> str:
        """Every key of a deployment except its record: what Close deletes."""
        return f"{self.prefix}:dep:{deployment_id}:*"

    def data_key(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:key"

    def subjects(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:subjects"

    def image_hashes(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:images"

    def pending_entries(self, deployment_id: str) -> str:
        """Watchlist entries on their way in (entry id -> the time it was prepared): written, with the
        review cleared, before an entry reaches the watchlist log, removed in the transaction that
        records it. One left behind (the service died between the two) is taken back out by the
        janitor, and audited."""
        return f"{self.prefix}:dep:{deployment_id}:pending-entries"

    def enrol_lock(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:enrol-lock"

    def alert_window(self, deployment_id: str, camera: str, subject_id: str) -> str:
        """The alert a match of this subject on this camera folds into, and its pass's first and last
        capture times: the pass lasts while its matches are captured within the window of each other."""
        return f"{self.prefix}:dep:{deployment_id}:alert:{camera}:{subject_id}"

    def manifest(self, deployment_id: str) -> str:
        """The watchlist's ids-only manifest (entry id -> subject id, category, source, approver, time;
        no image, no template): outside the deployment's keys, kept the policy's retention after close
        so that "was X on deployment D?" can be answered after the watchlist is gone."""
        return f"{self.prefix}:manifest:{deployment_id}"

    def listed(self, subject_id: str) -> str:
        """The closed deployments a subject was listed on (deployment id -> close time), as long as
        their manifests are kept."""
        return f"{self.prefix}:listed:{subject_id}"

    def pseudonym_key(self, deployment_id: str) -> str:
        """The key of the subjects' pseudonyms in the deployment's audit events, wrapped: outside its
        `dep:` keys, kept exactly as long as its manifest (the audit trail is linkable to subjects as
        long as the manifest answers for them, and no longer)."""
        return f"{self.prefix}:pseudonym-key:{deployment_id}"

    def alert_key(self, deployment_id: str) -> str:
        """The deployment's private alert-signing key, wrapped: outside its `dep:` keys, since it must
        sign decisions after the close (it opens nothing), and it expires on its own after that."""
        return f"{self.prefix}:alert-key:{deployment_id}"

    def match_alerts(self, deployment_id: str) -> str:
        """Every match id folded for the deployment and the alert it went into (a re-delivered match
        folds into its own alert, never a new one), kept as long as the topic keeps matches."""
        return f"{self.prefix}:dep:{deployment_id}:match-alerts"

    def matches_announced(self, deployment_id: str) -> str:
        """The match ids whose alert revision the broker has taken: one that comes again is a replay."""
        return f"{self.prefix}:dep:{deployment_id}:matches-announced"

    def alert_seen(self, deployment_id: str, alert_id: str) -> str:
        """Match ids folded into the alert (a re-delivered match changes nothing)."""
        return f"{self.prefix}:dep:{deployment_id}:seen:{alert_id}"

    def alert_crop(self, deployment_id: str, alert_id: str) -> str:
        """The alert's best probe face, sealed: biometric, so deleted with the deployment."""
        return f"{self.prefix}:dep:{deployment_id}:crop:{alert_id}"

    def reference_image(self, deployment_id: str, entry_id: str) -> str:
        """A watchlist entry's reference thumbnail, sealed: deleted with the deployment."""
        return f"{self.prefix}:dep:{deployment_id}:ref:{entry_id}"

    def reference_images_pattern(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:ref:*"

    def alert(self, alert_id: str) -> str:
        """An alert's record and decisions (no biometric data): kept for the operational retention
        after its last change, also after its deployment closed, for the report and follow-up."""
        return f"{self.prefix}:alert:{alert_id}"

    def alerts_of(self, deployment_id: str) -> str:
        """The deployment's alert ids by time raised."""
        return f"{self.prefix}:alerts:{deployment_id}"

    def epoch(self) -> str:
        """Written once when this Redis first holds LFR's state: its disappearance means Redis lost data."""
        return f"{self.prefix}:epoch"

    def outbox(self) -> str:
        """Records kept for the broker (audit events, alert revisions): lfr_platform.outbox."""
        return f"{self.prefix}:outbox"

    def all_deployments(self) -> str:
        return f"{self.prefix}:deployments"

    def index_copies(self, deployment_id: str) -> str:
        """Each match replica's deletion of its copy of the watchlist (replica -> JSON), read by the
        close for the deletion report; outlives the deployment's keys (no biometric data in it)."""
        return f"{self.prefix}:copies:{deployment_id}"

    def replicas(self, stage: str) -> str:
        """The live replicas of a stage (name -> JSON: heartbeat time, model id), each refreshed while
        it runs: whose copies a close waits for, and which model id the stage's replicas use."""
        return f"{self.prefix}:replicas:{stage}"

    def planned_ends(self) -> str:
        return f"{self.prefix}:deployments:ends"

    def false_alerts_by_group(self, day: str) -> str:
        """The fleet's false alerts of one UTC capture day (YYYY-MM-DD) per perceived group
        (`<dimension>:<group>` -> count; no alert id, no person): the equity monitor's rolling window
        sums the days it spans. Each expires once the longest window has passed it."""
        return f"{self.prefix}:equity:false-alerts:{day}"


async def write_new_deployment(
    client: aioredis.Redis,
    keys: RedisKeys,
    key_wrap,
    record: DeploymentRecord,
    data_key: bytes,
    alert_key: bytes,
    alert_key_ttl_s: float,
) -> None:
    """The record, its data key and its private alert key (both wrapped by the key-encryption key)
    and its place in the indexes, in one transaction: a deployment exists whole or not at all. The
    alert key outlives the close by `alert_key_ttl_s` (lfr_platform.signing)."""
    deployment_id = record.deployment_id
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.deployment(deployment_id), mapping=record.to_redis())
        pipe.set(keys.data_key(deployment_id), key_wrap.wrap(data_key, deployment_id))
        pipe.set(
            keys.alert_key(deployment_id),
            key_wrap.wrap(alert_key, f"alert:{deployment_id}"),
            px=max(1, int(alert_key_ttl_s * 1000)),
        )
        pipe.zadd(keys.all_deployments(), {deployment_id: record.created_at})
        pipe.zadd(keys.planned_ends(), {deployment_id: record.planned_end})
        await pipe.execute()


@dataclass(frozen=True)
class DeploymentView:
    """What a pipeline stage needs to know about a deployment."""

    deployment_id: str
    state: str
    threshold: float
    model_id: str
    data_key: bytes | None
    cameras: frozenset[tuple[str, str]]
    planned_start: float = 0.0
    planned_end: float = float("inf")
    # The watchlist as it stands was reviewed before the deployment (nothing is matched until then).
    reviewed: bool = True
    # An alert whose runner-up (another subject) scores within this of it is held for a supervisor.
    min_margin: float = 0.0
    # The closed list of each perceived dimension an adjudication may record (empty: none recorded),
    # and the equity monitor's reference shares and limits: the policy's at creation.
    perceived_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    equity: EquityPolicy | None = None
    # The policy's false-alert budget at creation (None for a record made before it was copied).
    false_alert_budget: float | None = None

    def authorises(self, captured_at: float) -> bool:
        """The capture time is inside the authorised window (whenever it is processed)."""
        return self.planned_start <= captured_at <= self.planned_end

    @property
    def accepting(self) -> bool:
        """Frames of this deployment are processed (it is active and its key exists)."""
        return self.state == "active" and self.data_key is not None

    def covers(self, van_id: str, camera_id: str) -> bool:
        return not self.cameras or (van_id, camera_id) in self.cameras


async def alert_public_key(client: aioredis.Redis, keys: RedisKeys, deployment_id: str) -> bytes | None:
    """The key that verifies the deployment's alert revisions, from its record (no secret needed: kept
    after close too); None for a deployment that never was."""
    raw = await client.hget(keys.deployment(deployment_id), FIELD.alert_public_key)
    return bytes.fromhex(_s(raw)) if raw else None


class DeploymentRegistry:
    """Read side of the deployment records, one Redis round trip per lookup.

    Deliberately uncached: a closed deployment's key must stop being usable at once.
    """

    def __init__(self, client: aioredis.Redis, keys: RedisKeys, key_wrap) -> None:
        self.client = client
        self.keys = keys
        self.key_wrap = key_wrap  # lfr_platform.sealing.KeyWrap: data keys are stored wrapped

    async def alert_key(self, deployment_id: str) -> bytes | None:
        """The deployment's private alert-signing key (None once it expired)."""
        wrapped = await self.client.get(self.keys.alert_key(deployment_id))
        return self.key_wrap.unwrap(wrapped, f"alert:{deployment_id}") if wrapped else None

    async def enrolled(self, deployment_id: str, subject_id: str) -> bool:
        """Is the subject on the deployment's watchlist (while it lives)?"""
        return bool(await self.client.sismember(self.keys.subjects(deployment_id), subject_id))

    async def lookup(self, deployment_id: str) -> DeploymentView | None:
        """None when the id was never a deployment (as opposed to one that was closed)."""
        if not DEPLOYMENT_ID.match(deployment_id):
            return None
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.deployment(deployment_id))
            pipe.get(self.keys.data_key(deployment_id))
            raw, key = await pipe.execute()
        if not raw:
            return None
        record = DeploymentRecord.from_redis(deployment_id, raw)
        if key is not None:
            key = self.key_wrap.unwrap(key, deployment_id)
        return DeploymentView(
            deployment_id=deployment_id,
            state=record.state,
            threshold=float("nan") if record.threshold is None else record.threshold,
            model_id=record.model_id,
            data_key=key,
            cameras=frozenset((c.van_id, c.camera_id) for c in record.cameras),
            planned_start=record.planned_start or 0.0,
            planned_end=record.planned_end or float("inf"),
            reviewed=record.reviewed,
            min_margin=record.min_margin,
            perceived_groups=dict(record.perceived_groups or {}),
            equity=record.equity,
            false_alert_budget=record.false_alert_budget,
        )


class DeploymentStats:
    """Adds to a deployment's counts (the stats fields of its record)."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys

    async def add(self, deployment_id: str, van_id: str, **counts: int) -> None:
        record = self.keys.deployment(deployment_id)
        async with self.client.pipeline(transaction=False) as pipe:
            for name, n in counts.items():
                for field_name in stat_fields(name, van_id):
                    pipe.hincrby(record, field_name, n)
            await pipe.execute()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def admit(registry: DeploymentRegistry, camera, captured_at: float | None = None):
    """The deployment a pipeline record belongs to, if its records may be processed now.

    Returns the DeploymentView, or why not as a stage outcome: an id that was never a deployment
    (or a camera it does not cover) is bad input and goes to the dead-letter topic; a deployment
    that was closed, or is not active yet, is a normal end and its records are skipped; so is a
    record captured outside the deployment's authorised window (`outside_authorisation`: decided on
    capture time, however late it is processed); and so is every record of a deployment whose
    watchlist has not been reviewed as it stands (`watchlist_not_reviewed`).
    """
    from lfr_platform.stage import Rejected, Skipped

    view = await registry.lookup(camera.deployment_id)
    if view is None:
        return Rejected("unknown_deployment", f"no deployment {camera.deployment_id!r}")
    if view.state == LOST:
        return Rejected(
            "deployment_state_lost",
            f"the state of {camera.deployment_id!r} was lost (Redis lost its data): nothing of it is processed",
        )
    if view.state in (CLOSED, EXPIRED):
        return Skipped("deployment_closed")
    if not view.covers(camera.van_id, camera.camera_id):
        return Rejected(
            "camera_not_in_deployment",
            f"van {camera.van_id!r} camera {camera.camera_id!r} is not covered by {camera.deployment_id!r}",
        )
    if not view.accepting:
        return Skipped("deployment_not_active")
    if captured_at is not None and not view.authorises(captured_at):
        return Skipped("outside_authorisation")
    if not view.reviewed:
        return Skipped("watchlist_not_reviewed")
    return view

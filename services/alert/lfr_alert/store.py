"""The Redis adapter of AlertStore.

- The window (`<prefix>:dep:<d>:alert:<camera>:<subject>`), the folded match ids, the best probe
  crop (sealed) and the scene around it (`<prefix>:dep:<d>:scene:<alert>`: a SceneImage, its image
  sealed) live under the deployment's keys, so closing it deletes them.
- The alert's record (`<prefix>:alert:<id>`, no biometric data) and the deployment's alert index live
  for the operational retention after their last change, also after close: decisions can follow up
  and the report counts them.
- A decision is an optimistic transaction (WATCH the record, decide in Python, MULTI): the record,
  the deployment's counts, the fleet's false alerts per perceived group of the alert's capture day
  (the equity monitor's window) and the records announcing the decision (the outbox) change together
  or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
import redis.exceptions

from lfr_alert.adjudication import Change
from lfr_alert.alerting import Alert, Decision, Folded, MatchToFold
from lfr_alert.monitor import DayCounts
from lfr_platform.outbox import Outbox, OutboxRecord
from lfr_platform.registry import RedisKeys, stat_fields

_FOLD = Path(__file__).with_name("fold.lua").read_text()
# The broker has this revision of the alert (or a later one): raise the alert's published revision,
# never lower it, and never recreate a record that expired meanwhile.
_PUBLISHED = """
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
local before = tonumber(redis.call("HGET", KEYS[1], "published_revision") or "0")
if tonumber(ARGV[1]) > before then redis.call("HSET", KEYS[1], "published_revision", ARGV[1]) end
return 1
"""

_FLOATS = ("score", "threshold", "first_captured_at", "last_seen_at", "raised_at", "updated_at", "runner_up_score")
_INTS = ("match_count", "revision")
_TEXT = (
    "alert_id",
    "deployment_id",
    "van_id",
    "camera_id",
    "subject_id",
    "category",
    "model_id",
    "best_match_id",
    "entry_id",
    "track_id",
    "state",
    "outcome",
    "final_outcome",
    "final_detail",
    "runner_up_subject_id",
    "hold_reason",
    "perceived_sex",
    "perceived_ethnicity",
)
_DECISIONS = ("adjudication", "engagement", "resolution")


class AlertNotFound(LookupError):
    pass


def scene_key(keys: RedisKeys, deployment_id: str, alert_id: str) -> str:
    """Where the scene of an alert's best match is kept: under the deployment's keys, beside its crop."""
    return f"{keys.deployment(deployment_id)}:scene:{alert_id}"


def to_fields(alert: Alert) -> dict[str, str]:
    fields = {name: str(getattr(alert, name)) for name in _TEXT}
    fields.update({name: repr(getattr(alert, name)) for name in _FLOATS})
    fields.update({name: str(getattr(alert, name)) for name in _INTS})
    fields["engaged"] = "" if alert.engaged is None else ("1" if alert.engaged else "0")
    fields["held"] = "1" if alert.held else "0"
    for step in _DECISIONS:
        decision: Decision | None = getattr(alert, step)
        if decision is not None:
            fields.update(
                {
                    f"{step}_officer": decision.officer,
                    f"{step}_recorded_by": decision.recorded_by,
                    f"{step}_role": decision.role,
                    f"{step}_at": repr(decision.at),
                    f"{step}_note": decision.note,
                    f"{step}_correction_reason": decision.correction_reason,
                }
            )
    return fields


def from_fields(raw: dict) -> Alert:
    f = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }

    def decision(step: str) -> Decision | None:
        if not f.get(f"{step}_at"):
            return None
        return Decision(
            officer=f.get(f"{step}_officer", ""),
            recorded_by=f.get(f"{step}_recorded_by", ""),
            role=f.get(f"{step}_role", ""),
            at=float(f[f"{step}_at"]),
            note=f.get(f"{step}_note", ""),
            correction_reason=f.get(f"{step}_correction_reason", ""),
        )

    return Alert(
        **{name: f.get(name, "") for name in _TEXT},
        **{name: float(f.get(name) or 0) for name in _FLOATS},
        **{name: int(f.get(name) or 0) for name in _INTS},
        engaged=None if not f.get("engaged") else f["engaged"] == "1",
        held=f.get("held") == "1",
        adjudication=decision("adjudication"),
        engagement=decision("engagement"),
        resolution=decision("resolution"),
    )


class RedisAlertStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys, outbox: Outbox, retention_s: int) -> None:
        self.client = client
        self.keys = keys
        self.outbox = outbox
        self.retention_ms = retention_s * 1000
        self._fold = client.register_script(_FOLD)
        self._published = client.register_script(_PUBLISHED)

    async def fold(self, match: MatchToFold, now: float, window_s: float) -> Folded:
        # Keyed by subject and camera, not by track: a tracker that loses a person mid-pass (a turned
        # head, someone walking in front) starts a new track, and the officer must still get one alert.
        window = self.keys.alert_window(match.deployment_id, match.camera.replace("/", ":"), match.subject_id)
        match_alerts = self.keys.match_alerts(match.deployment_id)
        while True:
            current, first, last = await self.client.hmget(window, "alert_id", "first", "last")
            before = await self.client.hget(match_alerts, match.match_id)
            # Decided on capture time: within the window of the pass's first or last match, the match
            # is of the same pass, whenever it is processed. A re-delivered match goes where it went.
            same_pass = current is not None and float(first) - window_s <= match.captured_at <= float(last) + window_s
            if before is not None:
                alert_id = before.decode()
            else:
                alert_id = current.decode() if same_pass else uuid.uuid4().hex
            raw = await self._fold(
                keys=[
                    window,
                    self.keys.alert(alert_id),
                    self.keys.alert_seen(match.deployment_id, alert_id),
                    self.keys.alert_crop(match.deployment_id, alert_id),
                    self.keys.alerts_of(match.deployment_id),
                    self.keys.deployment(match.deployment_id),
                    match_alerts,
                    scene_key(self.keys, match.deployment_id, alert_id),
                ],
                args=[
                    current or b"",
                    alert_id,
                    match.match_id,
                    repr(match.score),
                    repr(match.captured_at),
                    repr(now),
                    self.retention_ms,
                    match.sealed_crop,
                    match.deployment_id,
                    match.van_id,
                    match.camera_id,
                    match.subject_id,
                    match.category,
                    repr(match.threshold),
                    match.model_id,
                    match.entry_id,
                    match.track_id,
                    match.runner_up_subject_id,
                    repr(match.runner_up_score),
                    match.hold_reason,
                    match.scene,
                ],
            )
            if raw[0] == b"retry":  # the window ended or began between the read and the fold
                continue
            fields = {raw[i]: raw[i + 1] for i in range(5, len(raw), 2)}
            return Folded(
                from_fields(fields),
                created=raw[1] == 1,
                changed=raw[2] == 1,
                sealed_crop=raw[3],
                held=raw[4] == 1,
                published_revision=int(fields.get(b"published_revision") or 0),
            )

    async def announced(self, deployment_id: str, match_id: str) -> bool:
        """The match's alert revision reached the broker before: this is a replay."""
        return bool(await self.client.sismember(self.keys.matches_announced(deployment_id), match_id))

    async def mark_announced(self, matches, revisions: dict[str, int] | None = None) -> None:
        """Remember matches whose revisions the broker took, for as long as the topic keeps matches,
        and each alert's highest revision the broker took (`revisions`: alert id -> revision), so that
        a re-delivered match does not publish that revision again."""
        by_deployment: dict[str, list[str]] = {}
        for match in matches:
            by_deployment.setdefault(match.camera.deployment_id, []).append(match.match_id)
        if not by_deployment and not revisions:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for alert_id, revision in (revisions or {}).items():
                await self._published(keys=[self.keys.alert(alert_id)], args=[revision], client=pipe)
            for deployment_id, match_ids in by_deployment.items():
                key = self.keys.matches_announced(deployment_id)
                pipe.sadd(key, *match_ids)
                pipe.pexpire(key, self.retention_ms)
            await pipe.execute()

    async def get(self, alert_id: str) -> Alert | None:
        raw = await self.client.hgetall(self.keys.alert(alert_id))
        return from_fields(raw) if raw else None

    async def list(self, deployment_id: str) -> list[Alert]:
        """Newest first. Alerts past their retention are gone and dropped from the index."""
        index = self.keys.alerts_of(deployment_id)
        ids = [i.decode() for i in await self.client.zrevrange(index, 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for alert_id in ids:
                pipe.hgetall(self.keys.alert(alert_id))
            raws = await pipe.execute()
        alerts, gone = [], []
        for alert_id, raw in zip(ids, raws, strict=True):
            (alerts.append(from_fields(raw)) if raw else gone.append(alert_id))
        if gone:
            await self.client.zrem(index, *gone)
        return alerts

    async def crop(self, alert: Alert) -> bytes | None:
        """The sealed best probe face; None once its deployment closed (deleted with it)."""
        return await self.client.get(self.keys.alert_crop(alert.deployment_id, alert.alert_id))

    async def scene(self, alert: Alert) -> bytes | None:
        """The scene of the best probe face (a serialised SceneImage, its image sealed); None when its
        match carried none, or once its deployment closed (deleted with it)."""
        return await self.client.get(scene_key(self.keys, alert.deployment_id, alert.alert_id))

    async def reference(self, alert: Alert) -> bytes | None:
        """The sealed reference thumbnail of the alert's watchlist entry, while the deployment lives."""
        if not alert.entry_id:
            return None
        return await self.client.get(self.keys.reference_image(alert.deployment_id, alert.entry_id))

    async def apply(
        self,
        alert_id: str,
        decide: Callable[[Alert], Change | None],
        announce: Callable[[Change], Awaitable[list[OutboxRecord]]],
        counts: Callable[[Change], dict[str, int]],
        window: Callable[[Change], DayCounts | None] = lambda change: None,
    ) -> tuple[Alert, Change | None]:
        """Decide on the current alert and store the change with its counts (the deployment's, and
        the fleet window's counts per perceived group) and announcements, atomically.

        `decide` may raise (a refusal): nothing is written then. Returns the alert as it now is and
        the change (None for a repeat)."""
        key = self.keys.alert(alert_id)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    if not raw:
                        raise AlertNotFound(alert_id)
                    alert = from_fields(raw)
                    change = decide(alert)
                    if change is None:
                        await pipe.unwatch()
                        return alert, None
                    records = await announce(change)
                    after = change.alert
                    pipe.multi()
                    pipe.hset(key, mapping=to_fields(after))
                    # The outbox below carries this revision to the broker, in the same transaction:
                    # a re-delivered match must not publish it a second time.
                    pipe.hset(key, "published_revision", str(after.revision))
                    pipe.pexpire(key, self.retention_ms)
                    pipe.pexpire(self.keys.alerts_of(after.deployment_id), self.retention_ms)
                    deployment = self.keys.deployment(after.deployment_id)
                    for name, n in counts(change).items():
                        for field_name in stat_fields(name, after.van_id):
                            pipe.hincrby(deployment, field_name, n)
                    day = window(change)
                    if day is not None:
                        fleet = self.keys.false_alerts_by_group(day.day)
                        for field_name, n in day.counts.items():
                            pipe.hincrby(fleet, field_name, n)
                        pipe.pexpireat(fleet, int(day.keep_until * 1000))
                    for record in records:
                        self.outbox.add(pipe, record)
                    await pipe.execute()
                    return after, change
                except redis.exceptions.WatchError:
                    continue  # another decision came first: decide again on what it left

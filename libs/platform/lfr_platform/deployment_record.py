"""The deployment record: one Redis hash per deployment (`RedisKeys.deployment`), written by the
deployments service, read by it and by every pipeline stage (lfr_platform.registry). This module is
its one type and its one codec: no other module names a field of it as a string.

Redis holds every field as text. `DeploymentRecord.from_redis` reads a hash whole and checks it: a
field this release does not know, or a value that does not parse, is refused (`RecordInvalid`, with
the field named) rather than read as a silent default. A record written before the record had a
version (version 0: no `version` field) is migrated as it is read: its absent fields take their
defaults, which is what every reader did with them before; this is logged once per record and
process and counted (`lfr_deployment_records_migrated_total`), and the janitor writes the version
into the record so that the next start does not migrate it again (docs/deployments.md#the-deployment-record).

Partial updates (a review, a ratification, a close, the counts) stay single Redis operations in
their callers, atomic as before; they name their fields through `fields(**values)` (an HSET
mapping), `increments(**counts)` (HINCRBY) and `FIELD.<name>` (HGET, HDEL), all checked against the
model, so a typo fails at once instead of writing a field nobody reads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter, ValidationError, field_validator

from lfr_platform import metrics
from lfr_platform.equity import PERCEIVED, EquityPolicy

log = logging.getLogger(__name__)

# 1: the first versioned record (every field below). Version 0 is any record written before it.
RECORD_VERSION = 1

# Lifecycle states as stored; planned/active are derived from the clock while status is "open".
# "lost": match found a watchlist whose record Redis no longer held (Redis lost its data): the
# deployment cannot be used any more (no key, no threshold), and that was audited, never silent.
OPEN, CLOSED, EXPIRED, LOST = "open", "closed", "expired", "lost"

# A deployment's record counts what happened to it in fields `stats:<name>` (deployment-wide) and
# `stats:<name>@<van>` (per van): faces scanned, alerts, decisions. They hold no biometric data and are
# kept in the tombstone: the deployment report is computed from them, also after close.
STATS_PREFIX = "stats:"


class RecordInvalid(ValueError):
    """A deployment record this release cannot read: the field, and what is wrong with it."""

    def __init__(self, deployment_id: str, field: str, problem: str) -> None:
        self.deployment_id = deployment_id
        self.field = field
        super().__init__(f"the record of deployment {deployment_id!r} cannot be read: field {field!r} {problem}")


class Camera(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    van_id: str
    camera_id: str


class DeploymentRecord(BaseModel):
    """A deployment as stored. Absent fields take these defaults (a tombstone, a lost deployment's
    record and an older record hold only some of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = RECORD_VERSION
    deployment_id: str
    status: Literal["open", "closed", "expired", "lost"]
    name: str = ""
    purpose: str = ""
    authorising_officer: str = ""
    location: str = ""
    where: str = ""  # one of the policy's closed list
    urgent: bool = False  # authorised orally: ratified in writing by `ratify_by`, else closed
    ratify_by: float = 0.0
    ratified_by: str = ""
    ratified_at: float | None = None
    planned_start: float | None = None
    planned_end: float | None = None
    cameras: tuple[Camera, ...] = ()  # none: any camera may stream for it
    threshold: float | None = None
    threshold_floor: float | None = None
    threshold_override_reason: str = ""
    model_id: str = ""
    watchlist_size_limit: int = 0
    enrolled_images: int = 0
    enrolled_subjects: int = 0
    rejected_images: int = 0
    created_at: float | None = None
    created_by: str = ""  # the creating principal; empty in records made before it was kept
    closed_at: float | None = None
    closed_by: str = ""
    close_reason: str = ""
    deletion: dict[str, Any] | None = None  # the deletion report (lfr_deployments.closing)
    started_at: float | None = None
    lost_at: float | None = None
    alert_public_key: bytes = b""  # verifies its alert revisions (lfr_platform.signing)
    reviewed_by: str = ""
    reviewed_at: float | None = None  # nothing of it is matched until its watchlist is reviewed
    reviewed_images: int = 0
    reviewed_entries: int = 0  # the images reviewed and the subjects' templates
    min_margin: float = 0.0
    prediction: dict[str, Any] | None = None  # lfr_deployments.prediction.Prediction.as_dict
    operating_point: dict[str, Any] | None = None  # lfr_deployments.operating
    false_alert_budget: float | None = None
    perceived_groups: dict[str, tuple[str, ...]] | None = None
    equity: EquityPolicy | None = None
    watchlist_points_deleted: int = 0  # counted before the drop, for a close the janitor finishes

    # Not stored: planned/active/closed/expired/lost as of the read, and the `stats:<name>` fields
    # (name -> count).
    state: str = ""
    stats: dict[str, int] = {}

    _migrated_from: int | None = PrivateAttr(default=None)

    @field_validator("urgent", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        if isinstance(value, str):
            if value not in ("0", "1"):
                raise ValueError("must be 1 or 0")
            return value == "1"
        return value

    @field_validator("alert_public_key", mode="before")
    @classmethod
    def _hex(cls, value: object) -> object:
        return bytes.fromhex(value) if isinstance(value, str) else value

    @field_validator(
        "cameras", "deletion", "prediction", "operating_point", "perceived_groups", "equity", mode="before"
    )
    @classmethod
    def _json(cls, value: object, info) -> object:
        if not isinstance(value, str):
            return value
        try:
            return EquityPolicy.from_json(value) if info.field_name == "equity" else json.loads(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"is not its JSON ({type(exc).__name__}: {exc})") from None

    @property
    def migrated_from(self) -> int | None:
        """The version this record was read from when it was migrated on reading (None: it was not)."""
        return self._migrated_from

    @property
    def reviewed(self) -> bool:
        """The watchlist as it stands was reviewed (cleared when an image is enrolled after it)."""
        return self.reviewed_at is not None

    def state_at(self, now: float | None = None) -> str:
        """planned, active, closed, expired or lost."""
        if self.status != OPEN:
            return self.status
        now = time.time() if now is None else now
        return "planned" if now < (self.planned_start or 0.0) else "active"

    @classmethod
    def from_redis(
        cls, deployment_id: str, raw: Mapping[bytes | str, bytes | str], now: float | None = None
    ) -> DeploymentRecord:
        """The record from its hash (HGETALL), with its state as of `now`. Raises RecordInvalid."""
        stored: dict[str, str] = {}
        stats: dict[str, str] = {}
        unknown: list[str] = []
        for key, value in raw.items():
            name, text = _text(key), _text(value)
            if name.startswith(STATS_PREFIX):
                stats[name.removeprefix(STATS_PREFIX)] = text
            elif name not in STORED_FIELDS:
                unknown.append(name)
            elif text != "" or _KINDS[name] == "str":  # an empty number or JSON is an absent one
                stored[name] = text
        version = stored.get("version")
        try:
            record = cls.model_validate({**stored, "stats": stats})
        except ValidationError as exc:
            error = exc.errors()[0]
            location = error["loc"]
            field = f"{STATS_PREFIX}{location[1]}" if location[0] == "stats" and len(location) > 1 else location[0]
            problem = (
                "is missing"
                if error["type"] == "missing"
                else f"is malformed: {error['msg'].removeprefix('Value error, ')}"
            )
            raise RecordInvalid(deployment_id, str(field), problem) from None
        if record.version > RECORD_VERSION:
            raise RecordInvalid(
                deployment_id,
                "version",
                f"is {record.version}: written by a newer release (this one reads up to {RECORD_VERSION})",
            )
        if record.deployment_id != deployment_id:
            raise RecordInvalid(deployment_id, "deployment_id", f"is {record.deployment_id!r}, another deployment's")
        record = record.model_copy(update={"state": record.state_at(now)})
        if unknown:
            _log_unknown(deployment_id, sorted(unknown))
        if version is None:
            record._migrated_from = 0
            _log_migration(deployment_id, [f for f in WRITTEN_AT_CREATE if f not in stored])
        return record

    def to_redis(self) -> dict[str, str]:
        """Every field set on this record (and its version), as the hash stores it: a new record."""
        names = self.model_fields_set | {"version"}
        return {
            name: _encode(name, getattr(self, name))
            for name in DeploymentRecord.model_fields
            if name in names and name in STORED_FIELDS and getattr(self, name) is not None
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The fields stored (every field of the model but the derived state and the stats, kept under their prefix).
STORED_FIELDS = frozenset(DeploymentRecord.model_fields) - {"state", "stats"}


def _kind(name: str, annotation: object) -> str:
    """How a field is stored: text as is, numbers as str/repr, a flag as 1/0, bytes as hex, else JSON."""
    if name == "status" or annotation is str:
        return "str"
    if name == "equity":
        return "equity"  # EquityPolicy's own JSON
    return {bool: "flag", int: "int", float: "float", float | None: "float", bytes: "hex"}.get(annotation, "json")


_KINDS = {name: _kind(name, info.annotation) for name, info in DeploymentRecord.model_fields.items()}
_ADAPTERS = {name: TypeAdapter(DeploymentRecord.model_fields[name].annotation) for name in STORED_FIELDS}


def _encode(name: str, value: Any) -> str:
    kind = _KINDS[name]
    if kind == "str":
        return value
    if kind == "flag":
        return "1" if value else "0"
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(value))
    if kind == "hex":
        return value.hex()
    if kind == "equity":
        return value.to_json()
    return json.dumps(_ADAPTERS[name].dump_python(value), sort_keys=True)


def fields(**values: Any) -> dict[str, str]:
    """An HSET mapping of some fields (`fields(ratified_by=officer, ratified_at=now)`): each name
    checked against the record, each value validated and encoded as the record stores it."""
    mapping = {}
    for name, value in values.items():
        if name not in STORED_FIELDS:
            raise TypeError(f"{name!r} is not a field of the deployment record")
        try:
            value = _ADAPTERS[name].validate_python(value)
        except ValidationError as exc:
            raise TypeError(f"deployment record field {name!r}: {exc.errors()[0]['msg']}") from None
        mapping[name] = _encode(name, value)
    return mapping


def increments(**counts: int) -> dict[str, int]:
    """HINCRBY amounts of counting fields (`increments(rejected_images=3)`), names checked."""
    for name in counts:
        if _KINDS.get(name) != "int":
            raise TypeError(f"{name!r} is not a count of the deployment record")
    return dict(counts)


class _Names:
    """`FIELD.enrolled_images` is "enrolled_images": a field's name for a single Redis operation
    (HGET, HDEL), checked when it is read."""

    def __getattr__(self, name: str) -> str:
        if name not in STORED_FIELDS:
            raise AttributeError(f"{name!r} is not a field of the deployment record")
        return name


FIELD = _Names()

# The fields of a watchlist's pre-deployment review, cleared when an image is enrolled after it.
REVIEW_FIELDS = ("reviewed_by", "reviewed_at", "reviewed_images", "reviewed_entries")

# What a closed deployment's record keeps (with its stats): no biometric data, enough for Get, List,
# the report and a repeated Close to answer. The points counted before the drop are in the deletion
# report by then; the entries reviewed go (the report after close predicts for the images enrolled).
TOMBSTONE_FIELDS = STORED_FIELDS - {"watchlist_points_deleted", "reviewed_entries"}


def kept_in_tombstone(field_name: str) -> bool:
    return field_name in TOMBSTONE_FIELDS or field_name.startswith(STATS_PREFIX)


def stat_fields(name: str, van_id: str) -> tuple[str, ...]:
    """The deployment-wide and the per-van field of one count; the counts per perceived group
    (lfr_platform.equity) are deployment-wide only: fewer, larger counts of officers' perceptions."""
    if name.startswith(PERCEIVED):
        return (f"{STATS_PREFIX}{name}",)
    return f"{STATS_PREFIX}{name}", f"{STATS_PREFIX}{name}@{van_id}"


# The fields a record is created with: those of them a version-0 record lacks are named when it is migrated.
WRITTEN_AT_CREATE = tuple(
    "deployment_id status name purpose authorising_officer location where urgent ratify_by planned_start planned_end "
    "cameras threshold threshold_floor threshold_override_reason model_id watchlist_size_limit created_at created_by "
    "alert_public_key min_margin prediction operating_point false_alert_budget perceived_groups equity".split()
)

# The records this process has logged and counted as migrated (once each).
_migrated: set[str] = set()


def _log_unknown(deployment_id: str, names: list[str]) -> None:
    """A field this release does not know (a newer release's, or a hand-made one) is left unread: a
    stage or sweep never stops on it. Logged and counted once per record and field."""
    for name in names:
        if (deployment_id, name) in _ignored:
            continue
        _ignored.add((deployment_id, name))
        metrics.DEPLOYMENT_RECORD_FIELDS_IGNORED.labels(name).inc()
        log.warning(
            "deployment record field %r is not one this release knows (a newer release's?): left unread",
            name,
            extra={"deployment_id": deployment_id},
        )


# The (record, field) pairs this process has logged and counted as unknown (once each).
_ignored: set[tuple[str, str]] = set()


def _log_migration(deployment_id: str, absent: list[str]) -> None:
    if deployment_id in _migrated:
        return
    _migrated.add(deployment_id)
    metrics.DEPLOYMENT_RECORDS_MIGRATED.labels("0").inc()
    log.warning(
        "a deployment record written before record version %d, read with the defaults of its absent fields: %s",
        RECORD_VERSION,
        ", ".join(absent) or "none",
        extra={"deployment_id": deployment_id},
    )


def new_deployment_record(
    deployment_id: str,
    *,
    name: str,
    purpose: str,
    authorising_officer: str,
    location: str,
    planned_start: float,
    planned_end: float,
    cameras: Sequence[tuple[str, str]],
    threshold: float,
    threshold_floor: float,
    threshold_override_reason: str,
    model_id: str,
    watchlist_size_limit: int,
    created_at: float,
    created_by: str,
    alert_public_key: bytes,
    where: str,
    urgent: bool = False,
    ratify_by: float = 0.0,
    min_margin: float = 0.0,
    reviewed_at: float = 0.0,
    perceived_groups: Mapping[str, Sequence[str]] | None = None,
    equity: EquityPolicy | None = None,
    false_alert_budget: float | None = None,
    prediction: Mapping[str, Any] | None = None,
    operating_point: Mapping[str, Any] | None = None,
) -> DeploymentRecord:
    """The record of a new, open deployment (`cameras`: (van id, camera id) pairs; none: any camera),
    with the public key that verifies its alert revisions (lfr_platform.signing); an `urgent` one must
    be ratified by `ratify_by`. Nothing of it is matched until its watchlist is reviewed
    (`reviewed_at`, set by the review); an alert whose runner-up scores within `min_margin` of it is
    held for a supervisor. `perceived_groups` (dimension -> the closed list an officer's perception is
    recorded from) and `equity` (the monitor's reference shares and limits) are the policy's, copied
    at creation as `min_margin` is, and so is `false_alert_budget` (the false alerts per face scanned
    its threshold was derived for, which alert's LfrFalseAlertRateHigh holds it to): alert reads them
    from here."""
    optional: dict[str, Any] = {
        "perceived_groups": perceived_groups,
        "equity": equity,
        "false_alert_budget": false_alert_budget,
        "prediction": prediction,
        "operating_point": operating_point,
    }
    if reviewed_at:
        optional |= {"reviewed_at": reviewed_at, "reviewed_by": created_by}
    return DeploymentRecord(
        deployment_id=deployment_id,
        status=OPEN,
        name=name,
        purpose=purpose,
        authorising_officer=authorising_officer,
        location=location,
        where=where,
        urgent=urgent,
        ratify_by=ratify_by,
        planned_start=planned_start,
        planned_end=planned_end,
        cameras=tuple(Camera(van_id=v, camera_id=c) for v, c in cameras),
        threshold=threshold,
        threshold_floor=threshold_floor,
        threshold_override_reason=threshold_override_reason,
        model_id=model_id,
        watchlist_size_limit=watchlist_size_limit,
        enrolled_images=0,
        enrolled_subjects=0,
        rejected_images=0,
        created_at=created_at,
        created_by=created_by,
        alert_public_key=alert_public_key,
        min_margin=min_margin,
        **{k: v for k, v in optional.items() if v is not None},
    )


def lost_record(deployment_id: str, now: float) -> dict[str, str]:
    """The fields of a record for a deployment whose record was lost: what is known of it now, and when."""
    return DeploymentRecord(
        deployment_id=deployment_id,
        status=LOST,
        name="(lost)",
        lost_at=now,
        closed_at=now,
        closed_by="system",
        close_reason="its record was lost from Redis",
    ).to_redis()

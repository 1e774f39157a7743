"""Where deployments live in Redis, and the read view the pipeline stages use.

Match (through its DeploymentService) is the only writer. Every key that belongs to a deployment
starts with `<prefix>:dep:<id>`, so that closing one can find and delete them all, and a test can
prove that nothing is left. After close only the record itself remains, reduced to the
non-biometric tombstone fields below, so that Get, List and a repeated Close can still answer.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

DEPLOYMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")

# Lifecycle states as stored; planned/active are derived from the clock while status is "open".
OPEN, CLOSED, EXPIRED = "open", "closed", "expired"

TOMBSTONE_FIELDS = frozenset(
    {
        "deployment_id",
        "name",
        "purpose",
        "authorising_officer",
        "location",
        "planned_start",
        "planned_end",
        "cameras",
        "status",
        "threshold",
        "threshold_floor",
        "threshold_override_reason",
        "model_id",
        "watchlist_size_limit",
        "enrolled_images",
        "enrolled_subjects",
        "rejected_images",
        "created_at",
        "created_by",
        "closed_at",
        "closed_by",
        "close_reason",
        "deletion",
    }
)


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

    def enrol_lock(self, deployment_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:enrol-lock"

    def alert(self, deployment_id: str, camera: str, subject_id: str) -> str:
        return f"{self.prefix}:dep:{deployment_id}:alert:{camera}:{subject_id}"

    def all_deployments(self) -> str:
        return f"{self.prefix}:deployments"

    def planned_ends(self) -> str:
        return f"{self.prefix}:deployments:ends"


def derived_state(record: dict[str, str], now: float | None = None) -> str:
    """planned, active, closed or expired."""
    status = record.get("status", OPEN)
    if status != OPEN:
        return status
    now = time.time() if now is None else now
    if now < float(record.get("planned_start", 0) or 0):
        return "planned"
    return "active"


@dataclass(frozen=True)
class DeploymentView:
    """What a pipeline stage needs to know about a deployment."""

    deployment_id: str
    state: str
    threshold: float
    model_id: str
    data_key: bytes | None
    cameras: frozenset[tuple[str, str]]

    @property
    def accepting(self) -> bool:
        """Frames of this deployment are processed (it is active and its key exists)."""
        return self.state == "active" and self.data_key is not None

    def covers(self, van_id: str, camera_id: str) -> bool:
        return not self.cameras or (van_id, camera_id) in self.cameras


class DeploymentRegistry:
    """Read side of the deployment records, one Redis round trip per lookup.

    Deliberately uncached: a closed deployment's key must stop being usable at once.
    """

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys

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
        record = {_s(k): _s(v) for k, v in raw.items()}
        cameras = frozenset((c["van_id"], c["camera_id"]) for c in json.loads(record.get("cameras") or "[]"))
        return DeploymentView(
            deployment_id=deployment_id,
            state=derived_state(record),
            threshold=float(record.get("threshold", "nan")),
            model_id=record.get("model_id", ""),
            data_key=key,
            cameras=cameras,
        )


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def admit(registry: DeploymentRegistry, camera):
    """The deployment a pipeline record belongs to, if its records may be processed now.

    Returns the DeploymentView, or why not as a stage outcome: an id that was never a deployment
    (or a camera it does not cover) is bad input and goes to the dead-letter topic; a deployment
    that was closed, or is not active yet, is a normal end and its records are skipped.
    """
    from lfr_platform.stage import Rejected, Skipped

    view = await registry.lookup(camera.deployment_id)
    if view is None:
        return Rejected("unknown_deployment", f"no deployment {camera.deployment_id!r}")
    if view.state in (CLOSED, EXPIRED):
        return Skipped("deployment_closed")
    if not view.covers(camera.van_id, camera.camera_id):
        return Rejected(
            "camera_not_in_deployment",
            f"van {camera.van_id!r} camera {camera.camera_id!r} is not covered by {camera.deployment_id!r}",
        )
    if not view.accepting:
        return Skipped("deployment_not_active")
    return view

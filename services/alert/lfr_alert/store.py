"""The Redis adapter of AlertStore: alert state under the deployment's keys, so Close deletes it."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from lfr_alert.alerting import AlertState, MatchToFold
from lfr_platform.registry import RedisKeys

_FOLD = Path(__file__).with_name("fold.lua").read_text()


class RedisAlertStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.keys = keys
        self._fold = client.register_script(_FOLD)

    async def fold(self, match: MatchToFold, now: float, window_s: float, new_alert_id: str) -> AlertState:
        key = self.keys.alert(match.deployment_id, match.camera.replace("/", ":"), match.subject_id)
        raw = await self._fold(
            keys=[key, f"{key}:matches"],
            args=[
                match.match_id,
                repr(match.score),
                repr(match.captured_at),
                repr(now),
                int(window_s * 1000),
                new_alert_id,
                match.probe_crop,
            ],
        )
        fields = {raw[i].decode(): raw[i + 1] for i in range(0, len(raw), 2)}
        text = {k: v.decode() for k, v in fields.items() if k != "best_crop"}
        return AlertState(
            alert_id=text["alert_id"],
            revision=int(text["revision"]),
            match_count=int(text["count"]),
            best_score=float(text["best_score"]),
            best_match_id=text.get("best_match_id", ""),
            best_crop=fields.get("best_crop", b""),
            first_captured_at=float(text["first_captured_at"]),
            last_seen_at=float(text["last_seen_at"]),
            raised_at=float(text["raised_at"]),
            updated_at=float(text.get("updated_at", text["raised_at"])),
        )

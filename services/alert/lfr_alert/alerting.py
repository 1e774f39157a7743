"""The alert domain: the folded state of one alert and the fold itself, behind a port.

`AlertStore` is the port; Redis (a Lua script, atomic per alert) is the adapter used in
production, and unit tests use an in-memory fake of the same Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MatchToFold:
    deployment_id: str
    camera: str  # "deployment/van/camera"
    subject_id: str
    match_id: str
    score: float
    captured_at: float
    probe_crop: bytes


@dataclass(frozen=True)
class AlertState:
    alert_id: str
    revision: int
    match_count: int
    best_score: float
    best_match_id: str
    best_crop: bytes
    first_captured_at: float
    last_seen_at: float
    raised_at: float
    updated_at: float

    @property
    def is_new(self) -> bool:
        return self.revision == 1


class AlertStore(Protocol):
    async def fold(self, match: MatchToFold, now: float, window_s: float, new_alert_id: str) -> AlertState: ...

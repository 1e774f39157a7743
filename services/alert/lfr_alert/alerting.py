"""The alert domain: an alert with the control room's decisions on it, the match that folds into it,
and the port its store implements.

`AlertStore` is the port; Redis (a Lua fold, optimistic transactions for decisions) is the adapter
used in production, and unit tests use an in-memory fake of the same Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# States, in the order the South Wales Police glossary gives them.
RAISED, ADJUDICATED, ENGAGED, NOT_ENGAGED, RESOLVED = "raised", "adjudicated", "engaged", "not_engaged", "resolved"
STATES = (RAISED, ADJUDICATED, ENGAGED, NOT_ENGAGED, RESOLVED)


@dataclass(frozen=True)
class MatchToFold:
    deployment_id: str
    van_id: str
    camera_id: str
    subject_id: str
    category: str
    match_id: str
    entry_id: str
    score: float
    threshold: float
    model_id: str
    captured_at: float
    sealed_crop: bytes  # the probe face, sealed with the deployment's key
    track_id: str = ""  # the track of the alert's first match (a pass may span several tracks)
    # The best other subject for the same probe, scored as `score` is ("" when the watchlist has none).
    runner_up_subject_id: str = ""
    runner_up_score: float = 0.0
    # Why this match holds its alert for a supervisor should it be the alert's best ("" when it does not).
    hold_reason: str = ""
    # The scene around the probe face: a SceneImage, serialised, its image sealed with the deployment's
    # key (b"" when the match carried none). Kept with the crop while the match is the alert's best.
    scene: bytes = b""

    @property
    def camera(self) -> str:
        return f"{self.deployment_id}/{self.van_id}/{self.camera_id}"


def hold_reason(score: float, runner_up_subject_id: str, runner_up_score: float, min_margin: float) -> str:
    """Why a match holds its alert for a supervisor: another subject (a lookalike, a brother) scored
    within the deployment's `min_margin` of it. "" when it does not: no margin set (0), no runner-up,
    or a margin at least min_margin."""
    if min_margin <= 0 or not runner_up_subject_id:
        return ""
    margin = score - runner_up_score
    if margin >= min_margin:
        return ""
    return (
        f"runner-up {runner_up_subject_id} scores {runner_up_score:.3f}, within {margin:.3f} of {score:.3f} "
        f"(the policy's min_margin {min_margin:g}): a supervisor decides"
    )


@dataclass(frozen=True)
class Decision:
    """Who took a step, and when."""

    officer: str
    recorded_by: str
    role: str
    at: float
    note: str = ""
    correction_reason: str = ""


@dataclass(frozen=True)
class Alert:
    alert_id: str
    deployment_id: str
    van_id: str
    camera_id: str
    subject_id: str
    category: str
    score: float
    threshold: float
    model_id: str
    match_count: int
    best_match_id: str
    entry_id: str
    first_captured_at: float
    last_seen_at: float
    raised_at: float
    updated_at: float
    revision: int
    track_id: str = ""
    state: str = RAISED
    # Adjudication: "true", "false" or "undetermined".
    outcome: str = ""
    adjudication: Decision | None = None
    engaged: bool | None = None
    engagement: Decision | None = None
    # Final outcome: arrest, no_further_action, safeguarding, other.
    final_outcome: str = ""
    final_detail: str = ""
    resolution: Decision | None = None
    # The runner-up of the best match (best_match_id), updated with it.
    runner_up_subject_id: str = ""
    runner_up_score: float = 0.0
    # Held for a supervisor (only a supervisor adjudicates it), and why; once held, always held.
    held: bool = False
    hold_reason: str = ""
    # How the adjudicating officer perceived the person (a value of the deployment's lists; "": not
    # recorded): counted per group by the equity monitor (lfr_platform.equity).
    perceived_sex: str = ""
    perceived_ethnicity: str = ""

    @property
    def perceived(self) -> dict[str, str]:
        """The perceived groups recorded, by dimension (only those recorded)."""
        return {d: v for d, v in (("sex", self.perceived_sex), ("ethnicity", self.perceived_ethnicity)) if v}

    @property
    def margin(self) -> float | None:
        """The best score minus its runner-up's; None without a runner-up."""
        return self.score - self.runner_up_score if self.runner_up_subject_id else None


@dataclass(frozen=True)
class Folded:
    alert: Alert
    created: bool  # the first match of a new alert
    changed: bool  # False when the match had been folded before (a re-delivery)
    sealed_crop: bytes  # the alert's best probe face so far, sealed
    held: bool = False  # this match put the alert on hold for a supervisor (it was not held before)
    # The highest revision of the alert the broker is known to have (a fold's revision once acknowledged,
    # a decision's as it enters the outbox): a re-delivered match publishes nothing at or below it.
    published_revision: int = 0

    @property
    def news(self) -> bool:
        """Whether the alert's current revision is yet to be published: the match changed it, or it
        changed it before and the revision never reached the broker (a crash between the two)."""
        return self.changed or self.alert.revision > self.published_revision


class AlertStore(Protocol):
    async def fold(self, match: MatchToFold, now: float, window_s: float) -> Folded: ...

    async def get(self, alert_id: str) -> Alert | None: ...

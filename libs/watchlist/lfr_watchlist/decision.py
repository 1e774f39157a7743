"""The match decision: a probe matches when its best candidate scores at or above the threshold.

Kept apart from any I/O so that the live stage and the evaluation harness decide the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from lfr_watchlist import Hit


@dataclass(frozen=True)
class Decision:
    matched: bool
    best: Hit | None
    # Every candidate at or above the threshold, best first.
    candidates: list[Hit]


def decide(hits: list[Hit], threshold: float) -> Decision:
    ranked = sorted(hits, key=lambda h: h.score, reverse=True)
    above = [h for h in ranked if h.score >= threshold]
    return Decision(matched=bool(above), best=ranked[0] if ranked else None, candidates=above)

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
    # The best candidate of another subject than the best's (not another photo of the same person),
    # whatever its score: a lookalike the officer must see when it scores nearly as high. None when no
    # other subject was among the hits (a watchlist of one subject).
    runner_up: Hit | None = None


def decide(hits: list[Hit], threshold: float) -> Decision:
    ranked = sorted(hits, key=lambda h: h.score, reverse=True)
    above = [h for h in ranked if h.score >= threshold]
    best = ranked[0] if ranked else None
    runner_up = next((h for h in ranked if best is not None and h.subject_id != best.subject_id), None)
    return Decision(matched=bool(above), best=best, candidates=above, runner_up=runner_up)

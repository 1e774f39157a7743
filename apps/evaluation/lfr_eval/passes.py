"""A person's pass, decided as match decides it: each embedded shot is searched as part of its track's
template so far (lfr_faces.fusion.fuse, what match's TrackTemplates does), and the pass alerts when
any of those decisions (lfr_watchlist.decision: the best candidate at or above the threshold) does.

Which faces of a track are embedded is a shot policy: the live one (lfr_faces.tracking.ShotPolicy) at
several intervals, every face, or the policy that ran until 2026-12 (for comparison). How the shots
make one score is the fusion: the quality-weighted mean template (live), or, for comparison, the
highest or the mean of the two highest single-shot scores so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lfr_faces.fusion import fuse
from lfr_faces.tracking import ShotPolicy, Track

FUSIONS = ("mean", "max", "top2")


@dataclass(frozen=True)
class Strategy:
    name: str
    choose: Callable[[np.ndarray, np.ndarray, np.ndarray], list[int]]  # (t, quality, yaw) -> embedded
    fusion: str = "mean"
    live: bool = False  # the live default


def every_face(t: np.ndarray, quality: np.ndarray, yaw: np.ndarray) -> list[int]:
    return list(range(len(t)))


def spread(
    interval_s: float, budget: int, min_relative_quality: float | None = None
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], list[int]]:
    """The live shot policy at this interval (and, to compare, another quality rule)."""
    policy = ShotPolicy(interval_s=interval_s, budget=budget)
    if min_relative_quality is not None:
        policy = ShotPolicy(interval_s, budget, min_relative_quality)

    def choose(t: np.ndarray, quality: np.ndarray, yaw: np.ndarray) -> list[int]:
        track = Track("eval", (0, 0, 0, 0), float(t[0]), float(t[0]))
        return [i for i in range(len(t)) if policy.choose(track, float(quality[i]), float(t[i]), float(yaw[i])) is None]

    return choose


def best_shots_until_2026_12(t: np.ndarray, quality: np.ndarray, yaw: np.ndarray) -> list[int]:
    """The policy this project ran until 2026-12: the first face, then only one whose quality beats the
    best so far by 15%, at most 5 per track."""
    chosen: list[int] = []
    best = -1.0
    for i, q in enumerate(quality):
        if not chosen or (len(chosen) < 5 and q > best * 1.15):
            chosen.append(i)
            best = max(best, float(q))
    return chosen


def strategies(live_interval_s: float, budget: int) -> list[Strategy]:
    out = [
        Strategy("every face", every_face),
        Strategy("best shots (until 2026-12)", best_shots_until_2026_12),
    ]
    for interval in sorted({0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, live_interval_s}):
        live = interval == live_interval_s
        name = f"one per {interval:g} s" + (" (live)" if live else "")
        out.append(Strategy(name, spread(interval, budget), live=live))
    out += [
        Strategy(f"one per {live_interval_s:g} s, if 0.5 of the best", spread(live_interval_s, budget, 0.5)),
        Strategy(f"one per {live_interval_s:g} s, if 0.8 of the best", spread(live_interval_s, budget, 0.8)),
        Strategy("every face, max of shots", every_face, "max"),
        Strategy(f"one per {live_interval_s:g} s, max of shots", spread(live_interval_s, budget), "max"),
        Strategy(f"one per {live_interval_s:g} s, top-2 of shots", spread(live_interval_s, budget), "top2"),
    ]
    return out


@dataclass(frozen=True)
class PassScores:
    """One track under one strategy, against every watchlist entry."""

    shots: int  # embeddings spent
    best: np.ndarray  # (decisions,) index of the best entry at each decision
    best_score: np.ndarray  # (decisions,) its score
    pairs: np.ndarray  # (entries,) each entry's highest score over the pass's decisions

    def alert(self, mask: np.ndarray | None = None) -> float:
        """The pass's highest decision score (over entries in `mask`, if given): it alerts at or below."""
        if mask is None:
            return float(self.best_score.max())
        return float(self.pairs[mask].max())

    def identified(self, mate: int) -> float:
        """Highest score of a decision whose best candidate is the mate (-inf if none was)."""
        hits = self.best_score[self.best == mate]
        return float(hits.max()) if len(hits) else float("-inf")

    def wrong(self, mate: int) -> float:
        """Highest score of a decision whose best candidate is somebody else (-inf if none was)."""
        miss = self.best_score[self.best != mate]
        return float(miss.max()) if len(miss) else float("-inf")


def decide_pass(vectors: np.ndarray, quality: np.ndarray, chosen: list[int], gallery: np.ndarray, fusion: str):
    """The scores of a pass's decisions: one per embedded shot, on the shots so far."""
    shots = vectors[chosen]
    if fusion == "mean":
        templates = np.stack([fuse(shots[: i + 1], quality[chosen][: i + 1]) for i in range(len(chosen))])
        scores = templates @ gallery.T
    else:
        single = shots @ gallery.T
        if fusion == "max":
            scores = np.maximum.accumulate(single, axis=0)
        elif fusion == "top2":
            scores = np.stack([_top2(single[: i + 1]) for i in range(len(chosen))])
        else:
            raise ValueError(f"unknown fusion {fusion!r}: one of {', '.join(FUSIONS)}")
    best = scores.argmax(axis=1)
    return PassScores(len(chosen), best, scores[np.arange(len(best)), best], scores.max(axis=0))


def _top2(scores: np.ndarray) -> np.ndarray:
    if len(scores) == 1:
        return scores[0]
    top = np.sort(scores, axis=0)[-2:]
    return top.mean(axis=0)

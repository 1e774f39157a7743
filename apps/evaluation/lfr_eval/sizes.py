"""`lfr eval --video --sizes 100,300,1000,2500 --budget 1/1000`: the threshold the calibration derives
for each list size, and what happens there on real video.

For each size, a list of that many entries: the cross-occasion people (always on it) and dataset
identities as filler (a seeded random order, each list a prefix of the next, so they are nested). The
threshold is the library's (lfr_faces.calibration: Calibration.operating_point), and at it:

- single-shot FPIR: stranger faces of the videos (every face) with any entry at or above it;
- per-pass FPIR: stranger tracks (the live shot policy and fusion) with any decision at or above it;
- per-pass TPIR: cross-occasion people whose pass has a decision naming them at or above it;

each with its k of n and Wilson 95% interval, beside the predicted per-pass FPIR upper bound the
threshold was derived from. Where no threshold up to model_max meets the budget, the measures are taken
at model_max and marked so. The strangers are the same people in every row: the rows are not
independent, and 41 passes cannot show a rate near 1 in 1,000, only that it is not far above it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from lfr_eval import passes
from lfr_eval.rates import wilson
from lfr_faces import calibration
from lfr_faces.models import SFACE


def measure(
    sizes: list[int],
    budget: float,
    faces: dict,
    gallery: np.ndarray,
    subjects: np.ndarray,
    source: np.ndarray,
    people: list[tuple[str, Path]],
    strangers: list[Path],
    strategy: passes.Strategy,
    seed: int,
) -> dict:
    calib = calibration.load(SFACE.model_id)
    crossing = np.nonzero(source == "cross-occasion")[0]
    filler = [int(i) for i in np.nonzero(source == "dataset")[0]]
    random.Random(seed).shuffle(filler)
    shots = np.concatenate([faces[v].vectors for v in strangers])
    tracks = [(clip, idx) for v in strangers for clip in [faces[v]] for idx in clip.tracks().values()]
    rows = []
    for size in sizes:
        listed = np.concatenate([crossing, filler[: max(0, size - len(crossing))]])
        entries = gallery[listed]
        point = calib.operating_point(len(listed), budget)
        t = point.threshold if point.threshold is not None else calib.model_max
        single = int(((shots @ entries.T).max(axis=1) >= t).sum())
        decided = [_decide(clip, idx, entries, strategy) for clip, idx in tracks]
        per_pass = sum(p.alert() >= t for p in decided)
        found = 0
        for subject, video in people:
            clip = faces[video]
            mine = [_decide(clip, idx, entries, strategy) for idx in clip.tracks().values()]
            found += any(bool(np.any((subjects[listed][p.best] == subject) & (p.best_score >= t))) for p in mine)
        rows.append(
            {
                "entries": int(len(listed)),
                "threshold": point.threshold,
                "measured_at": t,
                "bound_by": point.bound_by if point.threshold is not None else "none meets the budget up to model_max",
                "group": point.group,
                "predicted_per_pass_fpir_upper": point.predicted_fpir_upper,
                "single_shot_fpir": wilson(single, len(shots)).as_dict(),
                "per_pass_fpir": wilson(int(per_pass), len(decided)).as_dict(),
                "per_pass_tpir_cross_occasion": wilson(found, len(people)).as_dict(),
                "recall_per_pass_calibration": point.recall.as_dict() if point.recall else None,
            }
        )
    return {
        "budget": budget,
        "calibration_version": calib.version,
        "ratio_upper": calib.ratio_upper,
        "largest_list": calib.largest_list(budget),
        "policy": strategy.name,
        "strangers": {"faces": int(len(shots)), "passes": len(tracks)},
        "design": __doc__,
        "rows": rows,
    }


def _decide(clip, idx: np.ndarray, entries: np.ndarray, strategy: passes.Strategy) -> passes.PassScores:
    chosen = strategy.choose(clip.t[idx], clip.quality[idx], clip.yaw[idx])
    return passes.decide_pass(clip.vectors[idx], clip.quality[idx], chosen, entries, strategy.fusion)


def _rate(r: dict) -> str:
    low, high = r["ci95"]
    return f"{r['k']}/{r['n']} [{low:.2g}, {high:.2g}]"


def write(out: dict, folder: Path) -> str:
    (folder / "sizes.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [
        f"# Derived thresholds by list size (budget {out['budget']:.2g} false alerts per pass)",
        "",
        f"Calibration {out['calibration_version']}: per-pass ratio upper bound {out['ratio_upper']:.2f}; the "
        f"largest list the budget admits up to model_max: {out['largest_list']:,} entries. Strangers: "
        f"{out['strangers']['faces']:,} faces in {out['strangers']['passes']} passes; live policy "
        f"({out['policy']}).",
        "",
        "| entries | threshold (bound by) | predicted per-pass FPIR, upper | single-shot FPIR | per-pass FPIR "
        "| per-pass TPIR, cross-occasion | per-pass recall (calibration) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        threshold = (
            f"{r['threshold']:.3f} ({r['bound_by']}; worst: {r['group']})"
            if r["threshold"] is not None
            else f"none (measured at model_max {r['measured_at']:.2f})"
        )
        recall = _rate(r["recall_per_pass_calibration"]) if r["recall_per_pass_calibration"] else "-"
        lines.append(
            f"| {r['entries']:,} | {threshold} | {r['predicted_per_pass_fpir_upper']:.2e} | "
            f"{_rate(r['single_shot_fpir'])} | {_rate(r['per_pass_fpir'])} | "
            f"{_rate(r['per_pass_tpir_cross_occasion'])} | {recall} |"
        )
    text = "\n".join(lines) + "\n"
    (folder / "sizes.md").write_text(text)
    return text

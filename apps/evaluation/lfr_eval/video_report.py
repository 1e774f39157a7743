"""What `lfr eval --video` prints and writes as video.md."""

from __future__ import annotations

import numpy as np

from lfr_eval import calibration_file
from lfr_faces.models import SFACE


def reference_threshold() -> float | None:
    """The lowest threshold the model's calibration lets a deployment run at; None without one."""
    try:
        return calibration_file.lowest_allowed(SFACE.model_id)
    except ValueError:
        return None


def plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value == float("-inf"):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON")


def _at(strategy: dict, threshold: float) -> dict:
    return min(strategy["thresholds"], key=lambda r: abs(r["threshold"] - threshold))


def _rate(rate: dict) -> str:
    return f"{rate['k']}/{rate['n']} ({100 * rate['rate']:.0f}%)" if rate["n"] else "n/a"


def markdown(out: dict) -> str:
    floor = out["reference_threshold"] or 0.62
    ratio = out["per_pass"]
    every = next(s for s in out["strategies"] if s["name"] == "every face")
    lines = [
        "# Per-pass evaluation on video",
        "",
        f"{out['passes']['mated']} mated passes (people whose watchlist photo is of another occasion, and "
        f"single-person clips enrolled from their own last second); {out['passes']['non_mated']} non-mated passes "
        f"(every track of every clip) against {out['watchlist']['from_dataset']:,} dataset identities plus the "
        f"cross-occasion photos ({out['watchlist']['entries']:,} entries).",
        "",
        f"Per-pass / single-shot false match ratio (live policy): {ratio['ratio']:.2f} at {ratio['at']}, 95% upper "
        f"bound {ratio['ratio_upper']:.2f} (counted: {ratio.get('counted_upper') or 0:.2f}; union bound, the "
        f"decisions per stranger pass: {ratio['decisions_per_stranger_pass']['mean'] or 0:.2f}, 95% up to "
        f"{ratio['decisions_per_stranger_pass']['upper_95'] or 0:.2f}); "
        + ", ".join(f"{t:.2f}: {r:.2f}" for t, r in ratio["ratios"] if round(t * 100) % 5 == 0)
        + ".",
        "",
        f"At {floor:.2f}, the lowest threshold the calibration allows (max of model_min and equitability_floor):",
        "",
        "| shots, fusion | embeddings per pass | of every face | per-pass TPIR | wrong subject | per-pass FPIR "
        "| highest stranger | mean mated score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in out["strategies"]:
        row = _at(s, floor)
        name = s["name"] if s["fusion"] == "mean" or "of shots" in s["name"] else f"{s['name']} ({s['fusion']})"
        lines.append(
            f"| {name} | {s['embeddings_per_pass']:.1f} | {s['share_of_every_face']:.0%} | {_rate(row['tpir'])} "
            f"| {row['wrong_subject']} | {_rate(row['fpir'])} | {s['highest_stranger_score']:.3f} "
            f"| {s['mean_mated_score']:.3f} |"
        )
    live = next(s for s in out["strategies"] if s["live"])
    lines += [
        "",
        "What predicts a face's score against the right person within a pass (Spearman's rho over mated passes):",
        "",
        "| measure | median rho | range | passes |",
        "|---|---|---|---|",
    ]
    for name, p in out["predictors"].items():
        lines.append(f"| {name} | {p['median_rho']:+.2f} | {p['min']:+.2f} to {p['max']:+.2f} | {p['passes']} |")
    lines += [
        "",
        f"Mated passes, score of the right person (every face / {live['name']}):",
        "",
        f"| person | kind | every face | live | alerts at {floor:.2f} |",
        "|---|---|---|---|---|",
    ]
    for a, b in zip(every["mated"], live["mated"], strict=True):
        alerts = "yes" if b["score"] >= floor else "no"
        lines.append(f"| {a['subject'][2:]} | {a['kind']} | {a['score']:.3f} | {b['score']:.3f} | {alerts} |")
    lines += [
        "",
        "Per-pass TPIR of the live policy by threshold: "
        + ", ".join(
            f"{r['threshold']:.2f}: {_rate(r['tpir'])}"
            for r in live["thresholds"]
            if round(r["threshold"] * 100) % 2 == 0 and 0.6 <= r["threshold"] <= 0.72
        ),
    ]
    return "\n".join(lines) + "\n"

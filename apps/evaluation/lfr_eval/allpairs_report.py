"""What `lfr eval --all-pairs` writes: all-pairs.json/.md, fmr-tail.png, and the review sheet of its
highest-scoring impostor pairs (review-all-pairs.png/.csv: real faces, kept in the git-ignored output
folder, never committed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from lfr_eval import plots, review
from lfr_eval.tail import DATA_SPEAK

# The thresholds the tables show (every grid threshold is in all-pairs.json).
SHOWN = (0.40, 0.45, 0.50, 0.55, 0.58, 0.60, 0.62, 0.64, 0.65, 0.66, 0.68, 0.70, 0.72, 0.75, 0.80)
# Curves of fewer faces are listed but never the worst group (as the deployments service reads them).
MIN_FACES = 100


def write(out: dict, folder: Path) -> None:
    (folder / "all-pairs.json").write_text(json.dumps(out, indent=1) + "\n")
    (folder / "all-pairs.md").write_text(markdown(out))
    plots.fmr_tail(out, folder / "fmr-tail.png", MIN_FACES)


def at(curve: dict, t: float) -> int:
    return min(range(len(curve["points"])), key=lambda i: abs(curve["points"][i][0] - t))


def worst_group(out: dict, t: float) -> tuple[str | None, float | None]:
    """The labelled group (of MIN_FACES faces or more) with the highest conservative FMR at t."""
    best = (None, None)
    for name, c in out["curves"].items():
        if name == "all" or c["faces"] < MIN_FACES:
            continue
        value = c["conservative"][at(c, t)]
        if best[1] is None or value > best[1]:
            best = (name, value)
    return best


def _band(curve: dict, t: float) -> str:
    row = next((b for b in curve["tail"]["band"] if abs(b[0] - t) < 1e-9), None)
    return f"{row[1]:.2e} [{row[2]:.2e}, {row[3]:.2e}]" if row else "below u"


def _bounded(tail: dict) -> bool:
    """A negative shape ends the tail at u - sigma/xi: worth saying where that is a score."""
    return tail["xi"] < 0 and tail["u"] - tail["sigma"] / tail["xi"] <= 1


def _rate(k: int, n: int) -> str:
    return f"{k}/{n:,} = {k / n:.2e}" if n else "n/a"


def markdown(out: dict) -> str:
    overall = out["curves"]["all"]
    tail = overall["tail"]
    lines = [
        "# All pairs: the model's false match rate and its tail",
        "",
        f"{out['faces']:,} faces, {out['pairs']:,} ordered impostor pairs (probe x entry, different identities); "
        f"{out['exclusions']['rulings_applied']} reviewed same-person rulings applied "
        f"({out['exclusions']['ordered_pairs_skipped']} ordered pairs skipped).",
        "",
        "| source | faces | pairs as probe | k at 0.60 | k at 0.65 | k at 0.70 |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in out["sources"].items():
        ks = [next(k for t, k in s["points"] if abs(t - x) < 1e-9) for x in (0.60, 0.65, 0.70)]
        lines.append(f"| {name} | {s['faces']:,} | {s['pairs']:,} | {ks[0]} | {ks[1]} | {ks[2]} |")
    lines += [
        "",
        f"Tail: GPD over u = {tail['u']:.3f} ({tail['exceedances']:,} ordered exceedances), xi = {tail['xi']:.3f} "
        f"(95% {tail.get('xi_ci95', ['?', '?'])[0]:.3f} to {tail.get('xi_ci95', ['?', '?'])[1]:.3f}), "
        f"sigma = {tail['sigma']:.4f}"
        + (f"; upper end point u - sigma/xi = {tail['u'] - tail['sigma'] / tail['xi']:.3f}" if _bounded(tail) else "")
        + ".",
        "Sensitivity of the shape to u: "
        + "; ".join(
            f"u {s['u']:.3f} ({s['exceedances']} exceedances): xi {s['xi']:+.3f}, sigma {s['sigma']:.4f}"
            for s in out["xi_sensitivity"]
        ),
        "",
        f"Conservative FMR (what the deployments service reads): Wilson 95% upper bound where k >= {DATA_SPEAK} "
        "(data), else the band's high95 (fit), made non-increasing in t. Worst group: curves of "
        f"{MIN_FACES} faces or more.",
        "",
        "| t | overall k/n | fit [95% band] | conservative (source) | worst group | its k/n | its conservative |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in SHOWN:
        i = at(overall, t)
        _, k, n = overall["points"][i]
        name, value = worst_group(out, t)
        group = out["curves"][name] if name else None
        gk = f"{group['points'][i][1]}/{group['points'][i][2]:,}" if group else "-"
        lines.append(
            f"| {t:.2f} | {_rate(k, n)} | {_band(overall, t)} | {overall['conservative'][i]:.2e} "
            f"({overall['speaks'][i]}) | {name or '-'} | {gk} | "
            + (f"{value:.2e} ({group['speaks'][i]})" if group else "-")
            + " |"
        )
    lines += [
        "",
        "Every curve (tail: own GPD fit, or proportional to the overall shape):",
        "",
        "| curve | faces | pairs | over u | tail | xi | k at 0.60 | k at 0.65 | conservative 0.60 | 0.65 | 0.70 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in out["curves"].items():
        tl = c["tail"]
        i60, i65, i70 = (at(c, t) for t in (0.60, 0.65, 0.70))
        lines.append(
            f"| {name} | {c['faces']:,} | {tl['n']:,} | {tl['exceedances']} | {tl['method']} | "
            f"{tl['xi']:+.3f} | {c['points'][i60][1]} | {c['points'][i65][1]} | "
            f"{c['conservative'][i60]:.2e} | {c['conservative'][i65]:.2e} | {c['conservative'][i70]:.2e} |"
        )
    if out.get("failures_to_acquire"):
        lines += [
            "",
            "Images without a usable face (left out): "
            + ", ".join(f"{k} {v}" for k, v in out["failures_to_acquire"].items()),
        ]
    return "\n".join(lines) + "\n"


def summary(out: dict) -> str:
    overall = out["curves"]["all"]
    tail = overall["tail"]
    parts = [f"{out['faces']} faces, {out['pairs']} ordered pairs; u {tail['u']:.3f}, xi {tail['xi']:.3f}"]
    for t in (0.60, 0.65, 0.70):
        i = at(overall, t)
        name, value = worst_group(out, t)
        parts.append(f"at {t:.2f}: conservative {overall['conservative'][i]:.2e}, worst {name} {value:.2e}")
    return "; ".join(parts)


def write_review(folder: Path, top: list[tuple], models) -> None:
    """review-all-pairs.csv (a same_person column to fill) and review-all-pairs.png, side by side."""

    with (folder / "review-all-pairs.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "probe", "subject_id", "subject_image", "score", "same_person", "note"])
        for rank, (score, a, b, _, _) in enumerate(top, start=1):
            writer.writerow([rank, a.ruling_probe, b.identity, b.key, f"{score:.4f}", "", ""])
    if not top:
        return
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder

    photos = build_detector("yunet", models.detector_path, input_width=0)
    embedder = build_embedder("sface", models.embedder_path)
    rows = []
    for rank, (score, a, b, va, vb) in enumerate(top, start=1):
        lines = (f"#{rank}  score {score:.3f}", f"probe: {a.key}", f"entry: {b.key}")
        rows.append(review.sheet_row(_tile(a, va, photos, embedder), _tile(b, vb, photos, embedder), lines))
    import cv2

    cv2.imwrite(str(folder / "review-all-pairs.png"), np.vstack(rows))


def _tile(face, vector: np.ndarray, detector, embedder) -> np.ndarray:
    """A photo's face aligned as the pipeline aligns it; a video face found again in its frame (the
    face of that frame whose embedding is nearest the one scored)."""
    if face.t is None:
        return review.aligned(face.path, detector)
    import cv2

    from lfr_faces import alignment

    capture = cv2.VideoCapture(str(face.path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, round(face.t * (capture.get(cv2.CAP_PROP_FPS) or 25.0)))
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        return np.full((112, 112, 3), 128, np.uint8)
    found = detector.detect(frame, 0.5)
    if not found:
        return cv2.resize(frame, (112, 112))
    tiles = [alignment.align(frame, f.landmarks) for f in found]
    return tiles[int(np.argmax(embedder.embed(tiles) @ vector))]

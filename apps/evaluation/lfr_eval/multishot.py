"""`lfr eval --multi-shot K`: is a template fused from K shots of one person decided at the same
threshold as one shot? Live, match decides a person's pass on its track's best shots fused
(lfr_faces.fusion), so the operating threshold must be calibrated for fused templates, not guessed.

Design (LFW, or any mated dataset): identities with at least K images are split at random in two.
Those of the first half with at least K+1 images are enrolled from one image (match's Enroller) and
searched with their K other images; those of the second half are not enrolled and are searched with
K images: non-mated. Identities with one image are enrolled as filler. Every search goes through the
same live code as `lfr eval` (detect's gate and crop, embed's alignment and model, match's index and
`decide`), as:
- single shot: each of the K images on its own (K searches per person);
- fused, mean: the quality-weighted mean of the person's K vectors (one search per person);
- fused, best: the vector of the person's best-quality shot (one search per person).
Each mode gets the full table (TPIR, FPIR, FMR per threshold, with Wilson intervals and group tests)
and its own recommended threshold for the FPIR target; and the modes are compared at the model's
calibrated threshold.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from lfr_eval import calibration_file, review
from lfr_eval.analysis import ENROL, PROBE, Cache, Models, analyse_all
from lfr_eval.dataset import load_mated
from lfr_eval.experiment import Enrolled, Search, impostor_scores, run_searches
from lfr_eval.results import Attribute, compute, recommend
from lfr_faces.fusion import fuse
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path
from lfr_platform.settings import PlatformSettings

err = Console(stderr=True, soft_wrap=True)
MODES = ("single", "mean", "best")


def main(args) -> int:
    started = time.time()
    k = args.multi_shot
    models_dir = args.models_dir or Path(PlatformSettings().models_dir)
    try:
        if k < 2:
            raise ValueError(f"--multi-shot needs K >= 2 shots per person, not {k}")
        models = Models(model_path(models_dir, YUNET), model_path(models_dir, SFACE), args.mirrored_enrolment)
        dataset = load_mated(args.dataset)
        exclusions = review.load_exclusions(args.exclusions)
    except (FileNotFoundError, ModelMissing, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    rng = random.Random(args.seed)
    identities = dataset.by_identity()
    eligible = sorted(i for i, imgs in identities.items() if len(imgs) >= k)
    rng.shuffle(eligible)
    half = set(eligible[: len(eligible) // 2])
    enrolled_ids = sorted(i for i in half if len(identities[i]) >= k + 1)
    if args.max_subjects:
        enrolled_ids = enrolled_ids[: args.max_subjects]
    unenrolled_ids = sorted(i for i in eligible if i not in half)
    if args.max_nonmated:
        unenrolled_ids = unenrolled_ids[: args.max_nonmated]
    if not enrolled_ids or not unenrolled_ids:
        err.print(f"[red]error:[/] {args.dataset} has too few identities with {k}+ images for --multi-shot {k}")
        return 2
    filler = sorted((imgs[0] for imgs in identities.values() if len(imgs) == 1), key=lambda i: i.key)
    filler = filler if args.filler < 0 else filler[: args.filler]

    def images(identity: str) -> list:
        return sorted(identities[identity], key=lambda i: i.key)

    work = [(img.path, ENROL) for i in enrolled_ids for img in images(i)]
    work += [(img.path, ENROL) for img in filler]
    work += [(img.path, PROBE) for i in enrolled_ids + unenrolled_ids for img in images(i)]
    results = analyse_all(work, models, Cache(args.cache, models.fingerprint()))

    watchlist: list[Enrolled] = []
    probes: dict[str, tuple[str | None, list]] = {}  # identity -> (mate, its K probe images)
    for identity in enrolled_ids:
        imgs = images(identity)
        chosen = next((img for img in imgs if results[(img.path, ENROL)].status == "ok"), None)
        if chosen is None:
            continue  # a failure to enrol: the person is not searched
        watchlist.append(
            Enrolled(identity, chosen.key, chosen.path, results[(chosen.path, ENROL)].vector, False, chosen.labels)
        )
        probes[identity] = (identity, [img for img in imgs if img is not chosen][:k])
    for img in filler:
        if results[(img.path, ENROL)].status == "ok":
            watchlist.append(
                Enrolled(img.identity or "", img.key, img.path, results[(img.path, ENROL)].vector, True, img.labels)
            )
    for identity in unenrolled_ids:
        probes[identity] = (None, images(identity)[:k])

    searches = {mode: _searches(mode, probes, results, dataset.name) for mode in MODES}
    every = [s for mode in MODES for s in searches[mode]]
    err.print(f"--multi-shot {k}: {len(watchlist)}-entry watchlist, {len(probes)} people, {len(every)} searches")
    run_searches(watchlist, every)

    attributes = [Attribute(dataset.name, c) for c in dataset.group_columns]
    # Reviewed same-person pairs (LFW holds some people under two names): a search built from an
    # excluded image does not count as an impostor of that subject, as in `lfr eval`.
    sources = {
        s.key: {img.key for img in probes[s.key.split("#")[0]][1]} if not s.key.endswith("#single") else {s.key[:-7]}
        for mode in MODES
        for s in searches[mode]
    }
    views, recommendations = {}, {}
    for mode in MODES:
        excluded = {(s.key, subject) for s in searches[mode] for key, subject in exclusions if key in sources[s.key]}
        excluded_probes = {key for key, _ in excluded}
        mated = [s for s in searches[mode] if s.mate is not None]
        nonmated = [s for s in searches[mode] if s.mate is None and s.key not in excluded_probes]
        views[mode] = compute(
            mated=mated,
            nonmated=nonmated,
            impostors=impostor_scores(watchlist, mated + nonmated, excluded),
            thresholds=args.thresholds,
            watchlist_size=len(watchlist),
            target_size=args.target_size,
            mated_attributes=attributes,
            nonmated_attributes=attributes,
            min_group_n=args.min_group_n,
        )
        recommendations[mode] = recommend(views[mode], args.target_fpir, args.target_size, args.alpha)
    # The lowest threshold the calibration lets a deployment run at (each derives its own above it).
    calibrated = calibration_file.lowest_allowed(SFACE.model_id)
    comparison = {mode: _at(views[mode], calibrated) for mode in MODES}
    out = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "k": k,
        "design": __doc__,
        "inputs": {
            "dataset": str(args.dataset),
            "seed": args.seed,
            "filler": len(filler),
            "exclusions": len(exclusions),
        },
        "watchlist": {"entries": len(watchlist), "subjects": sum(not e.filler for e in watchlist)},
        "people": {
            "mated": sum(m is not None for m, _ in probes.values()),
            "non_mated": sum(m is None for m, _ in probes.values()),
        },
        "target": {"fpir": args.target_fpir, "watchlist_size": args.target_size},
        "calibrated_threshold": calibrated,
        "at_calibrated_threshold": comparison,
        "recommendations": recommendations,
        "views": views,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"multishot-{k}.json").write_text(json.dumps(out, indent=2, default=_plain) + "\n")
    (args.out / f"multishot-{k}.md").write_text(_markdown(out))
    print(_markdown(out))  # noqa: T201 - the command's output
    return 0


def _searches(mode: str, probes: dict, results: dict, source: str) -> list[Search]:
    out = []
    for identity, (mate, imgs) in probes.items():
        shots = [(img, results[(img.path, PROBE)]) for img in imgs]
        if mode == "single":
            out += [
                Search(f"{img.key}#single", img.path, source, mate, img.labels, a.status, a.vector) for img, a in shots
            ]
            continue
        acquired = [(img, a) for img, a in shots if a.vector is not None]
        first = imgs[0]
        if not acquired:
            out.append(Search(f"{identity}#{mode}", first.path, source, mate, first.labels, shots[0][1].status, None))
            continue
        vectors = np.stack([a.vector for _, a in acquired])
        qualities = [a.quality if a.quality is not None else 1.0 for _, a in acquired]
        vector = fuse(vectors, qualities, mode)
        out.append(Search(f"{identity}#{mode}", first.path, source, mate, first.labels, "ok", vector))
    return out


def _at(view: dict, threshold: float) -> dict:
    row = min(view["thresholds"], key=lambda r: abs(r["threshold"] - threshold))
    return {"threshold": row["threshold"], "tpir": row["tpir"], "fpir": row["fpir"], "fmr": row["fmr"]}


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _pct(rate: dict) -> str:
    if rate["rate"] is None:
        return "n/a"
    low, high = rate["ci95"]
    return f"{100 * rate['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({rate['k']}/{rate['n']})"


def _markdown(out: dict) -> str:
    k, t = out["k"], out["calibrated_threshold"]
    lines = [
        f"# Multi-shot evaluation: {k} shots per person",
        "",
        f"Watchlist {out['watchlist']['entries']} entries; {out['people']['mated']} enrolled people searched with "
        f"{k} other images each, {out['people']['non_mated']} people not enrolled searched with {k} images each.",
        "",
        f"At {t:.2f}, the lowest threshold the calibration allows (max of model_min and equitability_floor):",
        "",
        "| mode | TPIR | FPIR | FMR |",
        "|---|---|---|---|",
    ]
    for mode, row in out["at_calibrated_threshold"].items():
        lines.append(f"| {mode} | {_pct(row['tpir'])} | {_pct(row['fpir'])} | {row['fmr']['rate']:.2e} |")
    lines += [
        "",
        f"Recommended threshold for FPIR 1 in {1 / out['target']['fpir']:,.0f} at {out['target']['watchlist_size']:,} "
        "entries (FMR extrapolation, equitable across groups):",
        "",
        "| mode | threshold | TPIR there |",
        "|---|---|---|",
    ]
    for mode, rec in out["recommendations"].items():
        threshold = rec.get("threshold")
        tpir = _pct(rec["tpir"]) if threshold is not None else "n/a"
        lines.append(f"| {mode} | {threshold if threshold is not None else 'none'} | {tpir} |")
    return "\n".join(lines) + "\n"

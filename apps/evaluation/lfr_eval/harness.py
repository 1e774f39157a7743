"""`lfr eval`: build a watchlist from a labelled dataset, search mated and non-mated probes through
the live code, and report rates per threshold and per group with a recommended threshold."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from lfr_eval import calibration_file, plots, report, review
from lfr_eval.analysis import ENROL, PROBE, Cache, Models, analyse_all
from lfr_eval.dataset import Dataset, Image, load_mated, load_nonmated
from lfr_eval.experiment import Enrolled, Search, impostor_scores, run_searches
from lfr_eval.results import MODEL_MAX_TPIR, MODEL_MIN_FMR, Attribute, compute, model_range, recommend
from lfr_faces.calibration import calibration_path
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path
from lfr_platform.settings import PlatformSettings

err = Console(stderr=True, soft_wrap=True)

METHOD = """\
Every image goes through the live pipeline's own code: as a probe, detect's quality gate and crop
(`lfr_faces.crops.find_faces` with detect's default settings) and embed's 5-point alignment and model
(`embed_crops`); as an enrolment photo, match's `Enroller` with match's default enrolment policy. The
watchlist is enrolled in the embedded Qdrant index match uses, every probe takes its top-5 candidates
from it by exact search (live, match re-checks approximate results exactly near the threshold, so its
decisions there are the same), and match's `decide` makes each decision. Aligned faces whose template
reaches past the photo are filled by replicating its edge (as live), not with black, which would lower
impostor scores.

TPIR counts a mated search as identified when its best candidate is the right identity at or above the
threshold; probes without a usable face count as misses. FPIR counts non-mated searches (with a usable
face) that have any candidate at or above the threshold. Intervals are Wilson 95%. Group differences are
tested with Fisher's exact test (two groups) or a chi-square test of homogeneity (more), leaving out
unlabelled images; the recommendation needs every FPIR test at p >= alpha / (number of attributes).
FPIR depends on watchlist size: FPIR at the target size is extrapolated from the per-comparison false
match rate as 1 - (1 - FMR)^N, which assumes independent comparisons, and is labelled as such.

Labels are as published with the data and have known errors; race labels cover few LFW identities
with several images, so FNIR per race has wide intervals. Public sets overlap: review the
highest-scoring non-mated probes (review.png, review.csv) and pass confirmed same-person pairs with
--exclusions; report.json then holds the results as labelled and as reviewed."""


def _sample(items: list, n: int, rng: random.Random) -> list:
    return sorted(rng.sample(items, n), key=lambda i: i.key) if 0 < n < len(items) else items


def main(args) -> int:
    started = time.time()
    models_dir = args.models_dir or Path(PlatformSettings().models_dir)
    try:
        models = Models(model_path(models_dir, YUNET), model_path(models_dir, SFACE), args.mirrored_enrolment)
        mated_ds = load_mated(args.dataset)
        nonmated_ds = [load_nonmated(p) for p in args.nonmated]
        exclusions = review.load_exclusions(args.exclusions)
    except (FileNotFoundError, ModelMissing, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    rng = random.Random(args.seed)
    identities = mated_ds.by_identity()
    multi = {i: imgs for i, imgs in identities.items() if len(imgs) >= 2}
    subjects = sorted(multi)
    if args.max_subjects and args.max_subjects < len(subjects):
        subjects = sorted(rng.sample(subjects, args.max_subjects))
    singles = sorted((imgs[0] for imgs in identities.values() if len(imgs) == 1), key=lambda i: i.key)
    rng.shuffle(singles)
    n_filler = len(singles) if args.filler < 0 else min(args.filler, len(singles))
    filler, singleton_probes = singles[:n_filler], sorted(singles[n_filler:], key=lambda i: i.key)
    if args.max_nonmated:
        singleton_probes = _sample(singleton_probes, args.max_nonmated, rng)
    nonmated_images = {ds.name: _sample(ds.images, args.max_nonmated, rng) for ds in nonmated_ds}
    subject_images = {s: _ordered(multi[s], args.enrol, rng) for s in subjects}

    work = [(img.path, ENROL) for imgs in subject_images.values() for img in imgs]
    work += [(img.path, ENROL) for img in filler]
    work += [(img.path, PROBE) for imgs in subject_images.values() for img in imgs]
    work += [(img.path, PROBE) for img in singleton_probes]
    work += [(img.path, PROBE) for imgs in nonmated_images.values() for img in imgs]
    cache = Cache(args.cache, models.fingerprint())
    err.print(
        f"{len(set(work))} analyses ({len(cache.entries)} cached) for {len(subjects)} subjects, "
        f"{len(filler)} filler, {len(singleton_probes) + sum(map(len, nonmated_images.values()))} non-mated"
    )
    results = analyse_all(work, models, cache)

    watchlist, mated, failures_to_enrol = _enrol(mated_ds, subject_images, results)
    fte_filler = Counter()
    for img in filler:
        analysed = results[(img.path, ENROL)]
        if analysed.status == "ok":
            watchlist.append(Enrolled(img.identity or "", img.key, img.path, analysed.vector, True, img.labels))
        else:
            fte_filler[analysed.status] += 1
    singles_source = f"{mated_ds.name}-singletons"
    nonmated = [_search(img, singles_source, None, results) for img in singleton_probes]
    for name, imgs in nonmated_images.items():
        nonmated += [_search(img, name, None, results) for img in imgs]
    err.print(f"searching {len(mated) + len(nonmated)} probes in a {len(watchlist)}-entry watchlist")
    run_searches(watchlist, mated + nonmated)

    mated_attributes = [Attribute(mated_ds.name, c) for c in mated_ds.group_columns] if mated else []
    nonmated_attributes = [Attribute(singles_source, c) for c in mated_ds.group_columns if singleton_probes] + [
        Attribute(name, c)
        for ds in nonmated_ds
        for c in ds.group_columns
        for name in [ds.name]
        if nonmated_images[name]
    ]
    common = {
        "thresholds": args.thresholds,
        "watchlist_size": len(watchlist),
        "target_size": args.target_size,
        "mated_attributes": mated_attributes,
        "nonmated_attributes": nonmated_attributes,
        "min_group_n": args.min_group_n,
    }
    labelled = compute(
        mated=mated,
        nonmated=nonmated,
        impostors=impostor_scores(watchlist, mated + nonmated, set()),
        **common,
    )
    reviewed = None
    if exclusions:
        excluded_probes = {probe for probe, _ in exclusions}
        kept = [s for s in nonmated if s.key not in excluded_probes]
        reviewed = compute(
            mated=mated,
            nonmated=kept,
            impostors=impostor_scores(watchlist, mated + kept, exclusions),
            **common,
        )
    primary = reviewed or labelled
    recommendation = recommend(primary, args.target_fpir, args.target_size, args.alpha)

    args.out.mkdir(parents=True, exist_ok=True)
    by_subject = {e.subject_id: e for e in watchlist}
    top = review.top_pairs(mated + nonmated, args.review_top)
    review.write_csv(args.out / "review.csv", top, by_subject)
    from lfr_faces.detectors import build_detector

    review.write_sheet(
        args.out / "review.png", top, by_subject, build_detector("yunet", models.detector_path, input_width=0)
    )
    plots.rates(primary, args.out / "rates.png", recommendation.get("threshold"))
    plots.fpir_by_group(primary, args.out / "fpir_by_group.png")
    plots.det(primary, args.out / "det.png")
    full = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "detector": YUNET.model_id,
            "embedder": SFACE.model_id,
            "fingerprint": models.fingerprint(),
        },
        "inputs": {
            "dataset": str(args.dataset),
            "nonmated": [str(p) for p in args.nonmated],
            "enrol": args.enrol,
            "filler": len(filler),
            "seed": args.seed,
            "max_subjects": args.max_subjects,
            "max_nonmated": args.max_nonmated,
        },
        "target": {"fpir": args.target_fpir, "watchlist_size": args.target_size, "alpha": args.alpha},
        "watchlist": {
            "entries": len(watchlist),
            "subjects": len(watchlist) - sum(e.filler for e in watchlist),
            "filler": sum(e.filler for e in watchlist),
            "failures_to_enrol": {"subjects": dict(failures_to_enrol), "filler": dict(fte_filler)},
        },
        "data_problems": {ds.name: dict(ds.problems) for ds in [mated_ds, *nonmated_ds] if ds.problems},
        "data_problem_examples": {ds.name: ds.problem_examples for ds in [mated_ds, *nonmated_ds] if ds.problems},
        "exclusions": sorted([list(p) for p in exclusions]),
        "recommendation": recommendation,
        "recommended_threshold": recommendation.get("threshold"),
        "labelled": labelled,
        "reviewed": reviewed,
        "method": METHOD,
        "wall_seconds": round(time.time() - started, 1),
    }
    report.write_json(args.out / "report.json", full)
    report.write_markdown(args.out / "report.md", full)
    if args.write_calibration:
        _write_calibration(full, args)
    threshold = recommendation.get("threshold")
    err.print(f"recommended threshold: {threshold if threshold is not None else 'none'}; report in {args.out}")
    return 0


def _ordered(images: list[Image], how: str, rng: random.Random) -> list[Image]:
    images = sorted(images, key=lambda i: i.key)
    if how == "random":
        rng.shuffle(images)
    return images


def _search(img: Image, source: str, mate: str | None, results) -> Search:
    analysed = results[(img.path, PROBE)]
    return Search(img.key, img.path, source, mate, img.labels, analysed.status, analysed.vector)


def _enrol(ds: Dataset, subject_images: dict[str, list[Image]], results):
    """Each subject's first image that passes enrolment is enrolled; its others are mated probes.

    Failures to enrol are counted by reason, and per group (by the labels of the subject's first image).
    """
    watchlist, mated, failures = [], [], Counter()
    by_group: dict[str, dict[str, dict[str, int]]] = {c: {} for c in ds.group_columns}
    for subject, images in subject_images.items():
        chosen = next((img for img in images if results[(img.path, ENROL)].status == "ok"), None)
        for column in ds.group_columns:
            group = by_group[column].setdefault(images[0].labels.get(column) or "unlabelled", {"failed": 0, "n": 0})
            group["n"] += 1
            group["failed"] += chosen is None
        if chosen is None:
            failures[results[(images[0].path, ENROL)].status] += 1
            continue
        watchlist.append(
            Enrolled(subject, chosen.key, chosen.path, results[(chosen.path, ENROL)].vector, False, chosen.labels)
        )
        mated += [_search(img, ds.name, subject, results) for img in images if img is not chosen]
    failures["groups"] = {f"{ds.name}.{c}": dict(sorted(g.items())) for c, g in by_group.items()}  # type: ignore[assignment]
    return watchlist, mated, failures


def _write_calibration(full: dict, args) -> None:
    """The model's range and single-shot recall into its calibration file (format 2); the other
    commands' sections are kept (lfr_eval.calibration_file)."""
    view = full["reviewed"] or full["labelled"]
    measured = model_range(view, args.alpha)
    path = calibration_path(full["model"]["embedder"])
    calibration_file.update(
        path,
        full["model"]["embedder"],
        {
            "model_min": measured["model_min"],
            "model_max": measured["model_max"],
            "equitability_floor": measured["equitability_floor"],
            "recall": {"single_shot": measured["single_shot"]},
        },
        "eval",
        {
            "rule": f"model_min: lowest grid threshold with impostor FMR (k/n) <= {MODEL_MIN_FMR:g}; model_max: "
            f"highest with single-shot TPIR >= {MODEL_MAX_TPIR:.0%}; equitability_floor: lowest at which and "
            f"above which no group FPIR difference is significant (alpha {args.alpha} / attributes tested); "
            "recall.single_shot: mated searches identified (k of n) per threshold, as reviewed",
            "inputs": full["inputs"],
            "watchlist_size": view["watchlist_size"],
            "mated_searches": view["mated_searches"],
            "nonmated_searches": view["nonmated_acquired"],
            "impostor_pairs": view["impostor_pairs"],
            "exclusions": len(full["exclusions"]),
            "alpha": args.alpha,
            "generated_at": full["generated_at"],
            "command": "make eval EVAL_ARGS=--write-calibration; see docs/evaluation.md",
        },
    )
    err.print(
        f"calibration written to {path}: model_min {measured['model_min']}, model_max {measured['model_max']}, "
        f"equitability_floor {measured['equitability_floor']}"
    )

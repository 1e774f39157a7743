"""`lfr eval --gallery G`: is a subject enrolled from G photos better kept as G entries (a probe's
best entry decides), as one template fused from them (lfr_watchlist.templates, the mean of the
vectors, as a reviewed watchlist builds it), or as both (the G entries and their template: live)?

Design (LFW, or any mated dataset): identities with at least G+1 images are split at random in two.
Those of the first half are enrolled from their first G enrollable images (the Enroller) and searched
with each of their other images; those of the second half are not enrolled and are searched with
each of their images: non-mated. Identities with one image are enrolled as filler. The two watchlists
differ only in how an enrolled subject's G vectors are kept; every search is decided by match's code.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from rich.console import Console

from lfr_eval import calibration_file, review
from lfr_eval.analysis import ENROL, PROBE, Cache, Models, analyse_all
from lfr_eval.dataset import load_mated
from lfr_eval.experiment import Enrolled, Search, impostor_scores, run_searches
from lfr_eval.multishot import _at, _pct, _plain
from lfr_eval.results import Attribute, compute, recommend
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path
from lfr_platform.settings import PlatformSettings
from lfr_watchlist import Entry
from lfr_watchlist.templates import subject_templates

err = Console(stderr=True, soft_wrap=True)
MODES = ("separate", "fused", "both")


def main(args) -> int:
    started = time.time()
    g = args.gallery
    models_dir = args.models_dir or Path(PlatformSettings().models_dir)
    try:
        if g < 2:
            raise ValueError(f"--gallery needs G >= 2 photos per subject, not {g}")
        models = Models(model_path(models_dir, YUNET), model_path(models_dir, SFACE), args.mirrored_enrolment)
        dataset = load_mated(args.dataset)
        exclusions = review.load_exclusions(args.exclusions)
    except (FileNotFoundError, ModelMissing, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    rng = random.Random(args.seed)
    identities = {i: sorted(imgs, key=lambda img: img.key) for i, imgs in dataset.by_identity().items()}
    eligible = sorted(i for i, imgs in identities.items() if len(imgs) >= g + 1)
    rng.shuffle(eligible)
    enrolled_ids, unenrolled_ids = sorted(eligible[: len(eligible) // 2]), sorted(eligible[len(eligible) // 2 :])
    filler = sorted((imgs[0] for imgs in identities.values() if len(imgs) == 1), key=lambda i: i.key)
    filler = filler if args.filler < 0 else filler[: args.filler]
    work = [(img.path, kind) for i in enrolled_ids for img in identities[i] for kind in (ENROL, PROBE)]
    work += [(img.path, ENROL) for img in filler] + [(img.path, PROBE) for i in unenrolled_ids for img in identities[i]]
    results = analyse_all(work, models, Cache(args.cache, models.fingerprint()))

    fillers = [
        Enrolled(img.identity or "", img.key, img.path, results[(img.path, ENROL)].vector, True, img.labels)
        for img in filler
        if results[(img.path, ENROL)].vector is not None
    ]
    watchlists: dict[str, list[Enrolled]] = {mode: list(fillers) for mode in MODES}
    probes: list[tuple[str | None, object]] = []
    for identity in enrolled_ids:
        imgs = identities[identity]
        gallery = [img for img in imgs if results[(img.path, ENROL)].vector is not None][:g]
        if len(gallery) < g:
            continue  # a failure to enrol G photos: not searched
        vectors = [results[(img.path, ENROL)].vector for img in gallery]
        first = gallery[0]
        for img, vector in zip(gallery, vectors, strict=True):
            watchlists["separate"].append(Enrolled(identity, img.key, img.path, vector, False, img.labels))
        photos = [Entry(gallery[n].key, v, identity, "", "", "", float(n), "") for n, v in enumerate(vectors)]
        fused = subject_templates("eval", photos)[0].vector
        watchlists["fused"].append(Enrolled(identity, first.key, first.path, fused, False, first.labels))
        for img, vector in zip(gallery, vectors, strict=True):
            watchlists["both"].append(Enrolled(identity, img.key, img.path, vector, False, img.labels))
        watchlists["both"].append(Enrolled(identity, first.key, first.path, fused, False, first.labels))
        probes += [(identity, img) for img in imgs if img not in gallery]
    probes += [(None, img) for identity in unenrolled_ids for img in identities[identity]]

    attributes = [Attribute(dataset.name, c) for c in dataset.group_columns]
    views, recommendations = {}, {}
    for mode in MODES:
        searches = [
            Search(img.key, img.path, dataset.name, mate, img.labels, a.status, a.vector)
            for mate, img in probes
            for a in [results[(img.path, PROBE)]]
        ]
        run_searches(watchlists[mode], searches)
        excluded_probes = {key for key, _ in exclusions}
        mated = [s for s in searches if s.mate is not None]
        nonmated = [s for s in searches if s.mate is None and s.key not in excluded_probes]
        views[mode] = compute(
            mated=mated,
            nonmated=nonmated,
            impostors=impostor_scores(watchlists[mode], mated + nonmated, set(exclusions)),
            thresholds=args.thresholds,
            watchlist_size=len(watchlists[mode]),
            target_size=args.target_size,
            mated_attributes=attributes,
            nonmated_attributes=attributes,
            min_group_n=args.min_group_n,
        )
        recommendations[mode] = recommend(views[mode], args.target_fpir, args.target_size, args.alpha)
    # The lowest threshold the calibration lets a deployment run at (each derives its own above it).
    calibrated = calibration_file.lowest_allowed(SFACE.model_id)
    out = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "g": g,
        "design": __doc__,
        "subjects": len(watchlists["fused"]) - len(fillers),
        "probes": {"mated": sum(m is not None for m, _ in probes), "non_mated": sum(m is None for m, _ in probes)},
        "calibrated_threshold": calibrated,
        "at_calibrated_threshold": {mode: _at(views[mode], calibrated) for mode in MODES},
        "recommendations": recommendations,
        "views": views,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gallery-{g}.json").write_text(json.dumps(out, indent=2, default=_plain) + "\n")
    lines = [
        f"# Gallery of {g} photos per subject: {g} entries, or one fused template",
        "",
        f"{out['subjects']} subjects enrolled from {g} photos each, {out['probes']['mated']} mated and "
        f"{out['probes']['non_mated']} non-mated single-photo searches, {len(fillers)} filler entries.",
        "",
        "| gallery | TPIR at the lowest allowed threshold | FPIR | FMR | recommended threshold | TPIR there |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        row, rec = out["at_calibrated_threshold"][mode], recommendations[mode]
        tpir = _pct(rec["tpir"]) if rec.get("threshold") is not None else "n/a"
        lines.append(
            f"| {mode} | {_pct(row['tpir'])} | {_pct(row['fpir'])} | {row['fmr']['rate']:.2e} "
            f"| {rec.get('threshold')} | {tpir} |"
        )
    text = "\n".join(lines) + "\n"
    (args.out / f"gallery-{g}.md").write_text(text)
    print(text)  # noqa: T201 - the command's output
    return 0

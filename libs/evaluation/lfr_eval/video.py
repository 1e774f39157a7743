"""`lfr eval --video`: per-pass identification on real video, through the live code.

Mated passes: people in a clip whose watchlist photo is of another occasion (`--xdomain`:
video/<person>.mp4 and watchlist/<person>/<photos>), and single-person clips enrolled from a frame of
their own last second (`--same-clip`, the easy case the demo uses). Non-mated passes: every track of
every clip in `--videos` (the people in them are on no watchlist), searched against a watchlist of
`--dataset` identities (their first enrollable photo, at least 1,000 advised) with the cross-occasion
photos among them. Every clip goes through ingest's sampling, detect's gate, tracker and crops, and
embed's model (lfr_eval.clips); every enrolment through the deployments service's Enroller; every
pass is decided as match decides it (lfr_eval.passes) under each shot policy and fusion.

A per-pass rate counts passes, not faces: TPIR = mated clips where some decision's best candidate is
the right person at or above the threshold; FPIR = non-mated tracks where some decision has a
candidate at or above it. The per-pass floor: per-pass false matches are measured against single-shot
false matches of the same faces (the ratio, where both are seen at least MIN_PAIRS times), and that
ratio scales the model's single-shot false match rate from its calibration (`lfr eval`, 22.6 million
pairs) to FPIR at the target watchlist size, as `lfr eval` extrapolates: FPIR = 1 - (1 - r FMR)^N.
"""

from __future__ import annotations

import json
import os
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from rich.console import Console

from lfr_eval import analysis, clips, passes
from lfr_eval.analysis import ENROL, Cache, Models, analyse_all
from lfr_eval.dataset import IMAGE_SUFFIXES, load_mated
from lfr_eval.rates import fpir_at_size, rates_over_thresholds, wilson
from lfr_faces import calibration
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path

err = Console(stderr=True, soft_wrap=True)
# Below this many single-shot false matches at a threshold, the per-pass ratio there is noise.
MIN_PAIRS = 10


def main(args) -> int:
    started = time.time()
    models_dir = args.models_dir or Path(os.environ.get("LFR_MODELS_DIR", "models"))
    try:
        models = Models(model_path(models_dir, YUNET), model_path(models_dir, SFACE), args.mirrored_enrolment)
        people = _xdomain(args.xdomain)
        strangers = sorted(p for p in args.videos.glob("*") if p.suffix.lower() in {".mp4", ".avi", ".mkv", ".mov"})
        if not strangers:
            raise FileNotFoundError(f"no video clips in {args.videos}")
        same_clip = [p for p in strangers if fnmatch(p.name, args.same_clip)]
        dataset = load_mated(args.dataset)
    except (FileNotFoundError, ModelMissing, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    from lfr_detect.settings import DetectSettings

    detect = DetectSettings.model_construct()
    err.print(f"{len(people)} cross-occasion people, {len(strangers)} clips ({len(same_clip)} also same-clip mated)")
    faces = clips.extract_all([video for video, _ in people.values()] + strangers, models, args.cache / "video")

    gallery, subjects, source, refused = _watchlist(args, dataset, people, same_clip, models)
    not_same_clip = source != "same-clip"
    err.print(f"watchlist: {len(subjects)} entries ({int((source == 'dataset').sum())} from {dataset.name})")

    mated = [(f"x:{name}", video, "cross-occasion") for name, (video, _) in people.items()]
    mated += [(f"s:{video.name}", video, "same clip") for video in same_clip if f"s:{video.name}" in set(subjects)]
    results = []
    for strategy in passes.strategies(detect.shot_interval_s, detect.shot_budget):
        results.append(_run(strategy, faces, gallery, subjects, not_same_clip, mated, strangers, args.thresholds))
    live = next(r for r in results if r["live"])
    floor = _per_pass_floor(live, faces, strangers, gallery[not_same_clip], args)
    predictors = _what_predicts(faces, mated, gallery, subjects)
    out = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "design": __doc__,
        "inputs": {
            "xdomain": str(args.xdomain),
            "videos": str(args.videos),
            "same_clip": args.same_clip,
            "dataset": str(args.dataset),
            "policies": clips.live_policies(),
        },
        "watchlist": {
            "entries": len(subjects),
            "from_dataset": int((source == "dataset").sum()),
            "cross_occasion": int((source == "cross-occasion").sum()),
            "same_clip": int((source == "same-clip").sum()),
            "refused": refused,
        },
        "passes": {"mated": len(mated), "non_mated": live["non_mated_passes"]},
        "target": {"fpir": args.target_fpir, "watchlist_size": args.target_size},
        "floor": floor,
        "predictors": predictors,
        "strategies": results,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video.json").write_text(json.dumps(out, indent=1, default=_plain) + "\n")
    text = markdown(out)
    (args.out / "video.md").write_text(text)
    print(text)  # noqa: T201 - the command's output
    return 0


def _xdomain(folder: Path) -> dict[str, tuple[Path, list[Path]]]:
    """person -> (their clip, their watchlist photos)."""
    out = {}
    for video in sorted((folder / "video").glob("*.mp4")):
        photos = sorted(p for p in (folder / "watchlist" / video.stem).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise FileNotFoundError(f"{video.name} has no photo in {folder / 'watchlist' / video.stem}")
        out[video.stem] = (video, photos)
    if not out:
        raise FileNotFoundError(f"no cross-occasion pairs in {folder} (video/<person>.mp4, watchlist/<person>/)")
    return out


def _watchlist(args, dataset, people, same_clip: list[Path], models: Models):
    """Vectors, subject ids and sources of every entry, through the live Enroller; and refusals."""
    identities = dataset.by_identity()
    names = sorted(identities)
    if args.watchlist_size:
        names = names[: args.watchlist_size]
    work = [(img.path, ENROL) for name in names for img in sorted(identities[name], key=lambda i: i.key)]
    results = analyse_all(work, models, Cache(args.cache, models.fingerprint()))
    vectors, subjects, source, refused = [], [], [], {}
    for name in names:
        ordered = sorted(identities[name], key=lambda i: i.key)
        first = next((img for img in ordered if results[(img.path, ENROL)].vector is not None), None)
        if first is not None:
            vectors.append(results[(first.path, ENROL)].vector)
            subjects.append(name)
            source.append("dataset")
    analysis._init_worker(models)  # the live Enroller, in this process, for the few images below
    for person, (_, photos) in people.items():
        for photo in photos:
            result = analysis.analyse_enrol(photo.read_bytes())
            if result.vector is None:
                refused[str(photo)] = result.status
                continue
            vectors.append(result.vector)
            subjects.append(f"x:{person}")
            source.append("cross-occasion")
    for video in same_clip:
        result = analysis.analyse_enrol(_last_second(video))
        if result.vector is None:
            refused[str(video)] = result.status
            continue
        vectors.append(result.vector)
        subjects.append(f"s:{video.name}")
        source.append("same-clip")
    return np.stack(vectors).astype(np.float32), np.array(subjects), np.array(source), refused


def _last_second(video: Path) -> bytes:
    """A frame one second before the clip's end, as the demo enrols its people (a JPEG)."""
    import cv2

    from lfr_faces import images

    capture = cv2.VideoCapture(str(video))
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, frames - int(capture.get(cv2.CAP_PROP_FPS) or 25)))
        ok, frame = capture.read()
        if not ok:
            raise ValueError(f"cannot read a frame of {video}")
        return images.encode_jpeg(frame, 95)
    finally:
        capture.release()


def _run(strategy, faces, gallery, subjects, not_same_clip, mated, strangers, thresholds) -> dict:
    """Every pass under one strategy; rates per threshold."""
    thresholds = list(thresholds)
    spent = total = 0
    decided: dict[Path, list[passes.PassScores]] = {}
    for path, clip in faces.items():
        decided[path] = []
        for idx in clip.tracks().values():
            chosen = strategy.choose(clip.t[idx], clip.quality[idx], clip.yaw[idx])
            scores = passes.decide_pass(clip.vectors[idx], clip.quality[idx], chosen, gallery, strategy.fusion)
            decided[path].append(scores)
            spent += scores.shots
            total += len(idx)
    mated_rows = []
    for subject, video, kind in mated:
        tracks = decided[video]
        hit = max((_identified(p, subjects, subject) for p in tracks), default=float("-inf"))
        wrong = max((_wrong(p, subjects, subject) for p in tracks), default=float("-inf"))
        mated_rows.append({"subject": subject, "clip": video.name, "kind": kind, "score": hit, "wrong": wrong})
    stranger_scores = np.array([p.alert(not_same_clip) for v in strangers for p in decided[v]])
    pass_pairs = np.concatenate([p.pairs[not_same_clip] for v in strangers for p in decided[v]])
    hits = np.array([r["score"] for r in mated_rows])
    wrongs = np.array([r["wrong"] for r in mated_rows])
    return {
        "name": strategy.name,
        "fusion": strategy.fusion,
        "live": strategy.live,
        "embeddings": spent,
        "faces": total,
        "passes": sum(len(v) for v in decided.values()),
        "embeddings_per_pass": spent / max(1, sum(len(v) for v in decided.values())),
        "share_of_every_face": spent / max(1, total),
        "non_mated_passes": len(stranger_scores),
        "highest_stranger_score": float(stranger_scores.max()) if len(stranger_scores) else None,
        "mean_mated_score": float(np.mean(np.maximum(hits, 0))),
        "mated": mated_rows,
        "pass_pairs": rates_over_thresholds(pass_pairs, thresholds),
        "thresholds": [
            {
                "threshold": t,
                "tpir": wilson(int((hits >= t).sum()), len(hits)).as_dict(),
                "wrong_subject": int((wrongs >= t).sum()),
                "fpir": wilson(int((stranger_scores >= t).sum()), len(stranger_scores)).as_dict(),
            }
            for t in thresholds
        ],
    }


def _identified(p: passes.PassScores, subjects: np.ndarray, subject: str) -> float:
    hits = p.best_score[subjects[p.best] == subject]
    return float(hits.max()) if len(hits) else float("-inf")


def _wrong(p: passes.PassScores, subjects: np.ndarray, subject: str) -> float:
    miss = p.best_score[subjects[p.best] != subject]
    return float(miss.max()) if len(miss) else float("-inf")


def _what_predicts(faces, mated, gallery: np.ndarray, subjects: np.ndarray) -> dict:
    """How well each measure of a face predicts its score against the right person, within a pass:
    Spearman's rho per mated pass (of 5 faces or more), its median and range over passes."""
    from scipy.stats import spearmanr

    measures = {
        "size": lambda c: c.size,
        "sharpness": lambda c: c.sharpness,
        "frontality (1 - yaw)": lambda c: -c.yaw,
        "detector score": lambda c: c.score,
        "shot quality": lambda c: c.quality,
    }
    rhos: dict[str, list[float]] = {name: [] for name in measures}
    for subject, video, _ in mated:
        clip = faces[video]
        mate = gallery[subjects == subject]
        genuine = (clip.vectors @ mate.T).max(axis=1)
        for idx in clip.tracks().values():
            if len(idx) < 5:
                continue
            for name, measure in measures.items():
                rho = spearmanr(measure(clip)[idx], genuine[idx]).statistic
                if np.isfinite(rho):
                    rhos[name].append(float(rho))
    return {
        name: {"median_rho": float(np.median(v)), "min": float(min(v)), "max": float(max(v)), "passes": len(v)}
        for name, v in rhos.items()
        if v
    }


def _per_pass_floor(live: dict, faces, strangers, gallery_nm: np.ndarray, args) -> dict:
    """The lowest threshold at which per-pass FPIR meets the target at the target size: the model's
    single-shot FMR (its calibration) times the per-pass / single-shot ratio measured here."""
    thresholds = list(args.thresholds)
    single = np.concatenate([(faces[v].vectors @ gallery_nm.T).ravel() for v in strangers])
    shot_pairs = rates_over_thresholds(single, thresholds)
    ratios = []
    for t, (pk, pn), (sk, sn) in zip(thresholds, live["pass_pairs"], shot_pairs, strict=True):
        if sk >= MIN_PAIRS:
            ratios.append((t, (pk / pn) / (sk / sn)))
    ratio = max([1.0] + [r for _, r in ratios])  # never assume a pass is safer than one shot
    calib = calibration.load(SFACE.model_id)
    curve = calib.basis.get("fmr")
    out = {
        "calibrated_threshold": calib.default_threshold,
        "calibrated_floor": calib.threshold_floor,
        "pass_to_shot_fmr_ratio": ratio,
        "ratios_measured": ratios,
        "shot_pairs": shot_pairs,
        "per_pass_threshold": None,
        "floor": calib.threshold_floor,
    }
    if not curve:
        out["note"] = "the calibration holds no FMR curve: run `make eval EVAL_ARGS=--write-calibration`"
        return out
    rows = []
    for t, k, n in curve:
        rows.append({"threshold": t, "fmr": k / n, "fpir_at_target": fpir_at_size(ratio * k / n, args.target_size)})
    meeting = [r["threshold"] for r in rows if r["fpir_at_target"] <= args.target_fpir]
    out["curve"] = rows
    if meeting:
        out["per_pass_threshold"] = min(meeting)
        # Equitability across groups is the single-shot calibration's; a pass is never decided below it.
        out["floor"] = max(min(meeting), calib.threshold_floor)
    return out


def _plain(value):
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
    floor = out["floor"]["floor"]
    every = next(s for s in out["strategies"] if s["name"] == "every face")
    lines = [
        "# Per-pass evaluation on video",
        "",
        f"{out['passes']['mated']} mated passes (people whose watchlist photo is of another occasion, and "
        f"single-person clips enrolled from their own last second); {out['passes']['non_mated']} non-mated passes "
        f"(every track of every clip) against {out['watchlist']['from_dataset']:,} dataset identities plus the "
        f"cross-occasion photos ({out['watchlist']['entries']:,} entries).",
        "",
        f"Per-pass floor: {floor:.2f} (calibrated single-shot floor {out['floor']['calibrated_floor']:.2f}; "
        f"per-pass / single-shot false match ratio {out['floor']['pass_to_shot_fmr_ratio']:.2f}; lowest threshold "
        f"meeting FPIR 1 in {1 / out['target']['fpir']:,.0f} at {out['target']['watchlist_size']:,} entries per "
        f"pass: {out['floor']['per_pass_threshold']}).",
        "",
        f"At the per-pass floor {floor:.2f}:",
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
        "| person | kind | every face | live | alerts at the floor |",
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

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
candidate at or above it. The per-pass ratio: per-pass false matches of stranger tracks against
watchlist entries, over single-shot false matches of the same faces (where shots match falsely at least
MIN_PAIRS times), with a 95% upper bound: with --write-calibration it goes into the model's calibration
file (per_pass), where the deployments service multiplies the single-shot false match curve of
`lfr eval --all-pairs` by it to predict false alerts per pass; the recall per pass goes beside it.
"""

from __future__ import annotations

import json
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from rich.console import Console

from lfr_eval import analysis, calibration_file, clips, passes, video_report
from lfr_eval.analysis import ENROL, Cache, Models, analyse_all
from lfr_eval.dataset import IMAGE_SUFFIXES, load_mated
from lfr_eval.rates import Z95, rates_over_thresholds, wilson
from lfr_faces import calibration
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path
from lfr_platform.settings import PlatformSettings

err = Console(stderr=True, soft_wrap=True)
# Below this many single-shot false matches at a threshold, the per-pass ratio there is noise.
MIN_PAIRS = 10


def main(args) -> int:
    started = time.time()
    models_dir = args.models_dir or Path(PlatformSettings().models_dir)
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
    if args.sizes:
        from lfr_eval import sizes

        args.out.mkdir(parents=True, exist_ok=True)
        live_strategy = next(s for s in passes.strategies(detect.shot_interval_s, detect.shot_budget) if s.live)
        crossing = [(f"x:{name}", video) for name, (video, _) in people.items()]
        by_size = sizes.measure(
            args.sizes, args.budget, faces, gallery, subjects, source, crossing, strangers, live_strategy, args.seed
        )
        err.print(sizes.write(by_size, args.out))
    live = next(r for r in results if r["live"])
    ratio = per_pass_ratio(live, faces, strangers, gallery[not_same_clip], list(args.thresholds))
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
        "per_pass": ratio,
        "reference_threshold": video_report.reference_threshold(),
        "predictors": predictors,
        "strategies": results,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video.json").write_text(json.dumps(out, indent=1, default=video_report.plain) + "\n")
    text = video_report.markdown(out)
    (args.out / "video.md").write_text(text)
    if args.write_calibration:
        write_calibration(out, live, list(args.thresholds))
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
        # Decisions (one per embedded shot) of each stranger pass: the union bound of the per-pass ratio.
        "stranger_decisions": [len(p.best_score) for v in strangers for p in decided[v]],
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


def per_pass_ratio(live: dict, faces, strangers, gallery_nm: np.ndarray, thresholds: list[float]) -> dict:
    """How many times more often a pass falsely matches a watchlist entry than one shot does.

    Per threshold: pass pairs (stranger track x entry: the entry's best score over the pass's
    decisions, under the live policy) at or above it, k of n, against shot pairs (stranger face x
    entry) at or above it. ratio: the largest (k/n per pass) / (k/n per shot) over thresholds where
    shots match falsely at least MIN_PAIRS times, never below 1 (a pass is never assumed safer than a
    shot). It grows with the threshold, as the best of several draws does in a tail, so the largest
    rests on the fewest events. Its upper bound is the smaller of two:
    - counted: at the threshold giving that largest ratio, the Wilson 95% upper bound of the pass
      rate over the Wilson 95% lower bound of the shot rate;
    - the union bound: a pass alerts if any of its decisions does, so it falsely matches an entry at
      most (decisions per pass) times as often as one decision does; with a fused decision matching
      a stranger no more often than one shot (a mean of shots has less shot noise, the spread that
      makes impostor scores high), the mean decisions per stranger pass (its 95% upper bound) bound
      the ratio at every threshold, however few the events.
    Never below ratio."""
    single = np.concatenate([(faces[v].vectors @ gallery_nm.T).ravel() for v in strangers])
    shot_pairs = rates_over_thresholds(single, thresholds)
    measured = [
        [t, pk, pn, sk, sn] for t, (pk, pn), (sk, sn) in zip(thresholds, live["pass_pairs"], shot_pairs, strict=True)
    ]
    usable = [(t, pk, pn, sk, sn) for t, pk, pn, sk, sn in measured if sk >= MIN_PAIRS]
    ratios = [(t, (pk / pn) / (sk / sn)) for t, pk, pn, sk, sn in usable]
    uppers = [(t, wilson(pk, pn).high / wilson(sk, sn).low) for t, pk, pn, sk, sn in usable]
    decisions = np.asarray(live.get("stranger_decisions") or [], dtype=np.float64)
    union = None
    if len(decisions) > 1:
        union = float(decisions.mean() + Z95 * decisions.std(ddof=1) / np.sqrt(len(decisions)))
    out = {
        "ratio": 1.0,
        "ratio_upper": 1.0,
        "at": None,
        "measured": measured,
        "ratios": ratios,
        "uppers": uppers,
        "decisions_per_stranger_pass": {
            "mean": float(decisions.mean()) if len(decisions) else None,
            "upper_95": union,
            "passes": len(decisions),
        },
    }
    if ratios:
        i = max(range(len(ratios)), key=lambda j: ratios[j][1])
        out["ratio"] = max(1.0, ratios[i][1])
        out["counted_upper"] = uppers[i][1]
        out["ratio_upper"] = max(out["ratio"], min(uppers[i][1], union) if union is not None else uppers[i][1])
        out["at"] = ratios[i][0]
        out["largest_upper_anywhere"] = max(u for _, u in uppers)
    return out


RATIO_RULE = (
    f"ratio: max over thresholds where single-shot false matches >= {MIN_PAIRS} of (pass pairs k/n) / (shot "
    "pairs k/n), never below 1; ratio_upper: the smaller of (at the threshold of that max, Wilson 95% high of the "
    "pass rate / Wilson 95% low of the shot rate) and the union bound (the 95% upper bound of the mean decisions "
    "per stranger pass: a pass alerts if any of its decisions does, a fused decision taken to match a stranger no "
    "more often than one shot), never below ratio. Pass pairs: stranger track x entry under the live shot "
    "policy and fusion; shot pairs: stranger face x entry; entries: the watchlist less the same-clip enrolments."
)


def _recall(rows: list[dict], thresholds: list[float]) -> list[list]:
    """[t, k, n] of mated passes whose right person is found at or above t."""
    scores = np.array([r["score"] for r in rows], dtype=np.float64)
    return [[t, int((scores >= t).sum()), len(scores)] for t in thresholds]


def write_calibration(out: dict, live: dict, thresholds: list[float]) -> None:
    ratio = out["per_pass"]
    path = calibration.calibration_path(SFACE.model_id)
    calibration_file.update(
        path,
        SFACE.model_id,
        {
            "per_pass": {
                "ratio": ratio["ratio"],
                "ratio_upper": ratio["ratio_upper"],
                "counted_upper": ratio.get("counted_upper"),
                "decisions_per_stranger_pass": ratio["decisions_per_stranger_pass"],
                "rule": RATIO_RULE,
                "measured": ratio["measured"],
            },
            "recall": {
                "per_pass": _recall(live["mated"], thresholds),
                "per_pass_cross_occasion": _recall(
                    [r for r in live["mated"] if r["kind"] == "cross-occasion"], thresholds
                ),
            },
        },
        "video",
        {
            "rule": "recall.per_pass: mated passes (cross-occasion and same clip) whose right person is found at or "
            "above t under the live shot policy; per_pass_cross_occasion: the cross-occasion ones alone",
            "policy": live["name"],
            "inputs": out["inputs"],
            "watchlist": {k: v for k, v in out["watchlist"].items() if k != "refused"},
            "passes": out["passes"],
            "ratio_at": ratio["at"],
            "generated_at": out["generated_at"],
            "command": "make eval-video EVAL_ARGS=--write-calibration; see docs/evaluation.md",
        },
    )
    err.print(f"calibration's per_pass and recall.per_pass written to {path}")

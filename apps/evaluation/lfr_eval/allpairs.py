"""`lfr eval --all-pairs`: the model's false match rate from every face of the shared data against
every other, and its tail beyond what they show.

Faces: every image of `--dataset` (LFW, its identities); of each `--nonmated` set (UTKFace: each file
its own identity, but never paired with another photo of its set, which repeats people and holds
pixel-identical photos under two names: --pair-within-nonmated pairs them anyway); of `--orl` (s1..s40:
forty people, ten grey photos each); and every face of every stranger's track in the `--videos` clips
(a track is one person; two faces of one clip are never paired, they may be one person under two track
ids). Each image goes through the live code as a probe (detect's gate and crop, embed's alignment and
model: lfr_eval.analysis, cached with `lfr eval`'s vectors); video faces through ingest, detect's
tracker and embed (lfr_eval.clips, cached likewise).

Every ordered pair (a, b) of faces of different identities counts: a a passer-by, b a watchlist
entry. Pairs reviewed as the same person (--exclusions) are skipped in both orders. Counts per grid
threshold overall and per labelled group of the probe (lfr_eval.pairs); the tail beyond u is a
generalised Pareto fit with a profile likelihood band (lfr_eval.tail). Writes all-pairs.json/.md, fmr-tail.png,
the review sheet of the top impostor pairs (review-all-pairs.png/.csv), and with --write-calibration
the calibration's "fmr" section.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from lfr_eval import allpairs_report, calibration_file, clips, pairs, review, tail
from lfr_eval.analysis import PROBE, Cache, Models, analyse_all
from lfr_eval.dataset import IMAGE_SUFFIXES, load_mated, load_nonmated
from lfr_faces.calibration import calibration_path
from lfr_faces.models import SFACE, YUNET, ModelMissing, model_path
from lfr_platform.settings import PlatformSettings

err = Console(stderr=True, soft_wrap=True)
VIDEO_SOURCE = "video strangers"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov"}
# Scores kept for the tail fit and the review: far below any u the fraction chooses on these data
# (1e-5 of 150 million pairs is near 0.56).
KEEP_FROM = 0.40


@dataclass(frozen=True)
class Face:
    key: str  # "<source>:<relative path>" (as `lfr eval` names images), "video:<clip>#<track>/<face>"
    source: str
    identity: str  # what an exclusion's subject_id names: LFW's name, else the key (ORL: orl:sN)
    apart: str  # faces with the same value are never paired: the identity, or a video's clip
    labels: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the image file, or the clip
    t: float | None = None  # a video face's capture time in its clip

    @property
    def ruling_probe(self) -> str:
        """What a review ruling names as the probe: the photo, or a video face's whole track."""
        return self.identity if self.t is not None else self.key


def main(args) -> int:
    started = time.time()
    models_dir = args.models_dir or Path(PlatformSettings().models_dir)
    try:
        models = Models(model_path(models_dir, YUNET), model_path(models_dir, SFACE), args.mirrored_enrolment)
        datasets = [load_mated(args.dataset), *[load_nonmated(p) for p in args.nonmated]]
        orl = _orl(args.orl) if args.orl else []
        videos = sorted(args.videos.glob("*")) if args.videos else []
        clips_paths = [p for p in videos if p.suffix.lower() in VIDEO_SUFFIXES]
        exclusions = review.load_exclusions(args.exclusions)
    except (FileNotFoundError, ModelMissing, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return 2
    images = [
        Face(img.key, ds.name, img.identity or img.key, _apart(img, ds.name, args), _labels(img.labels), img.path)
        for ds in datasets
        for img in ds.images
    ] + orl
    err.print(f"{len(images)} images, {len(clips_paths)} clips")
    results = analyse_all([(f.path, PROBE) for f in images], models, Cache(args.cache, models.fingerprint()))
    faces, vectors, failures = [], [], Counter()
    for face in images:
        analysed = results[(face.path, PROBE)]
        if analysed.vector is None:
            failures[f"{face.source}: {analysed.status}"] += 1
            continue
        faces.append(face)
        vectors.append(analysed.vector)
    for path, clip in clips.extract_all(clips_paths, models, args.cache / "video").items():
        for i, (track, t) in enumerate(zip(clip.track, clip.t, strict=True)):
            person = f"video:{clip.clip}#{track}"
            faces.append(Face(f"{person}/{i}", VIDEO_SOURCE, person, f"video:{clip.clip}", {}, path, float(t)))
            vectors.append(clip.vectors[i])
    matrix = np.stack(vectors).astype(np.float32)
    out = measure(faces, matrix, exclusions, args.tail_fraction)
    top = out.pop("_top")
    out["failures_to_acquire"] = dict(sorted(failures.items()))
    out["inputs"] = {
        "dataset": str(args.dataset),
        "nonmated": [str(p) for p in args.nonmated],
        "orl": str(args.orl) if args.orl else None,
        "videos": str(args.videos) if args.videos else None,
        "exclusions": [str(p) for p in args.exclusions],
        "tail_fraction": args.tail_fraction,
        "pair_within_nonmated": args.pair_within_nonmated,
        "fingerprint": models.fingerprint(),
    }
    out["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out["wall_seconds"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    allpairs_report.write(out, args.out)
    allpairs_report.write_review(args.out, top[: args.review_top], models)
    if args.write_calibration:
        path = calibration_path(SFACE.model_id)
        calibration_file.update(path, SFACE.model_id, {"fmr": calibration_section(out)}, "all_pairs", _basis(out))
        err.print(f"calibration's fmr section written to {path}")
    err.print(allpairs_report.summary(out))
    return 0


def _orl(folder: Path) -> list[Face]:
    """AT&T (ORL): s1..s40 folders of one person each, .pgm photos; no labels."""
    people = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if not people:
        raise FileNotFoundError(f"no s1..s40 folders in {folder}")
    return [
        Face(f"orl:{person.name}/{photo.name}", folder.name, f"orl:{person.name}", f"orl:{person.name}", {}, photo)
        for person in people
        for photo in sorted(person.iterdir())
        if photo.suffix.lower() in IMAGE_SUFFIXES
    ]


def _apart(img, source: str, args) -> str:
    """Photos of a set without identities are never paired with one another (unless asked): UTKFace
    repeats people, and holds pixel-identical photos under two names, which would count as impostors."""
    if img.identity is not None:
        return img.identity
    return img.key if args.pair_within_nonmated else f"set:{source}"


def _labels(labels: dict[str, str]) -> dict[str, str]:
    return {column: value for column, value in labels.items() if value}


def groups_of(faces: list[Face]) -> dict[str, np.ndarray]:
    """Each labelled group ("<source> <column>=<value>") and its faces, in name order."""
    out: dict[str, np.ndarray] = {}
    for i, face in enumerate(faces):
        for column, value in face.labels.items():
            out.setdefault(f"{face.source} {column}={value}", np.zeros(len(faces), bool))[i] = True
    return dict(sorted(out.items()))


def excluded_pairs(faces: list[Face], exclusions: set[tuple[str, str]]) -> tuple[list[tuple[int, int]], int]:
    """Index pairs of reviewed same-person pairs (a probe's face against every face of the subject),
    and how many rulings named faces of these data."""
    by_key = {f.key: i for i, f in enumerate(faces)}
    by_identity: dict[str, list[int]] = {}
    for i, f in enumerate(faces):
        by_identity.setdefault(f.identity, []).append(i)
    out, applied = [], 0
    for probe, subject in sorted(exclusions):
        # A probe names one photo, or a whole identity (a video track: all its faces are one person).
        probes = [by_key[probe]] if probe in by_key else by_identity.get(probe, [])
        if probes and subject in by_identity:
            applied += 1
            out += [(i, j) for i in probes for j in by_identity[subject]]
    return out, applied


def measure(
    faces: list[Face],
    vectors: np.ndarray,
    exclusions: set[tuple[str, str]],
    tail_fraction: float,
) -> dict:
    """Counts, tails and conservative curves of every group; the top impostor pairs (under "_top").

    The calibration's curves are "all" and the labelled groups; each source's counts are reported
    beside them ("sources"), not fitted.
    """
    groups = groups_of(faces)
    sources = list(dict.fromkeys(f.source for f in faces))
    by_source = {f"source {s}": np.array([f.source == s for f in faces]) for s in sources}
    apart = np.unique([f.apart for f in faces], return_inverse=True)[1]
    excluded, applied = excluded_pairs(faces, exclusions)
    grid = pairs.grid()
    counts = pairs.count(vectors, apart, {**groups, **by_source}, grid, excluded, keep_from=KEEP_FROM)
    overall = counts.curves["all"]
    u = tail.choose_u(counts.high_score, overall.n, tail_fraction)
    units = np.minimum(counts.high_a, counts.high_b) * len(faces) + np.maximum(counts.high_a, counts.high_b)
    members = {"all": np.ones(len(faces), bool), **groups}
    curves, tails = {}, {}
    for name in members:
        curve = counts.curves.get(name)
        if curve is None:
            continue
        mine = counts.in_curve(members[name])
        over = mine & (counts.high_score > u)
        exceed = int(over.sum())
        if name == "all" or exceed >= tail.MIN_EXCEEDANCES:
            fitted = tail.fit_tail(counts.high_score[mine], units[mine], curve.n, u, grid)
        else:
            fitted = tail.proportional(exceed, len(np.unique(units[over])), curve.n, tails["all"])
        tails[name] = fitted
        bound, speaks = tail.conservative(curve.k, curve.n, grid, fitted)
        curves[name] = {
            "faces": curve.faces,
            "points": [[float(t), int(k), curve.n] for t, k in zip(grid, curve.k, strict=True)],
            "tail": fitted.as_dict(),
            "conservative": [float(f"{v:.6g}") for v in bound],
            "speaks": speaks,
        }
    skipped = {(a, b) for a, b in excluded if apart[a] != apart[b]}
    skipped |= {(b, a) for a, b in skipped}
    return {
        "faces": len(faces),
        "pairs": overall.n,
        "sources": {
            s: {
                "faces": counts.curves[f"source {s}"].faces,
                "pairs": counts.curves[f"source {s}"].n,
                "points": [[float(t), int(k)] for t, k in zip(grid, counts.curves[f"source {s}"].k, strict=True)],
            }
            for s in sources
            if f"source {s}" in counts.curves
        },
        "exclusions": {"rulings_applied": applied, "ordered_pairs_skipped": len(skipped)},
        "u": u,
        "xi_sensitivity": _sensitivity(counts, overall.n, tail_fraction),
        "curves": curves,
        "_top": _top(counts, faces, vectors),
    }


def _sensitivity(counts: pairs.Counts, n: int, fraction: float) -> list[dict]:
    """The overall fit's xi and sigma with u placed at a third and three times the fraction: a shape
    that moves much with u says the excesses are not yet in the GPD's domain."""
    out = []
    for f in (fraction / 3, fraction, fraction * 3):
        u = tail.choose_u(counts.high_score, n, f)
        excess = counts.high_score[counts.high_score > u].astype(np.float64) - u
        xi, sigma = tail.fit_gpd(excess)
        out.append({"fraction": f, "u": u, "exceedances": len(excess), "xi": round(xi, 4), "sigma": round(sigma, 5)})
    return out


def _top(counts: pairs.Counts, faces: list[Face], vectors: np.ndarray, n: int = 200) -> list[tuple]:
    """The highest-scoring impostor pairs, one per ruling a reviewer makes: (score, probe face, entry
    face, their vectors). The entry is the face of a named identity where one of the two has one (a
    ruling then names that identity, so that the probe is kept off all of its photos); a video face
    stands for its track. Each pair of identities appears once, with its highest-scoring faces."""
    order = np.argsort(-counts.high_score, kind="stable")
    out, seen = [], set()
    for i in order:
        a, b = int(counts.high_a[i]), int(counts.high_b[i])
        if faces[b].identity == faces[b].key and faces[a].identity != faces[a].key:
            a, b = b, a
        identities = frozenset((faces[a].identity, faces[b].identity))
        if identities in seen:
            continue
        seen.add(identities)
        out.append((float(counts.high_score[i]), faces[a], faces[b], vectors[a], vectors[b]))
        if len(out) == n:
            break
    return out


def calibration_section(out: dict) -> dict:
    """The calibration's "fmr" section (format 2): counts and tail of "all" and every labelled group."""
    return {
        "pairs": out["pairs"],
        "faces": out["faces"],
        "sources": list(out["sources"]),
        "exclusions": out["exclusions"]["rulings_applied"],
        "curves": {
            name: {"faces": c["faces"], "points": c["points"], "tail": c["tail"]} for name, c in out["curves"].items()
        },
    }


def _basis(out: dict) -> dict:
    return {
        "rule": "every ordered pair of faces of different identities (a: probe, b: entry), counted per "
        "threshold overall and per labelled group of the probe; tail: GPD over u (the score with tail_fraction "
        "of pairs above); band: Wilson interval of the rate over u x profile likelihood interval of the GPD "
        f"survival, on unordered pairs; groups with fewer than {tail.MIN_EXCEEDANCES} exceedances: proportional "
        "(their rate over u x the overall conditional tail, bound by bound)",
        "inputs": out["inputs"],
        "faces_by_source": {s: v["faces"] for s, v in out["sources"].items()},
        "pairs_by_source": {s: v["pairs"] for s, v in out["sources"].items()},
        "exclusions": out["exclusions"],
        "failures_to_acquire": out["failures_to_acquire"],
        "generated_at": out["generated_at"],
        "command": "make eval-all-pairs EVAL_ARGS=--write-calibration; see docs/evaluation/all-pairs.md",
    }

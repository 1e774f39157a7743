"""`lfr eval`: run an identification experiment through the live pipeline's own code."""

from __future__ import annotations

import argparse
from pathlib import Path

from lfr_faces.enrolment import MIRRORED


def _fraction(text: str) -> float:
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _grid(text: str) -> list[float]:
    start, stop, step = (float(x) for x in text.split(":"))
    n = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 6) for i in range(n)]


def add_parser(commands) -> None:
    p = commands.add_parser("eval", help="calibrate thresholds and measure equitability on a labelled dataset")
    p.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="folder with images/<identity>/<files> and an optional labels.csv",
    )
    p.add_argument(
        "--nonmated",
        type=Path,
        action="append",
        default=[],
        help="folder with images/<files> of people not enrolled, optional labels.csv (repeatable)",
    )
    p.add_argument("--out", type=Path, required=True, help="where report.json, report.md and plots go")
    p.add_argument(
        "--enrol",
        default="first",
        choices=("first", "random"),
        help="which image of a subject is enrolled; the others are its mated probes",
    )
    p.add_argument(
        "--filler",
        type=int,
        default=-1,
        help="identities with one image enrolled as filler (-1: all of them)",
    )
    p.add_argument("--max-subjects", type=int, default=0, help="use at most this many mated subjects (0: all)")
    p.add_argument("--max-nonmated", type=int, default=0, help="use at most this many images per non-mated set")
    p.add_argument("--thresholds", type=_grid, default=_grid("0.30:0.80:0.01"), help="grid START:STOP:STEP")
    p.add_argument("--target-fpir", type=_fraction, default=1 / 6000, help="e.g. 1/6000")
    p.add_argument("--target-size", type=int, default=10_000, help="watchlist size the target refers to")
    p.add_argument("--min-group-n", type=int, default=100, help="groups smaller than this are flagged")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the group tests")
    p.add_argument("--review-top", type=int, default=60, help="impostor pairs in the review sheet")
    p.add_argument(
        "--exclusions",
        type=Path,
        action="append",
        default=[],
        help="CSV of reviewed same-person pairs to exclude (probe,subject_id[,same_person]); repeatable",
    )
    p.add_argument("--cache", type=Path, default=Path(".cache/embeddings"), help="embedding cache folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--write-calibration",
        action="store_true",
        help="write the measured curves into the model's calibration file (format 2: each command its own "
        "sections; see docs/evaluation.md)",
    )
    p.add_argument("--models-dir", type=Path, default=None, help="default: LFR_MODELS_DIR or models/")
    p.add_argument(
        "--mirrored-enrolment",
        action="store_true",
        default=MIRRORED,
        help="enrol the mean of each face and its mirror image (measured for SFace: it does not pay; decision 0012)",
    )
    p.add_argument(
        "--multi-shot",
        type=int,
        default=0,
        metavar="K",
        help="compare single shots with templates fused from K shots of a person (what match decides a "
        "track on), each with its own recommended threshold; writes multishot-K.json/.md",
    )
    p.add_argument(
        "--gallery",
        type=int,
        default=0,
        metavar="G",
        help="compare subjects enrolled from G photos kept as G entries with one template fused from them; "
        "writes gallery-G.json/.md",
    )
    every = p.add_argument_group("false match curves from every pair of faces (--all-pairs; writes all-pairs.*)")
    every.add_argument(
        "--all-pairs",
        action="store_true",
        help="score every face of --dataset, --nonmated, --orl and the --videos strangers against every other "
        "face of another identity; counts per threshold and group, a GPD tail beyond them, a review sheet",
    )
    every.add_argument("--orl", type=Path, help="AT&T (ORL) faces: s1..s40/<photos>.pgm, one person per folder")
    every.add_argument(
        "--pair-within-nonmated",
        action="store_true",
        help="also pair two photos of one --nonmated set (off: such a set has no identities, and UTKFace repeats "
        "people and photos)",
    )
    every.add_argument(
        "--tail-fraction",
        type=float,
        default=1e-5,
        help="u, where the tail fit starts: the score with this fraction of the pairs above it",
    )
    video = p.add_argument_group("per-pass evaluation on video (--video; writes video.json/.md)")
    video.add_argument(
        "--video",
        action="store_true",
        help="decide people's passes in real clips as the live pipeline does, per shot policy and fusion, against "
        "a watchlist of --dataset identities; reports per-pass TPIR, FPIR, embeddings and the per-pass floor",
    )
    video.add_argument(
        "--xdomain",
        type=Path,
        help="mated passes of another occasion: video/<person>.mp4 and watchlist/<person>/<photos>",
    )
    video.add_argument("--videos", type=Path, help="clips whose every track is a non-mated pass")
    video.add_argument(
        "--same-clip",
        default="talking_*",
        help="clips of --videos with one person, also mated when enrolled from their own last second (a glob)",
    )
    video.add_argument(
        "--watchlist-size", type=int, default=0, help="dataset identities enrolled (0: all; at least 1000 advised)"
    )
    video.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[],
        help="list sizes, e.g. 100,300,1000,2500: each one's threshold derived by the calibration library, and "
        "single-shot FPIR, per-pass FPIR and cross-occasion per-pass TPIR measured there (sizes.json/.md)",
    )
    video.add_argument("--budget", type=_fraction, default=1 / 1000, help="false alerts per pass, e.g. 1/1000")


def run(args: argparse.Namespace) -> int:
    if args.all_pairs:
        from lfr_eval.allpairs import main as all_pairs

        return all_pairs(args)
    if args.video:
        if args.xdomain is None or args.videos is None:
            raise SystemExit("lfr eval --video needs --xdomain and --videos (see docs/evaluation.md)")
        from lfr_eval.video import main as video

        return video(args)
    if args.gallery:
        from lfr_eval.gallery import main as gallery

        return gallery(args)
    if args.multi_shot:
        from lfr_eval.multishot import main as multishot

        return multishot(args)
    from lfr_eval.harness import main

    return main(args)

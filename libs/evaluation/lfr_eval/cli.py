"""`lfr eval`: run an identification experiment through the live pipeline's own code."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--exclusions", type=Path, help="CSV of reviewed same-person pairs to exclude (probe,subject_id)")
    p.add_argument("--cache", type=Path, default=Path(".cache/embeddings"), help="embedding cache folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--write-calibration",
        action="store_true",
        help="write the recommendation as the model's calibration (default threshold and floor)",
    )
    p.add_argument("--models-dir", type=Path, default=None, help="default: LFR_MODELS_DIR or models/")
    p.add_argument(
        "--multi-shot",
        type=int,
        default=0,
        metavar="K",
        help="compare single shots with templates fused from K shots of a person (what match decides a "
        "track on), each with its own recommended threshold; writes multishot-K.json/.md",
    )


def run(args: argparse.Namespace) -> int:
    if args.multi_shot:
        from lfr_eval.multishot import main as multishot

        return multishot(args)
    from lfr_eval.harness import main

    return main(args)

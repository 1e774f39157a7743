"""`make bench` sections video and fusion: figures of `lfr eval`, beside the bench's own.

They are the evaluation's figures (per-pass recall on real video, `make eval-video`; single shot
against fused templates, `make eval-multishot`), so the bench reads them from eval-out/ and never
computes them a second way: the Makefile holds the evaluation's arguments, and `make bench` runs
those targets first where their output is missing. `python -m lfr_bench` alone says what to run.

The quick run cannot read eval-out/ (a fresh checkout has none, and minutes of evaluation are not a
quick run): it runs the same `lfr eval` commands on a handful of clips and identities into its own
folder and reads their output back through the same code, so that a change of the evaluation's
output that the bench does not follow fails `make test`, not the next `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lfr_bench.plan import DATA, Plan

EVAL_OUT = Path("eval-out")
VIDEO = "video.json"
FUSION = "multishot-3.json"
MAKE_TARGET = {VIDEO: "make eval-video", FUSION: "make eval-multishot"}


class Unreadable(ValueError):
    """An evaluation output without a field the bench reads (written by another version of lfr eval)."""


def bench_video(plan: Plan) -> dict:
    """Embeddings per pass and per-pass recall of each shot policy, from `lfr eval --video`."""
    report = _report(plan, VIDEO)
    if "missing" in report:
        return report
    try:
        at = report["reference_threshold"]
        if at is None:
            raise Unreadable("its reference_threshold is null (the calibration had no model_min when it was written)")
        out: dict[str, object] = {"threshold": at}
        for s in report["strategies"]:
            row = min(s["thresholds"], key=lambda r: abs(r["threshold"] - at))
            out[s["name"]] = {
                "embeddings_per_pass": round(s["embeddings_per_pass"], 2),
                "share_of_every_face": round(s["share_of_every_face"], 3),
                "tpir": row["tpir"]["rate"],
                "fpir": row["fpir"]["rate"],
            }
            print(
                f"{s['name']:36s} {s['embeddings_per_pass']:5.1f} embeddings per pass "
                f"({s['share_of_every_face']:4.0%} of every face); per-pass recall at {at:.2f}: "
                f"{row['tpir']['k']}/{row['tpir']['n']}, strangers alerting {row['fpir']['k']}/{row['fpir']['n']}"
            )
    except (KeyError, TypeError, ValueError) as exc:
        return _unreadable(plan, VIDEO, exc)
    return out


def bench_fusion(plan: Plan) -> dict:
    """Single shot against fused templates, as `lfr eval --multi-shot 3` measured them."""
    report = _report(plan, FUSION)
    if "missing" in report:
        return report
    try:
        out = {"calibrated_threshold": report["calibrated_threshold"], "k": report["k"]}
        for mode, row in report["at_calibrated_threshold"].items():
            rec = report["recommendations"][mode]
            out[mode] = {
                "tpir_at_calibrated": row["tpir"]["rate"],
                "fpir_at_calibrated": row["fpir"]["rate"],
                "recommended_threshold": rec.get("threshold"),
                "tpir_at_recommended": rec["tpir"]["rate"] if rec.get("threshold") is not None else None,
            }
            print(
                f"{mode:6s} at {report['calibrated_threshold']}: TPIR {row['tpir']['rate']:.3f}, FPIR "
                f"{row['fpir']['rate']:.4f}; recommended threshold {rec.get('threshold')}"
            )
    except (KeyError, TypeError, ValueError) as exc:
        return _unreadable(plan, FUSION, exc)
    return out


def _report(plan: Plan, name: str) -> dict:
    """The evaluation's output: eval-out/'s in the full run; in the quick run, a small one made now."""
    if plan.quick:
        return json.loads(_quick_eval(plan, name).read_text())
    path = EVAL_OUT / name
    if not path.exists():
        print(
            f"no {path}: run `{MAKE_TARGET[name]}` first (about 5 min the first time; `make bench` runs it where "
            "it is missing)"
        )
        return {"missing": str(path), "run": MAKE_TARGET[name]}
    return json.loads(path.read_text())


def _unreadable(plan: Plan, name: str, exc: Exception) -> dict:
    if plan.quick:  # written by this very code a moment ago: the bench no longer reads what lfr eval writes
        raise Unreadable(f"{name} as lfr eval writes it now cannot be read by the bench: {exc!r}") from exc
    print(f"{EVAL_OUT / name} cannot be read ({exc!r}): written by another lfr eval; rerun `{MAKE_TARGET[name]}`")
    return {"missing": str(EVAL_OUT / name), "unreadable": repr(exc), "run": MAKE_TARGET[name]}


def _quick_eval(plan: Plan, name: str) -> Path:
    """`lfr eval` as `make eval-video` or `make eval-multishot` runs it, on a few clips and identities
    (about 10 s each on 2 cores; the shared embedding cache makes a second run faster)."""
    out, inputs = plan.out / "eval-out", plan.out / "eval-in"
    if name == VIDEO:
        # One cross-occasion person (5 s of video), one same-clip talking head and one clip of strangers.
        xdomain, videos = inputs / "xdomain", inputs / "video"
        _link(DATA / "xdomain" / "video" / "theresa-may.mp4", xdomain / "video" / "theresa-may.mp4")
        _link(DATA / "xdomain" / "watchlist" / "theresa-may", xdomain / "watchlist" / "theresa-may")
        for clip in ("talking_liveportrait_d0.mp4", "intel_preview_classroom.mp4"):
            _link(DATA / "video" / clip, videos / clip)
        args = ["--video", "--xdomain", str(xdomain), "--videos", str(videos), "--watchlist-size", "50"]
    else:
        args = ["--multi-shot", "3", "--max-subjects", "10", "--max-nonmated", "10", "--filler", "30"]
    command = [sys.executable, "-m", "lfr_cli.main", "eval", "--dataset", str(DATA / "lfw"), "--out", str(out), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"`lfr eval {' '.join(args)}` failed ({result.returncode}): {result.stderr[-2000:]}")
    print(f"(quick: `lfr eval {' '.join(args[:2])}` on a few {'clips' if name == VIDEO else 'identities'}, into {out})")
    return out / name


def _link(source: Path, link: Path) -> None:
    if not source.exists():
        raise FileNotFoundError(f"{source} not found (LFR_DATA_DIR)")
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(source.resolve())

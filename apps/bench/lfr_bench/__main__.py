"""`make bench`: the figures behind docs/performance.md. It prints; it asserts nothing.

    python -m lfr_bench [--only stages,tracks,embed,video,sealing,scenes,search,pipeline,replicas,catchup,
                                    fusion,enrolment,brokers]
                            [--seconds 40] [--quick]

- stages: per-stage time on 720p frames (detect per frame, embed per face), in process, with the
  services' own functions and default settings;
- sealing: the crypto-shredding cost per frame (AES-256-GCM seal + unseal of a 720p JPEG);
- scenes: the scene image of each embedded shot, bystanders covered: its CPU per embedded shot against
  the shot's CPU without it (target at most 5% more), its bytes, a 30-face scene's cost, and the blur's
  check on the crowd clip (YuNet finds no face, SFace scores under 0.30; lfr_bench.scenes, decision 0020);
- search: watchlist search latency (p50/p99) at 10,000 and 200,000 entries on real SFace
  embeddings, with match's own search (the embedded engine's HNSW index, re-checked by exact search
  just below the threshold), and how its results compare with exact search;
- tracks: the crowd clip at 5 fps through detect's own code: faces, tracks and embeddings per
  camera-second, and embeddings per person pass (the shot policy);
- embed: the embed stage alone draining a backlog of every face, against its model alone, per CPU
  second (lfr_bench.embed);
- video: embeddings per pass and per-pass recall of each shot policy, from `make eval-video`
  (lfr_bench.evals);
- pipeline: the services as processes on one machine, 720p cameras at 5 fps with 2-5 faces per
  frame, twice: as before tracks (one process per stage, every face embedded) and as now (a detect
  and an embed per core, best shots): faces/s sustained, its efficiency against the raw model rate
  on the same cores, cameras sustained at 5 fps, and capture-to-match/alert latency at 80% load;
- replicas: the pipeline with best shots and 1, then 2 replicas of every stage: faces/s
  sustained by each (what scaling out a stage buys on these cores);
- catchup: a new match replica rebuilding its copy of a watchlist from the watchlist log at 10,000
  and 200,000 entries, and a close's reach to every copy (lfr_bench.catchup, docs/decisions/0011);
- fusion: single shot against fused templates, from `lfr eval --multi-shot 3` (make eval-multishot);
- enrolment: the deployments service's peak memory while six 7000x7000 photos are enrolled over three
  streams at once, with the decode limits and the concurrency cap and without them; then the bus
  probe's bombs (multi-scan and progressive JPEGs, PNGs, WebP) over four streams: the enrolment RSS
  bound (peak over idle, at most 300 MB) and each format's outcome (lfr_bench.enrol);
- brokers: tansu and noida-db side by side (lfr_bench.broker, docs/decisions/0009).
Medians of repeated runs; machines are shared and noisy, so compare ratios, not single figures.

`--quick` runs every section on small sizes and windows of a few seconds (lfr_bench.plan), in a few
minutes on 2 cores, and writes var/bench/quick/figures.json, never the full run's: `make test` runs
it (apps/bench/tests/test_quick.py) so that a section that no longer runs fails there. A section that
fails is reported with its error, the others run on, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import numpy as np

from lfr_bench.evals import bench_fusion, bench_video
from lfr_bench.plan import DATA, FULL, MODELS, QUICK, SECTIONS, Plan
from lfr_bench.scenes import bench_scenes
from lfr_bench.stages import bench_sealing, bench_stages, bench_tracks, crowd_720p_5fps


def bench_embed(plan: Plan) -> dict:
    from lfr_bench.embed import run

    return run(
        crowd_720p_5fps(plan.out),
        plan.out,
        DATA,
        cameras=plan.embed_cameras,
        seconds=min(plan.embed_seconds, plan.window_s),
        model_faces=plan.embed_model_faces,
    )


def real_embeddings(photos: int = 0) -> np.ndarray:
    """SFace vectors of the shared LFW and UTKFace photos (`photos` of them, half from each; 0: every
    one), computed through the live path (cached)."""
    from lfr_eval.analysis import PROBE, Cache, Models, analyse_all

    models = Models(MODELS / "yunet-2023mar.onnx", MODELS / "sface-2021dec.onnx")
    lfw, utk = sorted((DATA / "lfw" / "images").glob("*/*.jpg")), sorted((DATA / "utkface" / "images").glob("*.jpg"))
    paths = lfw[: photos // 2] + utk[: photos - photos // 2] if photos else lfw + utk
    if not paths:
        raise FileNotFoundError(f"no LFW or UTKFace photo under {DATA} (LFR_DATA_DIR)")
    results = analyse_all([(p, PROBE) for p in paths], models, Cache(Path(".cache/embeddings"), models.fingerprint()))
    return np.stack([r.vector for r in results.values() if r.vector is not None]).astype(np.float32)


# The shipped policy's false_alert_budget (1 in 1,000, SWP's SOP): what the search is decided at.
SHIPPED_BUDGET = 1 / 1000


def bench_search(sizes: tuple[int, ...] = (10_000, 200_000), queries: int = 1000, photos: int = 0) -> dict:
    from lfr_faces.calibration import load
    from lfr_watchlist import EXACT_RECHECK_MARGIN, Entry, search_for_decision
    from lfr_watchlist.edge import EdgeIndex

    # Decisions at the threshold a 10,000-entry list gets under the shipped budget (deploy/policy.yaml).
    threshold = load("sface-2021dec").operating_point(10_000, SHIPPED_BUDGET).threshold
    out: dict[str, object] = {}
    if threshold is None:
        # No threshold keeps such a list within the budget (the deployments service refuses it): the
        # search is decided at the strictest threshold the model is used at instead, and says so.
        point = load("sface-2021dec").operating_point(10_000, SHIPPED_BUDGET)
        threshold = point.model_max
        out["threshold_note"] = (
            f"no threshold for 10,000 entries within {SHIPPED_BUDGET:g} (largest list {point.largest_list:,}): "
            f"decided at model_max {threshold}"
        )
        print(out["threshold_note"])
    margin = EXACT_RECHECK_MARGIN  # match's own (one source, in lfr_watchlist)
    real = real_embeddings(photos)
    rng = np.random.default_rng(7)
    rng.shuffle(real)
    # Real probes: 500 of the ~11,000 vectors in the full run (half the queries at most).
    n_real = min(500, len(real) // 4, queries // 2)
    probes_real, pool = real[:n_real], real[n_real:]
    out.update(real_vectors=int(len(real)), threshold=threshold)
    for size in sizes:
        # Each real vector once, then noisy variants of them, as further photos of the same people
        # would be (cosine about 0.75 to their source): clustered like a real watchlist, no duplicates.
        watchlist = np.tile(pool, (-(-size // len(pool)), 1))[:size]
        noise = rng.normal(scale=0.06, size=watchlist.shape).astype(np.float32)
        noise[: len(pool)] = 0
        watchlist = watchlist + noise
        watchlist /= np.linalg.norm(watchlist, axis=1, keepdims=True)
        variants = watchlist[rng.integers(0, size, queries - len(probes_real))]
        probes = np.vstack([probes_real, variants + rng.normal(scale=0.04, size=variants.shape).astype(np.float32)])
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        exact_scores = probes @ watchlist.T
        exact = np.argmax(exact_scores, axis=1)
        exact_best = exact_scores[np.arange(len(probes)), exact]
        with tempfile.TemporaryDirectory() as tmp:
            index = EdgeIndex(Path(tmp))
            index.create("bench", 128)
            started = time.perf_counter()
            for i in range(0, size, 5000):
                index.upsert(
                    "bench",
                    [
                        Entry(str(uuid.uuid4()), v, f"s{i + j}", "c", "", "", 0.0, "")
                        for j, v in enumerate(watchlist[i : i + 5000])
                    ],
                )
            index.optimize("bench")
            build_s = time.perf_counter() - started
            latencies, best_ids, best_scores = [], [], []
            for probe in probes:
                started = time.perf_counter()
                result = search_for_decision(index, "bench", probe, 5, threshold, margin)
                latencies.append(time.perf_counter() - started)
                best_ids.append(result[0].subject_id)
                best_scores.append(result[0].score)
            index.close()
        same = np.array([b == f"s{e}" for b, e in zip(best_ids, exact, strict=True)])
        above = exact_best >= threshold
        # None where no probe's exact best reaches the threshold (a mean of nothing)
        same_above = round(float(same[above].mean()), 4) if above.any() else None
        agree = float(((np.array(best_scores) >= threshold) == above).mean())
        p50, p99 = np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3
        print(
            f"search at {size:,} entries (qdrant-edge HNSW m 16, ef 256, exact re-check within {margin} below the "
            f"threshold): p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
            f"top-1 as exact search {same.mean():.4f}, {same_above} where it matters (exact best >= "
            f"{threshold}); match decisions as exact search {agree:.4f}; enrol+index {build_s:.0f} s"
        )
        out[str(size)] = {
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "top1_as_exact": round(float(same.mean()), 4),
            "top1_as_exact_above_threshold": same_above,
            "decisions_as_exact": round(agree, 4),
            "build_s": round(build_s, 1),
        }
        out[f"qdrant_client_local_{size}_p50_ms"] = _client_local_mode(watchlist, probes[:50])
    return out


def _client_local_mode(watchlist: np.ndarray, probes: np.ndarray) -> float:
    """qdrant-client's local mode on the same entries: the alternative decision 0001 compares."""
    import warnings

    from lfr_watchlist import Entry
    from lfr_watchlist.server import ServerIndex

    index = ServerIndex.connect(":memory:")
    index.create("bench", 128)
    latencies = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "local mode is exact / not for large sets": the point
        for i in range(0, len(watchlist), 2000):
            entries = [Entry(str(uuid.uuid4()), v, "s", "c", "", "", 0.0, "") for v in watchlist[i : i + 2000]]
            index.upsert("bench", entries)
        for probe in probes:
            started = time.perf_counter()
            index.search("bench", probe, 5)
            latencies.append(time.perf_counter() - started)
    index.close()
    p50 = float(np.percentile(latencies, 50) * 1e3)
    print(f"search at {len(watchlist):,} entries (qdrant-client local mode, for comparison): p50 {p50:.1f} ms")
    return round(p50, 2)


def bench_pipeline(plan: Plan, raw_faces_per_s: float | None) -> dict:
    from lfr_bench.pipeline import run
    from lfr_stack.wiring import default_replicas

    replicas = default_replicas()
    before = run(crowd_720p_5fps(plan.out), DATA, plan, replicas=1, every_face=True)
    after = run(crowd_720p_5fps(plan.out), DATA, plan, replicas=replicas, every_face=False)
    out = {"before": before, "after": after}
    cameras_before = before["capacity"]["sustained_frames_per_s"] / 5
    cameras_after = after["capacity"]["sustained_frames_per_s"] / 5
    out["cameras_at_5fps"] = {
        "before": round(cameras_before, 2),
        "after": round(cameras_after, 2),
        "ratio": round(cameras_after / cameras_before, 2) if cameras_before else None,
    }
    if raw_faces_per_s:
        out["efficiency"] = {
            "before": round(before["capacity"]["sustained_faces_per_s"] / raw_faces_per_s, 2),
            "after": round(after["capacity"]["sustained_faces_per_s"] / raw_faces_per_s, 2),
            "note": "faces/s the pipeline sustains / faces/s the two models alone could on the same cores, "
            "embedding every face; with best shots the pipeline embeds fewer faces than it detects",
        }
    print(f"cameras sustained at 5 fps: {out['cameras_at_5fps']}; efficiency: {out.get('efficiency')}")
    return out


def bench_replicas(plan: Plan) -> dict:
    """The same pipeline (best shots) with 1 and with 2 replicas of every stage: what a second
    replica per stage buys on this machine's cores."""
    from lfr_bench.pipeline import run

    out = {n: run(crowd_720p_5fps(plan.out), DATA, plan, replicas=n, latency=False)["capacity"] for n in (1, 2)}
    one, two = out[1]["sustained_faces_per_s"], out[2]["sustained_faces_per_s"]
    out["faces_per_s"] = {"1_replica": one, "2_replicas": two, "ratio": round(two / one, 2) if one else None}
    print(f"faces/s sustained with 1 and 2 replicas per stage: {out['faces_per_s']}")
    return out


def bench_catchup(plan: Plan) -> dict:
    from lfr_bench.catchup import run

    return run(plan.catchup_sizes)


def bench_brokers(plan: Plan) -> dict:
    from lfr_bench.broker import run

    return run(plan.broker_records, plan.broker_runs)


def bench_enrolment(plan: Plan) -> dict:
    from lfr_bench.enrol import run

    return run(plan.out, DATA, plan.enrol_side, plan.enrol_photos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfr_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run, comma-separated")
    parser.add_argument(
        "--seconds", type=float, default=None, help="pipeline measurement window (40 s; 3 s with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every section on small sizes and windows of a few seconds; figures to var/bench/quick (make test)",
    )
    args = parser.parse_args(argv)
    wanted = args.only.split(",")
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"no section {', '.join(unknown)}: the sections are {','.join(SECTIONS)}")
    plan = (QUICK if args.quick else FULL).with_window(args.seconds)
    machine = f"{host.node()} ({os.cpu_count()} cores, {host.processor() or host.machine()}, {host.python_version()})"
    print(f"machine: {machine}{' (quick: figures not to be quoted)' if plan.quick else ''}")
    figures: dict[str, object] = {"machine": machine, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    earlier = json.loads(plan.figures.read_text()) if plan.figures.exists() else {}

    def raw() -> float | None:
        return (figures.get("stages") or earlier.get("stages") or {}).get("raw_model_faces_per_s")

    steps = {
        "stages": lambda: bench_stages(plan),
        "tracks": lambda: bench_tracks(plan),
        "embed": lambda: bench_embed(plan),
        "video": lambda: bench_video(plan),
        "sealing": lambda: bench_sealing(plan),
        "scenes": lambda: bench_scenes(plan),
        "search": lambda: bench_search(plan.search_sizes, plan.search_queries, plan.search_photos),
        "pipeline": lambda: bench_pipeline(plan, raw()),
        "replicas": lambda: bench_replicas(plan),
        "catchup": lambda: bench_catchup(plan),
        "fusion": lambda: bench_fusion(plan),
        "enrolment": lambda: bench_enrolment(plan),
        "brokers": lambda: bench_brokers(plan),
    }
    assert steps.keys() == set(SECTIONS)
    failed: dict[str, str] = {}
    wall: dict[str, float] = {}
    for name in (s for s in SECTIONS if s in wanted):
        print(f"--- {name}", flush=True)
        started = time.monotonic()
        try:
            figures[name] = steps[name]()
        except Exception as exc:  # one section's failure is reported, and the others still run
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name} FAILED: {failed[name]}")
        wall[name] = round(time.monotonic() - started, 1)
    # Sections not run this time keep their earlier figures; this run's failures and times replace the last.
    figures.update(errors=failed, wall_s=wall)
    plan.out.mkdir(parents=True, exist_ok=True)
    plan.figures.write_text(json.dumps({**earlier, **figures}, indent=2) + "\n")
    print(f"figures written to {plan.figures}")
    if failed:
        print(f"sections that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

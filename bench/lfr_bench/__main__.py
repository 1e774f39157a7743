"""`make bench`: the figures behind docs/performance.md. It prints; it asserts nothing.

    python -m lfr_bench [--only stages,tracks,embed,video,sealing,search,pipeline,replicas,catchup,fusion,
                                    enrolment,brokers]
                            [--seconds 40]

- stages: per-stage time on 720p frames (detect per frame, embed per face), in process, with the
  services' own functions and default settings;
- sealing: the crypto-shredding cost per frame (AES-256-GCM seal + unseal of a 720p JPEG);
- search: watchlist search latency (p50/p99) at 10,000 and 200,000 entries on real SFace
  embeddings, with match's own search (the embedded engine's HNSW index, re-checked by exact search
  just below the threshold), and how its results compare with exact search;
- tracks: the crowd clip at 5 fps through detect's own code: faces, tracks and embeddings per
  camera-second, and embeddings per person pass (the shot policy);
- embed: the embed stage alone draining a backlog of every face, against its model alone, per CPU
  second (lfr_bench.embed);
- video: embeddings per pass and per-pass recall of each shot policy, from `make eval-video`;
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
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

DATA = Path(os.environ.get("LFR_DATA_DIR", "../shared/data"))
MODELS = Path(os.environ.get("LFR_MODELS_DIR", "models"))
OUT = Path("var/bench")


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:.2f} ms, p90 {np.percentile(samples, 90) * 1e3:.2f} ms"


def crowd_720p() -> Path:
    """The crowd clip (1080p, 4-6 faces) scaled to 1280x720, written once under var/bench."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "crowd-720p.mp4"
    if not path.exists():
        source = cv2.VideoCapture(str(DATA / "video" / "facenet_pytorch_video.mp4"))
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (1280, 720))
        while (frame := source.read())[0]:
            writer.write(cv2.resize(frame[1], (1280, 720), interpolation=cv2.INTER_AREA))
        writer.release()
    return path


def crowd_720p_5fps() -> Path:
    """The same clip at 5 fps: a camera sampled at 5 fps, without decoding four frames of five."""
    path = OUT / "crowd-720p-5fps.mp4"
    if not path.exists():
        source = cv2.VideoCapture(str(crowd_720p()))
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (1280, 720))
        index = 0
        while (frame := source.read())[0]:
            if index % 5 == 0:
                writer.write(frame[1])
            index += 1
        writer.release()
    return path


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    return frames


def bench_stages() -> dict:
    from lfr_detect.settings import DetectSettings
    from lfr_faces import images
    from lfr_faces.crops import embed_crops, find_faces
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder
    from lfr_faces.quality import QualityPolicy

    settings = DetectSettings.model_construct()
    detector = build_detector("yunet", MODELS / "yunet-2023mar.onnx", input_width=settings.input_width)
    embedder = build_embedder("sface", MODELS / "sface-2021dec.onnx")
    policy = QualityPolicy(min_size_px=settings.min_face_px, min_sharpness=settings.min_sharpness)
    frames = [images.encode_jpeg(f, 90) for f in _frames(crowd_720p())]
    detect_s, faces = [], []
    for jpeg in frames * 2:
        started = time.perf_counter()
        image = images.decode_jpeg(jpeg, max_bytes=10**8, max_pixels=10**8)
        found, _ = find_faces(detector, image, policy, settings.min_score)
        detect_s.append(time.perf_counter() - started)
        faces.extend((f.jpeg, f.landmarks) for f in found)
    per_face = {}
    for batch in (1, 4):
        samples = []
        for i in range(0, min(len(faces), 160) - batch + 1, batch):
            started = time.perf_counter()
            embed_crops(embedder, faces[i : i + batch])
            samples.append((time.perf_counter() - started) / batch)
        per_face[batch] = samples
    faces_per_frame = len(faces) / (2 * len(frames))
    detect_ms, embed_ms = statistics.median(detect_s) * 1e3, statistics.median(per_face[1]) * 1e3
    cores = os.cpu_count() or 1
    # What the two models alone could do on every core, detecting and embedding every face.
    raw = cores * 1e3 / (detect_ms / faces_per_frame + embed_ms)
    result = {
        "detect_per_720p_frame_ms": round(detect_ms, 1),
        "faces_per_frame": round(faces_per_frame, 2),
        "embed_per_face_ms_batch1": round(embed_ms, 1),
        "embed_per_face_ms_batch4": round(statistics.median(per_face[4]) * 1e3, 1),
        "cores": cores,
        "raw_model_faces_per_s": round(raw, 1),
    }
    print(f"detect (decode + YuNet + quality + crops), 720p: {_ms(detect_s)} per frame")
    print(f"embed (decode crop + align + SFace): batch 1 {_ms(per_face[1])}; batch 4 {_ms(per_face[4])} per face")
    print(
        f"raw model rate on {cores} cores, every face embedded: {raw:.1f} faces/s "
        f"({faces_per_frame:.2f} faces per frame)"
    )
    return result


def bench_tracks() -> dict:
    """The crowd clip at 5 fps through detect's code: detections, tracks and embeddings."""
    from lfr_detect.settings import DetectSettings
    from lfr_faces.crops import find_faces
    from lfr_faces.detectors import build_detector
    from lfr_faces.quality import QualityPolicy, shot_quality
    from lfr_faces.tracking import ShotPolicy, Tracker

    settings = DetectSettings.model_construct()
    detector = build_detector("yunet", MODELS / "yunet-2023mar.onnx", input_width=settings.input_width)
    policy = QualityPolicy(min_size_px=settings.min_face_px, min_sharpness=settings.min_sharpness)
    tracker, shots = Tracker(), ShotPolicy(settings.shot_interval_s, settings.shot_budget)
    frames = _frames(crowd_720p())
    step = 5  # 25 fps sampled at 5
    faces = embedded = 0
    per_track: dict[str, int] = {}
    for i in range(0, len(frames), step):
        found, _ = find_faces(detector, frames[i], policy, settings.min_score)
        for face, track in zip(found, tracker.assign("crowd", [f.box for f in found], i / 25).tracks, strict=True):
            faces += 1
            per_track.setdefault(track.track_id, 0)
            if shots.choose(track, shot_quality(face.quality, face.score), i / 25, face.quality.yaw) is None:
                embedded += 1
                per_track[track.track_id] += 1
    seconds = len(frames) / 25
    result = {
        "clip_seconds": round(seconds, 1),
        "faces_per_camera_s": round(faces / seconds, 2),
        "tracks_per_camera_s": round(len(per_track) / seconds, 2),
        "embeddings_per_camera_s": round(embedded / seconds, 2),
        "median_embeddings_per_pass": statistics.median(per_track.values()),
        "max_embeddings_per_pass": max(per_track.values()),
        "every_pass_decided": all(n >= 1 for n in per_track.values()),
    }
    print(
        f"crowd clip at 5 fps: {result['faces_per_camera_s']} faces, {result['tracks_per_camera_s']} tracks and "
        f"{result['embeddings_per_camera_s']} embeddings per camera-second; embeddings per pass: median "
        f"{result['median_embeddings_per_pass']}, max {result['max_embeddings_per_pass']}; every pass decided: "
        f"{result['every_pass_decided']}"
    )
    return result


def bench_fusion() -> dict:
    """Single shot against fused templates, as `lfr eval --multi-shot 3` measured them."""
    path = Path("eval-out") / "multishot-3.json"
    if not path.exists():
        print("no eval-out/multishot-3.json: run `make eval-multishot` first (about 5 min the first time)")
        return {}
    report = json.loads(path.read_text())
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
    return out


def bench_embed(seconds: float) -> dict:
    from lfr_bench.embed import run

    return run(crowd_720p_5fps(), seconds=min(seconds, 30.0))


def bench_video() -> dict:
    """Embeddings per pass and per-pass recall, from `lfr eval --video` (make eval-video)."""
    path = Path("eval-out") / "video.json"
    if not path.exists():
        print("no eval-out/video.json: run `make eval-video` first (about 5 min the first time)")
        return {}
    report = json.loads(path.read_text())
    floor = report["floor"]["floor"]
    out: dict[str, object] = {"per_pass_floor": floor}
    for s in report["strategies"]:
        row = min(s["thresholds"], key=lambda r: abs(r["threshold"] - floor))
        out[s["name"]] = {
            "embeddings_per_pass": round(s["embeddings_per_pass"], 2),
            "share_of_every_face": round(s["share_of_every_face"], 3),
            "tpir": row["tpir"]["rate"],
            "fpir": row["fpir"]["rate"],
        }
        print(
            f"{s['name']:36s} {s['embeddings_per_pass']:5.1f} embeddings per pass "
            f"({s['share_of_every_face']:4.0%} of every face); per-pass recall at {floor:.2f}: "
            f"{row['tpir']['k']}/{row['tpir']['n']}, strangers alerting {row['fpir']['k']}/{row['fpir']['n']}"
        )
    return out


def bench_sealing() -> dict:
    from lfr_faces import images
    from lfr_platform import sealing

    jpeg = images.encode_jpeg(_frames(crowd_720p())[40], 90)
    key = sealing.new_data_key()
    seal_s, unseal_s = [], []
    for _ in range(300):
        started = time.perf_counter()
        sealed = sealing.seal(key, jpeg, "dep-bench")
        seal_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        sealing.unseal(key, sealed, "dep-bench")
        unseal_s.append(time.perf_counter() - started)
    print(
        f"sealing a {len(jpeg) // 1024} KiB 720p JPEG: seal {_ms(seal_s)}, unseal {_ms(unseal_s)}; "
        f"+{sealing.OVERHEAD_BYTES} bytes"
    )
    return {
        "frame_kib": len(jpeg) // 1024,
        "seal_ms": round(statistics.median(seal_s) * 1e3, 3),
        "unseal_ms": round(statistics.median(unseal_s) * 1e3, 3),
        "overhead_bytes": sealing.OVERHEAD_BYTES,
    }


def real_embeddings() -> np.ndarray:
    """SFace vectors of the shared LFW and UTKFace photos, computed through the live path (cached)."""
    from lfr_eval.analysis import PROBE, Cache, Models, analyse_all

    models = Models(MODELS / "yunet-2023mar.onnx", MODELS / "sface-2021dec.onnx")
    paths = sorted((DATA / "lfw" / "images").glob("*/*.jpg")) + sorted((DATA / "utkface" / "images").glob("*.jpg"))
    results = analyse_all([(p, PROBE) for p in paths], models, Cache(Path(".cache/embeddings"), models.fingerprint()))
    return np.stack([r.vector for r in results.values() if r.vector is not None]).astype(np.float32)


def bench_search(queries: int = 1000) -> dict:
    from lfr_faces.calibration import load
    from lfr_watchlist import EXACT_RECHECK_MARGIN, Entry, search_for_decision
    from lfr_watchlist.edge import EdgeIndex

    threshold = load("sface-2021dec").default_threshold
    margin = EXACT_RECHECK_MARGIN  # match's own (one source, in lfr_watchlist)
    real = real_embeddings()
    rng = np.random.default_rng(7)
    rng.shuffle(real)
    probes_real, pool = real[:500], real[500:]
    out: dict[str, object] = {"real_vectors": int(len(real)), "threshold": threshold}
    for size in (10_000, 200_000):
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
        agree = float(((np.array(best_scores) >= threshold) == above).mean())
        p50, p99 = np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3
        print(
            f"search at {size:,} entries (qdrant-edge HNSW m 16, ef 256, exact re-check within {margin} below the "
            f"threshold): p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
            f"top-1 as exact search {same.mean():.4f}, {same[above].mean():.4f} where it matters (exact best >= "
            f"{threshold}); match decisions as exact search {agree:.4f}; enrol+index {build_s:.0f} s"
        )
        out[str(size)] = {
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "top1_as_exact": round(float(same.mean()), 4),
            "top1_as_exact_above_threshold": round(float(same[above].mean()), 4),
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


def bench_pipeline(seconds: float, raw_faces_per_s: float | None) -> dict:
    from lfr_bench.pipeline import run
    from lfr_stack.wiring import default_replicas

    replicas = default_replicas()
    before = run(crowd_720p_5fps(), DATA, seconds, replicas=1, every_face=True)
    after = run(crowd_720p_5fps(), DATA, seconds, replicas=replicas, every_face=False)
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


def bench_replicas(seconds: float) -> dict:
    """The same pipeline (best shots) with 1 and with 2 replicas of every stage: what a second
    replica per stage buys on this machine's cores."""
    from lfr_bench.pipeline import run

    out = {n: run(crowd_720p_5fps(), DATA, seconds, replicas=n, latency=False)["capacity"] for n in (1, 2)}
    one, two = out[1]["sustained_faces_per_s"], out[2]["sustained_faces_per_s"]
    out["faces_per_s"] = {"1_replica": one, "2_replicas": two, "ratio": round(two / one, 2) if one else None}
    print(f"faces/s sustained with 1 and 2 replicas per stage: {out['faces_per_s']}")
    return out


def bench_catchup() -> dict:
    from lfr_bench.catchup import run

    return run()


def bench_brokers() -> dict:
    from lfr_bench.broker import run

    return run()


def bench_enrolment() -> dict:
    from lfr_bench.enrol import run

    return run(OUT, DATA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="stages,tracks,embed,video,sealing,search,pipeline,replicas,catchup,fusion,enrolment,brokers",
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="pipeline measurement window")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    machine = f"{host.node()} ({os.cpu_count()} cores, {host.processor() or host.machine()}, {host.python_version()})"
    print(f"machine: {machine}")
    figures: dict[str, object] = {"machine": machine, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = OUT / "figures.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}

    def raw() -> float | None:
        return (figures.get("stages") or earlier.get("stages") or {}).get("raw_model_faces_per_s")

    steps = {
        "stages": bench_stages,
        "tracks": bench_tracks,
        "embed": lambda: bench_embed(args.seconds),
        "video": bench_video,
        "sealing": bench_sealing,
        "search": bench_search,
        "pipeline": lambda: bench_pipeline(args.seconds, raw()),
        "replicas": lambda: bench_replicas(args.seconds),
        "catchup": bench_catchup,
        "fusion": bench_fusion,
        "enrolment": bench_enrolment,
        "brokers": bench_brokers,
    }
    for name, step in steps.items():
        if name in wanted:
            print(f"--- {name}")
            figures[name] = step()
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**earlier, **figures}, indent=2) + "\n")  # sections not run this time stay
    print(f"figures written to {OUT / 'figures.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench` sections stages, tracks and sealing: the services' own functions in this process, on
the crowd clip (1080p, 4-6 faces) scaled to 720p; and the clip itself, which other sections stream."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from lfr_bench.plan import DATA, MODELS, Plan


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:.2f} ms, p90 {np.percentile(samples, 90) * 1e3:.2f} ms"


def crowd_720p(out: Path) -> Path:
    """The crowd clip (1080p, 4-6 faces) scaled to 1280x720, written once under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "crowd-720p.mp4"
    if not path.exists():
        source = cv2.VideoCapture(str(DATA / "video" / "facenet_pytorch_video.mp4"))
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (1280, 720))
        written = 0
        while (frame := source.read())[0]:
            writer.write(cv2.resize(frame[1], (1280, 720), interpolation=cv2.INTER_AREA))
            written += 1
        writer.release()
        if not written:
            path.unlink(missing_ok=True)
            raise FileNotFoundError(f"no frame read from {DATA / 'video' / 'facenet_pytorch_video.mp4'} (LFR_DATA_DIR)")
    return path


def crowd_720p_5fps(out: Path) -> Path:
    """The same clip at 5 fps: a camera sampled at 5 fps, without decoding four frames of five."""
    path = out / "crowd-720p-5fps.mp4"
    if not path.exists():
        source = cv2.VideoCapture(str(crowd_720p(out)))
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (1280, 720))
        index = 0
        while (frame := source.read())[0]:
            if index % 5 == 0:
                writer.write(frame[1])
            index += 1
        writer.release()
    return path


def frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    out = []
    while (frame := capture.read())[0]:
        out.append(frame[1])
    return out


def bench_stages(plan: Plan) -> dict:
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
    clip = frames(crowd_720p(plan.out))
    jpegs = [images.encode_jpeg(f, 90) for f in clip[: plan.stage_frames or len(clip)]]
    detect_s, faces = [], []
    for jpeg in jpegs * 2:
        started = time.perf_counter()
        image = images.decode_jpeg(jpeg, max_bytes=10**8, max_pixels=10**8)
        found, _ = find_faces(detector, image, policy, settings.min_score)
        detect_s.append(time.perf_counter() - started)
        faces.extend((f.jpeg, f.landmarks) for f in found)
    per_face = {}
    for batch in (1, 4):
        samples = []
        for i in range(0, min(len(faces), plan.stage_faces) - batch + 1, batch):
            started = time.perf_counter()
            embed_crops(embedder, faces[i : i + batch])
            samples.append((time.perf_counter() - started) / batch)
        per_face[batch] = samples
    faces_per_frame = len(faces) / (2 * len(jpegs))
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


def bench_tracks(plan: Plan) -> dict:
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
    clip = frames(crowd_720p(plan.out))  # 4.2 s: the quick run takes it whole too
    step = 5  # 25 fps sampled at 5
    faces = embedded = 0
    per_track: dict[str, int] = {}
    for i in range(0, len(clip), step):
        found, _ = find_faces(detector, clip[i], policy, settings.min_score)
        for face, track in zip(found, tracker.assign("crowd", [f.box for f in found], i / 25).tracks, strict=True):
            faces += 1
            per_track.setdefault(track.track_id, 0)
            if shots.choose(track, shot_quality(face.quality, face.score), i / 25, face.quality.yaw) is None:
                embedded += 1
                per_track[track.track_id] += 1
    seconds = len(clip) / 25
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


def bench_sealing(plan: Plan) -> dict:
    from lfr_faces import images
    from lfr_platform import sealing

    jpeg = images.encode_jpeg(frames(crowd_720p(plan.out))[40], 90)
    key = sealing.new_data_key()
    seal_s, unseal_s = [], []
    for _ in range(plan.sealing_rounds):
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

"""Recorded clips through the live code, face by face: what ingest, detect and embed would make of them.

Each clip is sampled as ingest samples a camera (lfr_faces.frames, at a camera's default rate, fitted and
JPEG-encoded with ingest's defaults), each frame goes through detect's quality gate and crops
(lfr_faces.crops.find_faces with detect's defaults) and its tracker (lfr_faces.tracking), and EVERY
accepted face is embedded through embed's alignment and model. Which of them a shot policy would
have embedded is decided afterwards (lfr_eval.video), so that one extraction serves every policy.

Results are cached per clip by the file's hash and the models' and policies' fingerprint
(`.cache/video/`): vectors of real faces, kept on this machine like the evaluation's other caches.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfr_eval.analysis import Models

# Bumped when what a clip's cache holds changes.
_CACHE_FORMAT = 2  # 2: each face's size, sharpness and detector score


@dataclass(frozen=True)
class Faces:
    """Every accepted face of one clip, in capture order."""

    clip: str
    frames: int  # frames sampled
    t: np.ndarray  # (n,) capture time in the clip, seconds
    track: np.ndarray  # (n,) track id
    quality: np.ndarray  # (n,) shot quality, 0-1 (lfr_faces.quality.shot_quality of the four below)
    yaw: np.ndarray  # (n,) head turn, 0 frontal .. 1
    size: np.ndarray  # (n,) shorter side of the face box, px
    sharpness: np.ndarray  # (n,) variance of the Laplacian at 64x64
    score: np.ndarray  # (n,) detector confidence
    vectors: np.ndarray  # (n, d) unit vectors

    def tracks(self) -> dict[str, np.ndarray]:
        """Each track's face indexes, in capture order."""
        out: dict[str, list[int]] = {}
        for i, track in enumerate(self.track):
            out.setdefault(str(track), []).append(i)
        return {k: np.array(v) for k, v in out.items()}


def live_policies() -> dict:
    """The live defaults that decide which faces a clip yields: part of the cache key."""
    from lfr_detect.settings import DetectSettings
    from lfr_faces.frames import JPEG_QUALITY
    from lfr_faces.tracking import TRACK_MAX_AGE_S, TRACKS_PER_CAMERA
    from lfr_ingest.settings import CameraSettings, IngestSettings

    detect = DetectSettings.model_construct()
    ingest = IngestSettings.model_construct()
    return {
        "fps": CameraSettings.model_fields["fps"].default,
        "jpeg_quality": JPEG_QUALITY,
        "max_width": ingest.max_width,
        "min_face_px": detect.min_face_px,
        "min_sharpness": detect.min_sharpness,
        "min_score": detect.min_score,
        "input_width": detect.input_width,
        "track_max_age_s": TRACK_MAX_AGE_S,
        "track_max_per_camera": TRACKS_PER_CAMERA,
    }


def fingerprint(models: Models) -> str:
    digest = hashlib.sha256(f"{_CACHE_FORMAT}:{models.fingerprint()}".encode())
    digest.update(json.dumps(live_policies(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _clip_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


# --- worker side -------------------------------------------------------------------------------
_worker: dict = {}


def _init_worker(models: Models) -> None:
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder
    from lfr_faces.quality import QualityPolicy

    policies = live_policies()
    _worker["policies"] = policies
    _worker["detector"] = build_detector("yunet", models.detector_path, input_width=policies["input_width"])
    _worker["embedder"] = build_embedder("sface", models.embedder_path)
    _worker["quality"] = QualityPolicy(min_size_px=policies["min_face_px"], min_sharpness=policies["min_sharpness"])


def extract(path: Path) -> dict[str, np.ndarray]:
    import cv2

    from lfr_faces import images
    from lfr_faces.crops import embed_crops, find_faces
    from lfr_faces.frames import Sampler, fit_width
    from lfr_faces.quality import shot_quality
    from lfr_faces.tracking import Tracker

    p = _worker["policies"]
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot read {path}")
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    sampler, tracker = Sampler(p["fps"]), Tracker(p["track_max_age_s"], p["track_max_per_camera"])
    rows: list[tuple[float, str, float, float, float, float, float]] = []
    vectors: list[np.ndarray] = []
    index = frames = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            t = index / source_fps
            index += 1
            if not sampler.keep(t):
                continue
            frames += 1
            # The frame as detect gets it: fitted and JPEG-encoded by ingest, decoded by detect.
            jpeg = images.encode_jpeg(fit_width(frame, p["max_width"]), p["jpeg_quality"])
            image = images.decode_jpeg(jpeg, max_bytes=len(jpeg) + 1, max_pixels=image_pixels(frame))
            faces, _ = find_faces(_worker["detector"], image, _worker["quality"], p["min_score"])
            if not faces:
                tracker.assign("clip", [], t)
                continue
            tracks = tracker.assign("clip", [f.box for f in faces], t).tracks
            vectors.append(embed_crops(_worker["embedder"], [(f.jpeg, f.landmarks) for f in faces]))
            for face, track in zip(faces, tracks, strict=True):
                q = face.quality
                rows.append(
                    (t, track.track_id, shot_quality(q, face.score), float(q.yaw), q.size_px, q.sharpness, face.score)
                )
    finally:
        capture.release()
    dimension = _worker["embedder"].dimension
    return {
        "frames": np.array(frames),
        "t": np.array([r[0] for r in rows], dtype=np.float64),
        "track": np.array([r[1] for r in rows], dtype=str),
        "quality": np.array([r[2] for r in rows], dtype=np.float64),
        "yaw": np.array([r[3] for r in rows], dtype=np.float64),
        "size": np.array([r[4] for r in rows], dtype=np.float64),
        "sharpness": np.array([r[5] for r in rows], dtype=np.float64),
        "score": np.array([r[6] for r in rows], dtype=np.float64),
        "vectors": np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, dimension), np.float32),
    }


def image_pixels(frame: np.ndarray) -> int:
    return int(frame.shape[0] * frame.shape[1]) + 1


def _task(item: tuple[str, str]) -> tuple[str, dict[str, np.ndarray] | str]:
    key, path = item
    try:
        return key, extract(Path(path))
    except ValueError as exc:
        return key, str(exc)


def extract_all(paths: list[Path], models: Models, cache_dir: Path) -> dict[Path, Faces]:
    """Every clip's faces, computed where the cache has none (in parallel processes)."""
    folder = cache_dir / fingerprint(models)
    folder.mkdir(parents=True, exist_ok=True)
    keys = {path: _clip_key(path) for path in paths}
    todo = sorted({(key, str(path)) for path, key in keys.items() if not (folder / f"{key}.npz").is_file()})
    if todo:
        processes = max(1, min(len(todo), os.cpu_count() or 1))
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes, initializer=_init_worker, initargs=(models,)) as pool:
            for key, result in pool.imap_unordered(_task, todo):
                if isinstance(result, str):
                    raise ValueError(result)
                np.savez(folder / f"{key}.npz", **result)
    out = {}
    for path, key in keys.items():
        with np.load(folder / f"{key}.npz") as data:
            out[path] = Faces(
                clip=path.name,
                frames=int(data["frames"]),
                t=data["t"],
                track=data["track"],
                quality=data["quality"],
                yaw=data["yaw"],
                size=data["size"],
                sharpness=data["sharpness"],
                score=data["score"],
                vectors=data["vectors"],
            )
    return out

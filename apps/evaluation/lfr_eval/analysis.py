"""Every image through the live pipeline's own code, cached by file hash.

- as a probe: detect's quality gate and crops (lfr_faces.crops.find_faces, with detect's default
  settings), then embed's alignment and model (embed_crops): what a camera frame would go through;
- as an enrolment photo: match's Enroller, with match's default enrolment policy.

The cache key holds the file's hash, the models' hashes and the policies, so a re-run with other
thresholds or groups reads vectors instead of computing them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PROBE, ENROL = "probe", "enrol"


# Bumped when what an analysis holds changes, so that a cache of the old shape is not read.
_CACHE_FORMAT = 2  # 2: probes carry their shot quality


@dataclass(frozen=True)
class Analysed:
    status: str  # "ok" or why no vector: no_face, face_too_small, too_blurred, undecodable, ...
    vector: np.ndarray | None
    # A probe's shot quality (lfr_faces.quality.shot_quality), as detect rates a track's shots.
    quality: float | None = None


@dataclass(frozen=True)
class Models:
    detector_path: Path
    embedder_path: Path
    # Enrol the mean of each face and its mirror image (lfr_faces.enrolment.MIRRORED is the live choice).
    mirrored_enrolment: bool = False

    def fingerprint(self) -> str:
        from lfr_deployments.settings import DeploymentsSettings
        from lfr_detect.settings import DetectSettings

        digest = hashlib.sha256(str(_CACHE_FORMAT).encode())
        for path in (self.detector_path, self.embedder_path):
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        # Policies change which faces get a vector: they are part of the key.
        digest.update(json.dumps(_probe_policy(DetectSettings.model_construct()), sort_keys=True).encode())
        enrolment = _enrol_policy(DeploymentsSettings.model_construct())
        if self.mirrored_enrolment:
            enrolment["mirrored"] = True
        digest.update(json.dumps(enrolment, sort_keys=True).encode())
        return digest.hexdigest()[:16]


def _probe_policy(s) -> dict:
    return {
        "min_face_px": s.min_face_px,
        "min_sharpness": s.min_sharpness,
        "min_score": s.min_score,
        "input_width": s.input_width,
    }


def _enrol_policy(s) -> dict:
    return {
        "min_face_px": s.enrol_min_face_px,
        "min_sharpness": s.enrol_min_sharpness,
        "max_yaw": s.enrol_max_yaw,
        "min_score": s.enrol_min_score,
    }


class Cache:
    """JSON lines of {key, status, vector}; appended to as results come in."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{fingerprint}.jsonl"
        self.entries: dict[str, Analysed] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                row = json.loads(line)
                vector = np.frombuffer(base64.b64decode(row["vector"]), "<f4") if row["vector"] else None
                self.entries[row["key"]] = Analysed(row["status"], vector, row.get("quality"))

    def add(self, key: str, result: Analysed) -> None:
        self.entries[key] = result
        vector = base64.b64encode(result.vector.astype("<f4").tobytes()).decode() if result.vector is not None else ""
        with self.path.open("a") as f:
            row = {"key": key, "status": result.status, "vector": vector, "quality": result.quality}
            f.write(json.dumps(row) + "\n")


# --- worker side -------------------------------------------------------------------------------
_worker: dict = {}


def _init_worker(models: Models) -> None:
    from lfr_deployments.settings import DeploymentsSettings
    from lfr_detect.settings import DetectSettings
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder
    from lfr_faces.enrolment import Enroller, EnrolmentPolicy
    from lfr_faces.quality import QualityPolicy

    detect = DetectSettings.model_construct()
    enrol = DeploymentsSettings.model_construct()
    embedder = build_embedder("sface", models.embedder_path)
    _worker["probe_detector"] = build_detector("yunet", models.detector_path, input_width=detect.input_width)
    _worker["embedder"] = embedder
    _worker["policy"] = QualityPolicy(min_size_px=detect.min_face_px, min_sharpness=detect.min_sharpness)
    _worker["min_score"] = detect.min_score
    _worker["enroller"] = Enroller(
        build_detector("yunet", models.detector_path, input_width=0),
        embedder,
        EnrolmentPolicy(
            max_bytes=enrol.enrol_max_bytes,
            max_pixels=enrol.enrol_max_pixels,
            mirrored=models.mirrored_enrolment,
            **{k: v for k, v in _enrol_policy(enrol).items()},
        ),
    )


def analyse_probe(data: bytes) -> Analysed:
    from lfr_faces import images
    from lfr_faces.crops import embed_crops, find_faces
    from lfr_faces.quality import shot_quality

    try:
        image = images.decode(data, max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)
    except images.ImageRejected as exc:
        return Analysed(exc.reason, None)
    accepted, rejected = find_faces(_worker["probe_detector"], image, _worker["policy"], _worker["min_score"])
    if not accepted:
        return Analysed(rejected[0].reason if rejected else "no_face", None)
    # The subject of a dataset photo is the face nearest its centre (others are background).
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    face = min(accepted, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
    vector = embed_crops(_worker["embedder"], [(face.jpeg, face.landmarks)])[0]
    return Analysed("ok", vector, shot_quality(face.quality, face.score))


def analyse_enrol(data: bytes) -> Analysed:
    from lfr_faces.enrolment import EnrolRejected

    try:
        return Analysed("ok", _worker["enroller"].analyse(data).vector)
    except EnrolRejected as exc:
        return Analysed(exc.reason, None)


def _task(item: tuple[str, str, str]) -> tuple[str, str, bytes | None, float | None]:
    key, kind, path = item
    try:
        data = Path(path).read_bytes()
    except OSError:
        return key, "unreadable_file", None, None
    result = analyse_probe(data) if kind == PROBE else analyse_enrol(data)
    vector = result.vector.astype("<f4").tobytes() if result.vector is not None else None
    return key, result.status, vector, result.quality


def file_key(path: Path, kind: str) -> str:
    try:
        return f"{kind}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    except OSError:
        return f"{kind}:unreadable:{path}"


def analyse_all(
    work: Iterable[tuple[Path, str]], models: Models, cache: Cache, processes: int | None = None
) -> dict[tuple[Path, str], Analysed]:
    """Analysis of each (path, kind); computed where the cache has none, in parallel processes."""
    keys = {(path, kind): file_key(path, kind) for path, kind in work}
    todo = sorted({(key, kind, str(path)) for (path, kind), key in keys.items() if key not in cache.entries})
    if todo:
        processes = processes or max(1, min(len(todo) // 50 + 1, os.cpu_count() or 1))
        context = multiprocessing.get_context("spawn")
        with Progress(TextColumn("analysing images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("analyse", total=len(todo))
            with context.Pool(processes, initializer=_init_worker, initargs=(models,)) as pool:
                for key, status, vector, quality in pool.imap_unordered(_task, todo, chunksize=8):
                    cache.add(key, Analysed(status, np.frombuffer(vector, "<f4") if vector else None, quality))
                    bar.advance(task)
    return {item: cache.entries[key] for item, key in keys.items()}

"""`make bench` section scenes: the scene image of each embedded shot (lfr_faces.scenes), its cost and
its blur, on the crowd clip (docs/decisions/0020).

- cost: detect's code at 5 fps on the 720p crowd clip (decode, YuNet, quality, crops, tracks, shots),
  as it ran before scenes (faces found from min_score) and as it runs now (found down to the blur's
  score, to cover them), each embedded shot embedded as embed does (decode crop, align, SFace), and
  its scene composed and sealed as detect does. CPU time of this process (every thread), medians over
  the rounds: per frame, per embedded shot and per scene; the CPU per embedded shot without scenes
  and with them, and the ratio (target: at most 1.05). Beside it the bytes a scene adds to a shot's
  record, against the frame that would have to travel for another stage to compose it, and the cost
  of a scene with 30 other faces in it.
- blur: the check of decision 0020 on the clip at its own 1080p, as the e2e test streams it: every
  face detect would embed is taken as the tracked one, its scene composed, and every other face in the
  scene checked: does YuNet find a face there, and how does SFace score the covered face against its
  original? The full run compares each way of blurring (no blur, mosaics of 8 to 1 cells, flat grey,
  flat black, the shipped solid patch at two paddings); the quick run checks the shipped one.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from lfr_bench.plan import DATA, MODELS, Plan
from lfr_bench.stages import crowd_720p, frames

CROWD = DATA / "video" / "facenet_pytorch_video.mp4"
# A blurred face's box is said found by YuNet when a detection's centre falls in it or overlaps it by
# this IoU: either would tell a viewer where a face was, and might help recover it.
_FOUND_IOU = 0.2
_CHECK_SCORES = (0.3, 0.6)  # YuNet's score thresholds the check counts faces at: detect's and lower


def _models(input_width: int = 640):
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder

    detector = build_detector("yunet", MODELS / "yunet-2023mar.onnx", input_width=input_width)
    return detector, build_embedder("sface", MODELS / "sface-2021dec.onnx")


def bench_scenes(plan: Plan) -> dict:
    out = {"cost": cost(plan)}
    out["blur"] = blur_check(None if not plan.quick else ("solid",), frames_every=5 if not plan.quick else 25)
    return out


def cost(plan: Plan) -> dict:
    from lfr_detect.settings import DetectSettings
    from lfr_faces import images, scenes
    from lfr_faces.crops import embed_crops, faces_of
    from lfr_faces.quality import QualityPolicy, shot_quality
    from lfr_faces.tracking import ShotPolicy, Tracker
    from lfr_platform import sealing

    settings = DetectSettings.model_construct()
    detector, embedder = _models(settings.input_width)
    policy = QualityPolicy(min_size_px=settings.min_face_px, min_sharpness=settings.min_sharpness)
    clip = frames(crowd_720p(plan.out))[::5][: plan.stage_frames or None]  # 25 fps sampled at 5
    jpegs = [images.encode_jpeg(f, 90) for f in clip]
    key = sealing.new_data_key()

    def detect(jpeg: bytes, lowest: float, tracker: Tracker, shots: ShotPolicy, t: float):
        """detect's work on one frame: the decoded frame, every box found, the faces embedded."""
        image = images.decode_jpeg(jpeg, max_bytes=10**8, max_pixels=10**8)
        found = detector.detect(image, lowest)
        accepted, _ = faces_of([d for d in found if d.score >= settings.min_score], image, policy)
        tracks = tracker.assign("bench", [f.box for f in accepted], t).tracks
        chosen = [
            face
            for face, track in zip(accepted, tracks, strict=True)
            if shots.choose(track, shot_quality(face.quality, face.score), t, face.quality.yaw) is None
        ]
        return image, [d.box for d in found], chosen

    rounds = 2 if plan.quick else 5
    before, after, embed_cpu, scene_cpu, scene_bytes, statuses = [], [], [], [], [], []
    shots = 0
    for _ in range(rounds):
        runs = {
            lowest: (Tracker(), ShotPolicy(settings.shot_interval_s, settings.shot_budget))
            for lowest in (settings.min_score, min(settings.min_score, scenes.BLUR_MIN_SCORE))
        }
        for i, jpeg in enumerate(jpegs):
            samples = {}
            for lowest, (tracker, policy_) in runs.items():
                started = time.process_time()
                result = detect(jpeg, lowest, tracker, policy_, i / 5)
                samples[lowest] = time.process_time() - started
            before.append(samples[settings.min_score])
            after.append(samples[min(settings.min_score, scenes.BLUR_MIN_SCORE)])
            image, boxes, chosen = result  # as detect runs now
            for face in chosen:
                started = time.process_time()
                embed_crops(embedder, [(face.jpeg, face.landmarks)])
                embed_cpu.append(time.process_time() - started)
                started = time.process_time()
                scene = scenes.compose_scene(image, face.box, [b for b in boxes if b != face.box])
                if isinstance(scene, scenes.Scene):
                    sealing.seal(key, scene.jpeg, "dep-bench")
                scene_cpu.append(time.process_time() - started)
                statuses.append(scene.reason if isinstance(scene, scenes.NoScene) else "composed")
                if isinstance(scene, scenes.Scene):
                    scene_bytes.append(len(scene.jpeg))
            shots += len(chosen)
    if not shots or not scene_bytes:
        raise RuntimeError("no face embedded, or no scene composed, from the crowd clip")
    frames_per_shot = len(before) / shots
    without_ms = (statistics.median(before) * frames_per_shot + statistics.median(embed_cpu)) * 1e3
    with_ms = (statistics.median(after) * frames_per_shot + statistics.median(embed_cpu)) * 1e3
    with_ms += statistics.median(scene_cpu) * 1e3
    result = {
        "frames": len(jpegs),
        "embedded_shots_per_round": shots // rounds,
        "detect_per_frame_ms_without": round(statistics.median(before) * 1e3, 2),
        "detect_per_frame_ms_with": round(statistics.median(after) * 1e3, 2),
        "embed_per_shot_ms": round(statistics.median(embed_cpu) * 1e3, 2),
        "scene_per_shot_ms": round(statistics.median(scene_cpu) * 1e3, 2),
        "scene_per_shot_p90_ms": round(float(np.percentile(scene_cpu, 90)) * 1e3, 2),
        "cpu_per_embedded_shot_ms_without": round(without_ms, 2),
        "cpu_per_embedded_shot_ms_with": round(with_ms, 2),
        "ratio": round(with_ms / without_ms, 4),
        "share_composed": round(statuses.count("composed") / len(statuses), 3),
        "scene_kib": round(statistics.median(scene_bytes) / 1024, 1),
        "scene_kib_max": round(max(scene_bytes) / 1024, 1),
        "frame_kib": round(statistics.median(len(j) for j in jpegs) / 1024, 1),
        "crowd_of_30_ms": _crowd_of_30(clip[len(clip) // 2]),
    }
    print(
        f"scene per embedded shot (compose + cover + JPEG + seal), 720p crowd at 5 fps: median "
        f"{result['scene_per_shot_ms']} ms CPU (p90 {result['scene_per_shot_p90_ms']}); CPU per embedded shot "
        f"{result['cpu_per_embedded_shot_ms_without']} ms without scenes, {result['cpu_per_embedded_shot_ms_with']} "
        f"ms with: ratio {result['ratio']} (target <= 1.05); {result['share_composed']:.0%} of shots composed; "
        f"a scene is {result['scene_kib']} KiB (max {result['scene_kib_max']}), the frame it comes from "
        f"{result['frame_kib']} KiB; a scene with 30 other faces {result['crowd_of_30_ms']} ms"
    )
    return result


def _crowd_of_30(frame: np.ndarray) -> float:
    """CPU ms (median of 20) of a scene with 30 other faces in it, a grid around a face on a real frame."""
    from lfr_faces import scenes

    face = (600.0, 150.0, 60.0, 75.0)  # its scene: 180 x 300 px of the 720p frame
    grid = [(572.0 + 30 * (i % 6), 115.0 + 45 * (i // 6), 20.0, 25.0) for i in range(42)]
    crowd = [b for b in grid if scenes.overlap(b, face) == 0][:30]
    samples = []
    for _ in range(20):
        started = time.process_time()
        scene = scenes.compose_scene(frame, face, crowd)
        samples.append(time.process_time() - started)
    assert isinstance(scene, scenes.Scene) and scene.blurred == 30, scene
    return round(statistics.median(samples) * 1e3, 2)


def _mosaic(cells: int):
    """A mosaic of `cells` cells across the padded face, smoothed between cell centres: the classic blur."""

    def fill(patch: np.ndarray, face) -> np.ndarray:
        import cv2

        height, width = patch.shape[:2]
        cell = max(1.0, max(width, height) / cells)
        small = cv2.resize(
            patch, (max(1, round(width / cell)), max(1, round(height / cell))), interpolation=cv2.INTER_AREA
        )
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)

    return fill


def _fills() -> dict[str, tuple]:
    """Each way of blurring compared, weakest first (name: (fill, padding)); "solid" is the shipped one."""
    from lfr_faces import scenes

    def flat(colour):
        return lambda patch, face: np.broadcast_to(np.array(colour, np.uint8), patch.shape)

    return {
        "none": (lambda patch, face: patch, scenes.BLUR_PADDING),
        **{f"mosaic_{n}": (_mosaic(n), scenes.BLUR_PADDING) for n in (8, 4, 2, 1)},
        "flat_grey": (flat((128, 128, 128)), scenes.BLUR_PADDING),
        "flat_black": (flat((0, 0, 0)), scenes.BLUR_PADDING),
        "solid_padding_0.25": (scenes.solid, 0.25),
        "solid": (scenes.solid, scenes.BLUR_PADDING),
    }


def blur_check(names: tuple[str, ...] | None = None, frames_every: int = 5) -> dict:
    """For each way of blurring (`names` of _fills(); None: every one), over every face detect would
    embed in the crowd clip's frames (1080p, one frame in `frames_every`) taken as the tracked one: the
    other faces in its scene (at least half inside it), how many YuNet still finds there (at each of
    _CHECK_SCORES) and how SFace scores each blurred face against its original. Scores are given for
    the faces detect would identify (score >= min_score) and for every face blurred (>= BLUR_MIN_SCORE,
    faces half hidden and false detections too, whose own vectors are poor)."""
    import cv2

    from lfr_detect.settings import DetectSettings
    from lfr_faces import alignment, images, scenes
    from lfr_faces.crops import crop, embed_crops, faces_of
    from lfr_faces.frames import JPEG_QUALITY
    from lfr_faces.quality import QualityPolicy

    settings = DetectSettings.model_construct()
    detector, embedder = _models(settings.input_width)
    native, _ = _models(0)  # a scene is at most 480 px: YuNet at its own size, as anyone would run it
    policy = QualityPolicy(min_size_px=settings.min_face_px, min_sharpness=settings.min_sharpness)
    capture = cv2.VideoCapture(str(CROWD))
    clip = []
    while (frame := capture.read())[0]:
        clip.append(frame[1])
    if not clip:
        raise FileNotFoundError(f"no frame read from {CROWD} (LFR_DATA_DIR)")
    cases = []  # (frame, tracked face, every other face of the frame)
    originals: dict[tuple[int, tuple], np.ndarray] = {}
    for index, frame in enumerate(clip[::frames_every]):
        image = images.decode_jpeg(images.encode_jpeg(frame, JPEG_QUALITY), max_bytes=10**8, max_pixels=10**8)
        every = detector.detect(image, scenes.BLUR_MIN_SCORE)
        accepted, _ = faces_of([d for d in every if d.score >= settings.min_score], image, policy)
        for face in accepted:
            cases.append((index, image, face, [d for d in every if d.box != face.box]))
        for detection in every:  # each face as the live path would embed it, whatever its quality
            jpeg, _, landmarks = crop(image, detection)
            originals[(index, detection.box)] = embed_crops(embedder, [(jpeg, landmarks)])[0]
    grey = embedder.embed([np.full((112, 112, 3), 128, np.uint8)])[0]
    fills = _fills()
    out: dict[str, object] = {
        "tracked_faces": len(cases),
        "blur_min_score": scenes.BLUR_MIN_SCORE,
        "identified_min_score": settings.min_score,
    }
    for name in names or tuple(fills):
        fill, padding = fills[name]
        found = dict.fromkeys(_CHECK_SCORES, 0)
        identified, every_score, no_scene = [], [], 0
        floor: dict[str, list[float]] = {"identified": [], "every": []}
        for index, image, face, others in cases:
            scene = scenes.compose_scene(image, face.box, [o.box for o in others], padding=padding, fill=fill)
            if isinstance(scene, scenes.NoScene):
                no_scene += 1
                continue
            pixels = images.decode_jpeg(scene.jpeg, max_bytes=10**7, max_pixels=10**7)
            x0, y0, w0, _ = scene.region
            scale = scene.width / w0
            detections = native.detect(pixels, min(_CHECK_SCORES))
            for other in others:
                x, y, w, h = other.box
                box = ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)
                if _inside_share(box, scene.width, scene.height) < 0.5:
                    continue  # mostly outside the scene: too little of it to find or to score
                for threshold in _CHECK_SCORES:
                    found[threshold] += any(d.score >= threshold and _hits(d.box, box) for d in detections)
                landmarks = (other.landmarks - np.array([x0, y0], np.float32)) * scale
                original = originals[(index, other.box)]
                score = float(embedder.embed([alignment.align(pixels, landmarks)])[0] @ original)
                every_score.append(score)
                floor["every"].append(float(grey @ original))
                if other.score >= settings.min_score:
                    identified.append(score)
                    floor["identified"].append(float(grey @ original))
        row = {
            "other_faces": len(every_score),
            **{f"yunet_found_at_{t}": n for t, n in found.items()},
            **_scores("identified", identified),
            **_scores("every", every_score),
            "no_scene_face_not_found": no_scene,
        }
        if name == "none":  # the floor: a flat grey square in place of each face, against the same originals
            row.update(_scores("grey_square_identified", floor["identified"]))
            row.update(_scores("grey_square_every", floor["every"]))
        out[name] = row
        print(f"blur {name}: {row}")
    return out


def _scores(prefix: str, scores: list[float]) -> dict:
    return {
        f"{prefix}_n": len(scores),
        f"{prefix}_sface_max": round(max(scores), 3) if scores else None,
        f"{prefix}_sface_median": round(statistics.median(scores), 3) if scores else None,
        f"{prefix}_at_or_over_0.30": sum(s >= 0.30 for s in scores),
    }


def _inside_share(box, width: int, height: int) -> float:
    x, y, w, h = box
    inside = max(0.0, min(width, x + w) - max(0.0, x)) * max(0.0, min(height, y + h) - max(0.0, y))
    return inside / (w * h) if w * h > 0 else 0.0


def _hits(a, b) -> bool:
    """Detection `a` at face `b`: its centre inside b, or IoU at least _FOUND_IOU."""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    if b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]:
        return True
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return union > 0 and inter / union >= _FOUND_IOU

"""`make bench` section embed: the embed stage's rate against its model's, per core the stage gets.

1. A backlog: detect, with every face embedded (LFR_DETECT_BEST_SHOTS=false), turns `cameras` x
   `seconds` of the 720p crowd clip at 5 fps into faces.detected.v1 records while no embed runs.
   Their deployment's watchlist is enrolled and reviewed (lfr_bench.deployment): the stages admit
   nothing of a deployment whose watchlist was not reviewed, and the backlog would be empty.
2. The stage: one embed process starts and drains the backlog alone (the broker and Redis beside it,
   idle otherwise). Its rate is the faces it embedded over the CPU seconds its process used (from
   /proc), and over wall-clock seconds.
3. The model: the same crops through `embed_crops` (crop decode, alignment, SFace) in this process,
   in batches of the stage's size, one intra-op thread: faces per CPU second.

The ratio of (2) to (3) is what the stage keeps of its model, whatever else shares the machine.
A backlog of no face is an error, never a rate of 0.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from lfr_bench.deployment import open_deployment
from lfr_bench.plan import MODELS
from lfr_contracts import FACES_DETECTED, FRAMES_CAPTURED
from lfr_stack.stack import Stack, total

_TICKS = os.sysconf("SC_CLK_TCK")
# How often a stage reports its consumer lag (lfr_platform.stage): two reports apart, a 0 is current.
_LAG_REPORT_S = 1.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def lag(samples: dict, topic: str) -> float | None:
    """Records of `topic` the stage has not processed yet, over its partitions; None before it reports."""
    lags = [v for (n, lbl), v in samples.items() if n == "lfr_consumer_lag_records" and dict(lbl).get("topic") == topic]
    return sum(lags) if lags else None


def _backlog(stack: Stack, deployment_id: str, video: Path, cameras: int, seconds: float) -> float:
    """Faces waiting on faces.detected.v1 once ingest is done and detect has read every frame."""
    stack.start_service(
        "ingest",
        van_id="van-bench",
        cameras=[
            {"camera_id": f"cam-{i}", "deployment_id": deployment_id, "source": str(video), "fps": 5.0, "loop": True}
            for i in range(cameras)
        ],
    )
    stack.wait_ready(("ingest",), 60)
    time.sleep(seconds)
    published = total(stack.scrape("ingest"), "lfr_frames_published_total")
    stack.stop_service("ingest")
    if not published:
        raise RuntimeError(f"ingest published no frame in {seconds} s; see {stack.log_dir / 'ingest.log'}")
    topic = FRAMES_CAPTURED.name(stack.state.topic_prefix)
    timeout_s = 120 + 10 * seconds * cameras  # detect reads about 5 frames a second at worst
    deadline, previous = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:  # detect done: nothing left to read, its count settled
        detect = stack.scrape("detect")
        faces = total(detect, "lfr_faces_detected_total") - total(detect, "lfr_faces_rejected_total")
        faces -= total(detect, "lfr_faces_not_embedded_total")  # none while every face is embedded
        if lag(detect, topic) == 0 and faces == previous:
            if not faces:
                raise RuntimeError(f"detect found no face in {published:.0f} frames; see {stack.log_dir}")
            return faces
        previous = faces
        time.sleep(2 * _LAG_REPORT_S)
    raise RuntimeError(f"detect had not read every frame after {timeout_s} s; see {stack.log_dir / 'detect.log'}")


def _drain(stack: Stack, backlog: float) -> tuple[float, float, float]:
    """Start embed alone on the backlog; (faces embedded, wall seconds, CPU seconds) until it is drained."""
    stack.start_service("embed")
    stack.wait_ready(("embed",), 120)
    pid = stack.pid("embed")
    topic = FACES_DETECTED.name(stack.state.topic_prefix)
    started, cpu_started = time.monotonic(), cpu_seconds(pid)
    deadline = started + 120 + backlog / 2  # far beyond the slowest rate measured (about 20 faces/s)
    last, moved = 0.0, started
    while True:
        samples = stack.scrape("embed")
        embedded = total(samples, "lfr_faces_embedded_total")
        now = time.monotonic()
        moved, last = (now, embedded) if embedded != last else (moved, last)
        # Every face embedded; or none left to read and none embedded for a while (some dead-lettered).
        if embedded >= backlog or (lag(samples, topic) == 0 and now - moved > 2 * _LAG_REPORT_S):
            wall, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu_started
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"embed embedded {embedded:.0f} of {backlog:.0f} faces in {deadline - started:.0f} s")
        time.sleep(0.2)
    if not embedded:
        raise RuntimeError(f"embed embedded none of {backlog:.0f} faces; see {stack.log_dir / 'embed.log'}")
    return embedded, wall, cpu


def _model_rate(video: Path, batch: int, faces_wanted: int) -> float:
    """Faces per CPU second of embed's own functions on the clip's crops, batch by batch."""
    import cv2

    from lfr_faces.crops import embed_crops, find_faces
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder
    from lfr_faces.quality import QualityPolicy

    detector = build_detector("yunet", MODELS / "yunet-2023mar.onnx", input_width=640)
    embedder = build_embedder("sface", MODELS / "sface-2021dec.onnx", max_batch=batch)
    crops = []
    capture = cv2.VideoCapture(str(video))
    while len(crops) < faces_wanted and (frame := capture.read())[0]:
        found, _ = find_faces(detector, frame[1], QualityPolicy(), 0.6)
        crops += [(f.jpeg, f.landmarks) for f in found]
    capture.release()
    rates = []
    for _ in range(3):
        started = time.process_time()
        for i in range(0, len(crops), batch):
            embed_crops(embedder, crops[i : i + batch])
        rates.append(len(crops) / (time.process_time() - started))
    return statistics.median(rates)


def run(
    video: Path, out: Path, data_dir: Path, cameras: int = 4, seconds: float = 30.0, model_faces: int = 192
) -> dict:
    from lfr_embed.settings import EmbedSettings

    batch = EmbedSettings.model_construct().max_batch
    stack = Stack(out / "embed-stack", extra_env={"LFR_DETECT_BEST_SHOTS": "false"})
    try:
        state = stack.start(services=("deployments", "detect"))
        deployment_id = open_deployment(state, data_dir)
        backlog = _backlog(stack, deployment_id, video, cameras, seconds)
        stack.stop_service("detect")  # the stage measured alone
        embedded, wall, cpu = _drain(stack, backlog)
    finally:
        stack.stop()
    model = _model_rate(video, batch, model_faces)
    result = {
        "backlog_faces": int(backlog),
        "embedded_faces": int(embedded),
        "stage_faces_per_s": round(embedded / wall, 1),
        "stage_faces_per_cpu_s": round(embedded / cpu, 1),
        "stage_cores_used": round(cpu / wall, 2),
        "model_faces_per_cpu_s": round(model, 1),
        "ratio_per_cpu_s": round(embedded / cpu / model, 3),
        "batch": batch,
    }
    print(
        f"embed stage alone, draining {result['backlog_faces']} faces (every face): {result['stage_faces_per_s']} "
        f"faces/s on {result['stage_cores_used']} cores = {result['stage_faces_per_cpu_s']} faces per CPU second; "
        f"the model alone (crop decode + align + SFace, batch {batch}): {result['model_faces_per_cpu_s']} faces per "
        f"CPU second; the stage keeps {result['ratio_per_cpu_s']:.2f} of it"
    )
    return result

"""`make bench` section embed: the embed stage's rate against its model's, per core the stage gets.

1. A backlog: detect, with every face embedded (LFR_DETECT_BEST_SHOTS=false), turns `cameras` x
   `seconds` of the 720p crowd clip at 5 fps into faces.detected.v1 records while no embed runs.
2. The stage: one embed process starts and drains the backlog alone (the broker and Redis beside it,
   idle otherwise). Its rate is the faces it embedded over the CPU seconds its process used (from
   /proc), and over wall-clock seconds.
3. The model: the same crops through `embed_crops` (crop decode, alignment, SFace) in this process,
   in batches of the stage's size, one intra-op thread: faces per CPU second.

The ratio of (2) to (3) is what the stage keeps of its model, whatever else shares the machine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb
from lfr_contracts.clients import DeploymentClient
from lfr_stack.stack import Stack, total

OUT = Path("var/bench")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _backlog(stack: Stack, deployment_id: str, video: Path, cameras: int, seconds: float) -> float:
    """Faces waiting on faces.detected.v1 once ingest and detect are done."""
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
    stack.stop_service("ingest")
    previous = -1.0
    while True:  # detect drained: its count stops moving
        detect = stack.scrape("detect")
        faces = total(detect, "lfr_faces_detected_total") - total(detect, "lfr_faces_rejected_total")
        if faces == previous:
            return faces
        previous = faces
        time.sleep(2)


def _model_rate(video: Path, batch: int, faces_wanted: int = 192) -> float:
    """Faces per CPU second of embed's own functions on the clip's crops, batch by batch."""
    import cv2

    from lfr_faces.crops import embed_crops, find_faces
    from lfr_faces.detectors import build_detector
    from lfr_faces.embedders import build_embedder
    from lfr_faces.quality import QualityPolicy

    models = Path(os.environ.get("LFR_MODELS_DIR", "models"))
    detector = build_detector("yunet", models / "yunet-2023mar.onnx", input_width=640)
    embedder = build_embedder("sface", models / "sface-2021dec.onnx", max_batch=batch)
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


def run(video: Path, cameras: int = 4, seconds: float = 30.0) -> dict:
    from lfr_embed.settings import EmbedSettings

    batch = EmbedSettings.model_construct().max_batch
    with tempfile.TemporaryDirectory():
        stack = Stack(OUT / "embed-stack", extra_env={"LFR_DETECT_BEST_SHOTS": "false"})
        try:
            state = stack.start(services=("deployments", "detect"))
            with DeploymentClient(state.grpc_address, state.tokens["manager"]) as client:
                request = pb.CreateDeploymentRequest(
                    name="bench",
                    purpose="benchmark",
                    authorising_officer="bench",
                    location="bench",
                    where="intelligence_led",
                    cameras=[],
                )
                request.planned_end.FromSeconds(int(time.time() + 3600))
                deployment_id = client.create(request).deployment_id
            backlog = _backlog(stack, deployment_id, video, cameras, seconds)
            stack.stop_service("detect")  # the stage measured alone
            stack.start_service("embed")
            stack.wait_ready(("embed",), 120)
            pid = stack.pid("embed")
            started, cpu_started = time.monotonic(), cpu_seconds(pid)
            while True:
                embedded = total(stack.scrape("embed"), "lfr_faces_embedded_total")
                if embedded >= backlog:
                    break
                time.sleep(0.2)
            wall, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu_started
        finally:
            stack.stop()
    model = _model_rate(video, batch)
    result = {
        "backlog_faces": int(backlog),
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

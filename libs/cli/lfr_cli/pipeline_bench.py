"""The pipeline benchmark: the services as processes, a 720p camera, rates from /metrics.

1. Capacity: the camera streams at 25 fps, more than the machine can process; the rate at which
   detect takes frames off its topic, and embed and match keep up, is what the pipeline sustains.
2. Latency: the camera streams at 80% of that rate, beside a second camera looping the enrolled
   person's clip (so alerts are raised); capture-to-match and capture-to-alert in steady state, from
   the services' histograms (interpolated within their buckets, so approximate).

Run as configured: `replicas` processes of detect and embed, and either best shots (the default) or
every face embedded (`every_face`, as the pipeline worked before tracks).
"""

from __future__ import annotations

import time
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.client import DeploymentClient
from lfr_cli.demo import _scrape, _total
from lfr_cli.stack import Stack
from lfr_cli.watchlist import iter_messages, scan

OUT = Path("var/bench")
VAN, CAMERA, PERSON = "van-bench", "cam-1", "cam-person"


def _quantile(samples: dict, name: str, q: float) -> float | None:
    buckets = sorted((float(dict(lbl)["le"]), v) for (n, lbl), v in samples.items() if n == f"{name}_bucket")
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    target, previous_edge, previous_count = q * total, 0.0, 0.0
    for edge, count in buckets:
        if count >= target:
            if edge == float("inf"):
                return previous_edge
            share = (target - previous_count) / max(count - previous_count, 1e-9)
            return previous_edge + share * (edge - previous_edge)
        previous_edge, previous_count = edge, count
    return None


def _delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _measure(stack: Stack, seconds: float) -> dict[str, dict]:
    names = ("ingest", "detect", "embed", "match", "alert")
    before = {n: _scrape(stack, n) for n in names}
    time.sleep(seconds)
    after = {n: _scrape(stack, n) for n in names}
    return {n: _delta(before[n], after[n]) for n in names}


def _camera(stack: Stack, deployment_id: str, video: Path, fps: float, enrolled: Path | None = None) -> None:
    cameras = [{"camera_id": CAMERA, "deployment_id": deployment_id, "source": str(video), "fps": fps, "loop": True}]
    if enrolled is not None:
        cameras.append(
            {"camera_id": PERSON, "deployment_id": deployment_id, "source": str(enrolled), "fps": 5.0, "loop": True}
        )
    stack.stop_service("ingest")
    stack.start_service("ingest", van_id=VAN, cameras=cameras)
    stack.wait_ready(("ingest",), 60)


def _start(data_dir: Path, tmp: Path, replicas: int, every_face: bool) -> tuple[Stack, str]:
    """A fresh stack (empty topics) with a deployment whose watchlist is the demo's."""
    # Every face embedded: a budget no track reaches and no quality gain needed (the pipeline before tracks).
    env = {"LFR_DETECT_SHOT_BUDGET": "100000", "LFR_DETECT_SHOT_MIN_GAIN": "0"} if every_face else {}
    stack = Stack(OUT / "stack", extra_env=env)
    state = stack.start(services=("detect", "embed", "match", "alert"), replicas=replicas)
    with DeploymentClient(state.grpc_address, state.tokens["manager"]) as client:
        request = pb.CreateDeploymentRequest(
            name="bench",
            purpose="benchmark",
            authorising_officer="bench",
            cameras=[pb.CameraCoverage(van_id=VAN, camera_id=c) for c in (CAMERA, PERSON)],
        )
        request.planned_end.FromSeconds(int(time.time() + 3600))
        deployment_id = client.create(request).deployment_id
        watchlist = demo_data.build_watchlist(data_dir, tmp / "watchlist")
        list(client.enrol(deployment_id, iter_messages(scan(watchlist, category="bench", approved_by="bench"))))
    return stack, deployment_id


def run(video: Path, data_dir: Path, seconds: float, replicas: int = 1, every_face: bool = False) -> dict:
    import tempfile

    mode = f"{replicas} replica(s), {'every face embedded' if every_face else 'best shots'}"
    with tempfile.TemporaryDirectory() as tmp:
        stack, deployment_id = _start(data_dir, Path(tmp), replicas, every_face)
        try:
            prefix = stack.state.topic_prefix
            _camera(stack, deployment_id, video, 25.0)
            time.sleep(15)  # warm-up: models loaded, groups joined, queues filled
            m = _measure(stack, seconds)
            detected = _total(m["detect"], "lfr_faces_detected_total")
            capacity = {
                "offered_fps": 25.0,
                "ingest_published_fps": round(_total(m["ingest"], "lfr_frames_published_total") / seconds, 2),
                "detect_frames_per_s": round(_total(m["detect"], "lfr_frames_processed_total") / seconds, 2),
                "faces_per_s": round(detected / seconds, 2),
                "tracks_per_s": round(_total(m["detect"], "lfr_tracks_started_total") / seconds, 2),
                "embed_faces_per_s": round(_total(m["embed"], "lfr_faces_embedded_total") / seconds, 2),
                "match_frames_per_s": round(
                    _total(m["match"], "lfr_messages_consumed_total", topic=f"{prefix}faces.embedded.v1") / seconds, 2
                ),
                "match_faces_per_s": round(_total(m["match"], "lfr_faces_scanned_total") / seconds, 2),
                "embed_backlog_growing": _total(m["embed"], "lfr_messages_consumed_total")
                < 0.95 * _total(m["detect"], "lfr_messages_produced_total"),
                "window_s": seconds,
            }
        finally:
            stack.stop()
        print(
            f"[{mode}] capacity at 25 fps offered: ingest {capacity['ingest_published_fps']} fps, detect "
            f"{capacity['detect_frames_per_s']} frames/s ({capacity['faces_per_s']} faces/s, "
            f"{capacity['tracks_per_s']} tracks/s), embed {capacity['embed_faces_per_s']} faces/s, match "
            f"{capacity['match_faces_per_s']} faces/s"
        )
        # A fresh stack: the capacity run leaves a backlog that would be measured as latency.
        sustainable = max(1.0, round(0.8 * capacity["detect_frames_per_s"], 1))
        enrolled = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
        stack, deployment_id = _start(data_dir, Path(tmp), replicas, every_face)
        try:
            _camera(stack, deployment_id, video, sustainable, enrolled)
            time.sleep(15)
            m = _measure(stack, seconds)
            latency = {
                "offered_fps": sustainable,
                "detect_frames_per_s": round(_total(m["detect"], "lfr_frames_processed_total") / seconds, 2),
                **{
                    f"capture_to_{what}_p{int(q * 100)}_s": _round(
                        _quantile(m[what], f"lfr_capture_to_{what}_seconds", q)
                    )
                    for what in ("match", "alert")
                    for q in (0.5, 0.95, 0.99)
                },
                "alerts": int(_total(m["alert"], "lfr_alerts_total")),
                "search_p50_ms": _round(1e3 * (_quantile(m["match"], "lfr_watchlist_search_seconds", 0.5) or 0)),
            }
        finally:
            stack.stop()
    print(
        f"[{mode}] at {sustainable} fps offered (+ the enrolled person's camera): capture-to-match p50 "
        f"~{latency['capture_to_match_p50_s']} s, p95 ~{latency['capture_to_match_p95_s']} s, p99 "
        f"~{latency['capture_to_match_p99_s']} s; capture-to-alert p50 ~{latency['capture_to_alert_p50_s']} s, "
        f"p99 ~{latency['capture_to_alert_p99_s']} s ({latency['alerts']} alerts)"
    )
    return {"mode": mode, "capacity": capacity, "steady": latency}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

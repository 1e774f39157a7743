"""The pipeline benchmark: the services as processes, a 720p camera, rates from /metrics.

1. Capacity: 16 cameras (the full run's; lfr_bench.plan) stream the crowd at 5 fps each (80
   frames/s), more than the machine can process (the clip is stored at 5 fps, so that ingest decodes
   only the frames it samples).
   What the pipeline sustains is what comes out of its slowest stage: detect's rate, scaled by the
   share of their input embed and match keep up with (a stage that falls behind sees its backlog
   grow and processes only that share).
2. Latency: cameras at 5 fps, as many as make 80% of that capacity; once they run in steady state,
   the enrolled person passes one camera after another (each pass a camera of its own van, started
   every few seconds: a new track, so a new alert). Capture-to-match over every face and
   capture-to-alert over those alerts, from the services' histograms (interpolated within their
   buckets, so approximate; the number of alerts is printed beside them).

Run as configured: `replicas` processes of each stage (detect, embed, match, alert), and either best
shots (the default) or every face embedded (`every_face`, as the pipeline worked before tracks).
"""

from __future__ import annotations

import time
from pathlib import Path

from lfr_bench.deployment import open_deployment
from lfr_bench.plan import Plan
from lfr_cli import demo_data
from lfr_stack.stack import Stack, total

VAN, CAMERA, PERSON = "van-bench", "cam", "cam-person"


def _quantile(samples: dict, name: str, q: float) -> float | None:
    buckets = sorted((float(dict(lbl)["le"]), v) for (n, lbl), v in samples.items() if n == f"{name}_bucket")
    observed = buckets[-1][1] if buckets else 0
    if not observed:
        return None
    target, previous_edge, previous_count = q * observed, 0.0, 0.0
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


def _measure(stack: Stack, seconds: float, during=None, times: int = 0) -> dict[str, dict]:
    """Rates over `seconds`; `during(i)` is called `times` times, evenly spread over them."""
    names = ("ingest", "detect", "embed", "match", "alert")
    before = {n: stack.scrape(n) for n in names}
    for i in range(times):
        during(i)
        time.sleep(seconds / times)
    time.sleep(0 if times else seconds)
    after = {n: stack.scrape(n) for n in names}
    return {n: _delta(before[n], after[n]) for n in names}


def _person_passes(stack: Stack, deployment_id: str, enrolled: Path):
    """The enrolled person's i-th pass: their clip, once, on a camera of its own van."""

    def walk_by(i: int) -> None:
        camera = {"camera_id": PERSON, "deployment_id": deployment_id, "source": str(enrolled), "fps": 5.0}
        stack.start_service(f"ingest-{i + 2}", van_id=f"{VAN}-pass-{i + 1}", cameras=[camera])

    return walk_by


def _camera(stack: Stack, deployment_id: str, video: Path, fps: float, count: int = 1) -> None:
    cameras = [
        {"camera_id": f"{CAMERA}-{i}", "deployment_id": deployment_id, "source": str(video), "fps": fps, "loop": True}
        for i in range(1, count + 1)
    ]
    stack.stop_service("ingest")
    stack.start_service("ingest", van_id=VAN, cameras=cameras)
    stack.wait_ready(("ingest",), 60)


def _start(out: Path, data_dir: Path, replicas: int, every_face: bool) -> tuple[Stack, str]:
    """A fresh stack (empty topics) with a reviewed deployment whose watchlist is the demo's."""
    # Every face embedded: the pipeline as it was before tracks.
    env = {"LFR_DETECT_BEST_SHOTS": "false"} if every_face else {}
    stack = Stack(out / "stack", extra_env=env)
    state = stack.start(services=("deployments", "detect", "embed", "match", "alert"), replicas=replicas)
    try:
        return stack, open_deployment(state, data_dir)
    except BaseException:
        stack.stop()
        raise


def run(
    video: Path,
    data_dir: Path,
    plan: Plan,
    replicas: int = 1,
    every_face: bool = False,
    latency: bool = True,
) -> dict:
    """`plan`: its window (seconds measured), warm-up and the cameras offered for capacity."""
    seconds, cameras_offered = plan.window_s, plan.capacity_cameras
    mode = f"{replicas} replica(s), {'every face embedded' if every_face else 'best shots'}"
    stack, deployment_id = _start(plan.out, data_dir, replicas, every_face)
    try:
        prefix = stack.state.topic_prefix
        _camera(stack, deployment_id, video, 5.0, count=cameras_offered)
        time.sleep(plan.warm_up_s)  # models loaded, groups joined, queues filled
        m = _measure(stack, seconds)
        detected = total(m["detect"], "lfr_messages_produced_total", topic=f"{prefix}faces.detected.v1")
        embedded = total(m["embed"], "lfr_messages_produced_total", topic=f"{prefix}faces.embedded.v1")
        kept_up = min(1.0, total(m["embed"], "lfr_messages_consumed_total") / max(detected, 1)) * min(
            1.0, total(m["match"], "lfr_messages_consumed_total") / max(embedded, 1)
        )
        frames = total(m["detect"], "lfr_frames_processed_total") / seconds
        # Faces good enough to identify (those found, less those too small or blurred): what the raw
        # model rate counts too.
        faces = total(m["detect"], "lfr_faces_detected_total") - total(m["detect"], "lfr_faces_rejected_total")
        capacity = {
            "offered_fps": 5.0 * cameras_offered,
            "ingest_published_fps": round(total(m["ingest"], "lfr_frames_published_total") / seconds, 2),
            "detect_frames_per_s": round(frames, 2),
            "detect_faces_per_s": round(faces / seconds, 2),
            "tracks_per_s": round(total(m["detect"], "lfr_tracks_started_total") / seconds, 2),
            "embed_faces_per_s": round(total(m["embed"], "lfr_faces_embedded_total") / seconds, 2),
            "match_faces_per_s": round(total(m["match"], "lfr_faces_scanned_total") / seconds, 2),
            "share_kept_up": round(kept_up, 3),
            "sustained_frames_per_s": round(frames * kept_up, 2),
            "sustained_faces_per_s": round(faces / seconds * kept_up, 2),
            "window_s": seconds,
        }
    finally:
        stack.stop()
    print(
        f"[{mode}] capacity, {cameras_offered} cameras x 5 fps offered: detect "
        f"{capacity['detect_frames_per_s']} frames/s "
        f"({capacity['detect_faces_per_s']} faces/s, {capacity['tracks_per_s']} tracks/s), embed "
        f"{capacity['embed_faces_per_s']} faces/s, match {capacity['match_faces_per_s']} faces/s; embed and match "
        f"kept up with {100 * capacity['share_kept_up']:.0f}%: sustained {capacity['sustained_frames_per_s']} "
        f"frames/s, {capacity['sustained_faces_per_s']} faces/s"
    )
    if not latency:
        return {"mode": mode, "capacity": capacity}
    # A fresh stack: the capacity run leaves a backlog that would be measured as latency.
    cameras = max(1, int(0.8 * capacity["sustained_frames_per_s"] // 5))
    enrolled = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    stack, deployment_id = _start(plan.out, data_dir, replicas, every_face)
    try:
        _camera(stack, deployment_id, video, 5.0, count=cameras)
        time.sleep(plan.warm_up_s)
        passes = max(3, int(seconds // 8))
        m = _measure(stack, seconds, during=_person_passes(stack, deployment_id, enrolled), times=passes)
        steady = {
            "cameras_at_5fps": cameras,
            "detect_frames_per_s": round(total(m["detect"], "lfr_frames_processed_total") / seconds, 2),
            **{
                f"capture_to_{what}_p{int(q * 100)}_s": _round(_quantile(m[what], f"lfr_capture_to_{what}_seconds", q))
                for what in ("match", "alert")
                for q in (0.5, 0.95, 0.99)
            },
            "person_passes": passes,
            "alerts": int(total(m["alert"], "lfr_alerts_total")),
            "search_p50_ms": _round(1e3 * (_quantile(m["match"], "lfr_watchlist_search_seconds", 0.5) or 0)),
        }
    finally:
        stack.stop()
    print(
        f"[{mode}] {cameras} crowd camera(s) at 5 fps (~80% load), the enrolled person passing "
        f"{steady['person_passes']} times: capture-to-match p50 "
        f"~{steady['capture_to_match_p50_s']} s, p95 ~{steady['capture_to_match_p95_s']} s, p99 "
        f"~{steady['capture_to_match_p99_s']} s; capture-to-alert p50 ~{steady['capture_to_alert_p50_s']} s, "
        f"p95 ~{steady['capture_to_alert_p95_s']} s, p99 ~{steady['capture_to_alert_p99_s']} s "
        f"({steady['alerts']} alerts)"
    )
    return {"mode": mode, "capacity": capacity, "steady": steady}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

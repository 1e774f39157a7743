"""`lfr demo` (make demo): the main job on embedded defaults, from a watchlist folder and a video.

stdout carries exactly one JSON object per alert (its final revision), then one {"summary": ...};
everything for people goes to stderr. Exit 0 on success, 2 on bad arguments.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
from rich.console import Console

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.alerts import AlertCollector
from lfr_cli.deployments import operating_point_line
from lfr_cli.watchlist import WatchlistFolderError, iter_messages, scan
from lfr_contracts import FACES_DETECTED, FACES_EMBEDDED, FRAMES_CAPTURED, MATCHES_FOUND
from lfr_contracts.clients import DeploymentClient
from lfr_contracts.views import alert_json
from lfr_faces.frames import is_stream
from lfr_platform.settings import ToolSettings
from lfr_stack.infrastructure import external_infrastructure
from lfr_stack.processes import StackError
from lfr_stack.stack import Stack, total

err = Console(stderr=True, soft_wrap=True)
VAN = "van-demo"


class BadArguments(ValueError):
    pass


def _check_video(source: str) -> None:
    if is_stream(source):
        return  # a stream may come up later: ingest retries it with backoff
    if not Path(source).is_file():
        raise BadArguments(f"video {source} does not exist")
    capture = cv2.VideoCapture(source)
    ok, _ = capture.read() if capture.isOpened() else (False, None)
    capture.release()
    if not ok:
        raise BadArguments(f"video {source} cannot be read (not a video OpenCV can decode)")


def run_demo(args) -> int:
    started = time.monotonic()
    data_dir = ToolSettings().data_dir
    with tempfile.TemporaryDirectory(prefix="lfr-demo-") as tmp:
        try:
            watchlist = args.watchlist or demo_data.build_watchlist(data_dir, Path(tmp) / "watchlist")
            videos = (
                [v.strip() for v in args.video.split(",") if v.strip()]
                if args.video
                else demo_data.default_videos(data_dir)
            )
            if not videos:
                raise BadArguments("no video given")
            for video in videos:
                _check_video(video)
            items = scan(watchlist, dated=demo_data.file_date, **demo_data.PROVENANCE)
        except (BadArguments, WatchlistFolderError, demo_data.DemoDataMissing) as exc:
            err.print(f"[red]error:[/] {exc}")
            return 2
        try:
            kafka, redis_url = external_infrastructure()
        except StackError as exc:
            err.print(f"[red]error:[/] {exc}")
            return 2
        stack = Stack(args.root, kafka=kafka, redis_url=redis_url)
        try:
            return _run(stack, items, videos, args, started)
        except StackError as exc:
            err.print(f"[red]error:[/] {exc}")
            return 1
        finally:
            stack.stop()


def _run(stack: Stack, items, videos: list[str], args, started: float) -> int:
    err.print(
        f"starting broker, Redis and services, {args.replicas} replica(s) of each stage (logs in {stack.log_dir})"
    )
    services = ("deployments", "detect", "embed", "match", "alert", "console")
    state = stack.start(services=services, replicas=args.replicas)
    err.print(f"control room: {state.console_url} (tokens by role in {stack.root / 'stack.json'})")
    cameras = [f"cam-{i}" for i in range(1, len(videos) + 1)]
    with DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=60) as client:
        now = time.time()
        request = pb.CreateDeploymentRequest(
            name="lfr demo",
            purpose="demonstration on public research data",
            authorising_officer="demo",
            location="local machine",
            where="intelligence_led",
            cameras=[pb.CameraCoverage(van_id=VAN, camera_id=c) for c in cameras],
        )
        request.planned_end.FromSeconds(int(now + 3600))
        request.watchlist_size_limit = len(items)  # a targeted list: its threshold follows from its size
        deployment = client.create(request)
        deployment_id = deployment.deployment_id
        err.print(f"deployment {deployment_id} ({deployment.model_id})")
        results = list(client.enrol(deployment_id, iter_messages(items), expected=len(items)))
        enrolled = [r for r in results if r.status == pb.ENROL_STATUS_ENROLLED]
        for r in results:
            if r.status != pb.ENROL_STATUS_ENROLLED:
                reason = pb.RejectionReason.Name(r.reason).removeprefix("REJECTION_REASON_").lower()
                err.print(f"  rejected {r.client_ref}: {reason} ({r.detail})")
        err.print(f"watchlist: {len(enrolled)} image(s) enrolled, {len(results) - len(enrolled)} rejected")
        if not enrolled:
            client.close(deployment_id, "demo: nothing could be enrolled")
            err.print("[red]error:[/] no image of the watchlist could be enrolled")
            return 2
        # Nothing is matched before the review, which derives the threshold from the entries reviewed.
        deployment = client.review(deployment_id, "demo reviewer").deployment
        err.print("watchlist reviewed by 'demo reviewer' (audited): matching starts")
        err.print(operating_point_line(deployment.operating_point, deployment.threshold))

        def live(alert) -> None:
            if alert.revision == 1:
                err.print(
                    f"[bold red]ALERT[/] {alert.subject_id} on {alert.camera.camera_id} "
                    f"score {alert.score:.3f} (threshold {alert.threshold:.3f})"
                )

        collector = AlertCollector(
            state.kafka_bootstrap_servers, state.topic_prefix, deployment_id, deployment.alert_public_key, on_alert=live
        )
        collector.start()
        try:
            sources = [
                {"camera_id": c, "deployment_id": deployment_id, "source": v, "fps": args.fps}
                for c, v in zip(cameras, videos, strict=True)
            ]
            stack.start_service("ingest", cameras=sources, van_id=VAN)
            stack.wait_ready(("ingest",), 60)
            err.print(f"streaming {len(videos)} camera(s) at {args.fps:g} fps")
            ingest_final = None
            if any(is_stream(v) for v in videos):
                # A live stream never ends: stream for the given time, then stop the camera.
                err.print(f"live source: streaming for {args.duration:g} s")
                time.sleep(args.duration)
                ingest_final = stack.scrape("ingest")
                stack.stop_service("ingest")
            totals = _wait_drained(stack, len(cameras), collector, args.drain_timeout, ingest_final)
        finally:
            collector.stop()
        alerts = collector.alerts()
        if collector.refused:
            err.print(f"[yellow]warning:[/] alert revisions dropped: {dict(collector.refused)} (not genuine)")
        for alert in alerts:
            print(json.dumps(alert_json(alert)), flush=True)  # noqa: T201 - the demo's output
        closed = client.close(deployment_id, "demo finished")
        d = closed.deletion
        err.print(
            f"deployment closed: {d.watchlist_points_deleted} watchlist entries and {d.redis_keys_deleted} "
            f"keys deleted, data key destroyed; copies deleted by "
            + (", ".join(c.replica for c in d.replica_copies_deleted) or "no match replica")
            + (f" (not reported by {', '.join(d.replica_copies_pending)})" if d.replica_copies_pending else "")
        )
    summary = {
        **totals,
        "alerts": len(alerts),
        "threshold": round(deployment.threshold, 4),
        "operating_point": _operating_summary(deployment.operating_point),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps({"summary": summary}), flush=True)  # noqa: T201 - the demo's output
    return 0


def _operating_summary(p: pb.OperatingPoint) -> dict:
    """The derived threshold's inputs, for the summary line."""
    return {
        "entries": p.entries,
        "false_alert_budget": p.budget,
        "derived_threshold": round(p.derived_threshold, 4) if p.HasField("derived_threshold") else None,
        "threshold_source": p.threshold_source,
        "bound_by": p.bound_by,
        "group": p.group,
        "predicted_false_alerts_per_face_upper": p.predicted_fpir_upper,
        "per_pass_ratio_upper": p.per_pass_ratio_upper,
        "equitability_floor": round(p.equitability_floor, 4),
        "curve_version": p.curve_version,
        "predicted_recall": round(p.predicted_recall.rate, 4) if p.HasField("predicted_recall") else None,
    }


def _wait_drained(
    stack: Stack, cameras: int, collector: AlertCollector, timeout_s: float, ingest_final: dict | None = None
) -> dict:
    """Wait until every camera finished (or ingest was stopped: `ingest_final` holds its metrics from
    just before) and every stage consumed what the one before produced, twice in a row unchanged.

    Frames in flight when ingest was stopped are published after `ingest_final` was read, so then
    detect must have consumed at least that many rather than exactly that many."""
    prefix = stack.state.topic_prefix
    chain = [
        ("detect", FRAMES_CAPTURED, None),
        ("embed", FACES_DETECTED, "detect"),
        ("match", FACES_EMBEDDED, "embed"),
        ("alert", MATCHES_FOUND, "match"),
    ]
    deadline = time.monotonic() + timeout_s
    settled, previous = 0, None
    while time.monotonic() < deadline:
        m = {name: stack.scrape(name) for name in ("detect", "embed", "match", "alert")}
        m["ingest"] = ingest_final if ingest_final is not None else stack.scrape("ingest")
        done = ingest_final is not None or total(m["ingest"], "lfr_camera_finished") >= cameras
        counts = []
        for stage, topic, upstream in chain:
            name = topic.name(prefix)
            consumed = total(m[stage], "lfr_messages_consumed_total", topic=name)
            handled = total(m[stage], "lfr_message_processing_seconds_count", topic=name)
            produced = (
                total(m["ingest"], "lfr_frames_published_total")
                if upstream is None
                else total(m[upstream], "lfr_messages_produced_total", topic=name)
            )
            caught_up = consumed >= produced if upstream is None and ingest_final is not None else consumed == produced
            done = done and caught_up and handled == consumed
            counts.append(consumed)
        done = done and counts == previous
        previous = counts
        alerts_out = total(m["alert"], "lfr_messages_produced_total", topic=f"{prefix}alerts.raised.v1")
        done = done and collector.records >= alerts_out
        settled = settled + 1 if done else 0
        if settled >= 2:
            return {
                "frames": int(max(total(m["ingest"], "lfr_frames_captured_total"), counts[0])),
                "frames_dropped": int(total(m["ingest"], "lfr_frames_dropped_total")),
                "faces": int(total(m["detect"], "lfr_faces_detected_total")),
                # Faces followed across frames: people's passes; a pass's shots are embedded, not every face.
                "tracks": int(total(m["detect"], "lfr_tracks_started_total")),
                "faces_embedded": int(total(m["embed"], "lfr_faces_embedded_total")),
                "faces_scanned": int(total(m["match"], "lfr_faces_scanned_total")),
                "matches": int(total(m["match"], "lfr_matches_total")),
            }
        time.sleep(0.5)
    raise StackError(f"the pipeline did not finish within {timeout_s}s; see {stack.log_dir}")

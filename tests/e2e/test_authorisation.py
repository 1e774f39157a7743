"""Authorisation that bounds matching, on the local stack (issue 18): frames captured outside a
deployment's window never alert whenever they arrive, and an urgent deployment nobody ratified in
writing is closed and deleted when its time runs out."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import shutil
import time
from pathlib import Path

import cv2
import pytest
import redis.asyncio as aioredis

from lfr.v1 import common_pb2, frames_pb2
from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts import FRAMES_CAPTURED, camera_key
from lfr_contracts.clients import AlertClient, DeploymentClient
from lfr_platform import sealing
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.settings import PlatformSettings
from lfr_stack.stack import Stack
from lfr_stack.wiring import service_of
from lfr_testing.deployments import policy_yaml
from lfr_testing.kafka import produce
from lfr_testing.media import lfw
from lfr_testing.stack import drained, eventually, scraped
from lfr_watchlist.templates import most_entries

pytestmark = pytest.mark.e2e

ENROLLED = "liveportrait-d0"


def _deployment(
    client: DeploymentClient, data_dir, tmp_path, photos: int = 100, reviewed: bool = True, **fields
) -> pb.Deployment:
    request = pb.CreateDeploymentRequest(
        name="Op Window", purpose="wanted persons", authorising_officer="Supt. Example", location="Station Road",
        where="crime_hotspot", cameras=[pb.CameraCoverage(van_id="van-1", camera_id="cam-1")], **fields,
    )  # fmt: skip
    request.planned_end.FromSeconds(int(time.time() + 3 * 3600))
    deployment = client.create(request)
    items = scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="Insp. B")
    results = list(client.enrol(deployment.deployment_id, iter_messages(items[:photos])))
    assert sum(r.status == pb.ENROL_STATUS_ENROLLED for r in results) >= min(photos, 15)
    if reviewed:
        client.review(deployment.deployment_id, "Insp. Reviewer")
    return deployment


def _frames(stack: Stack, data_dir, deployment_id: str, captured_from: float, first_sequence: int) -> list:
    """The enrolled person's clip as a van's ingest would send it (sealed with the deployment's key),
    its capture times starting at `captured_from`: a van whose clock is wrong, or a replayed backlog."""
    state = stack.state
    platform = PlatformSettings(
        redis_url=state.redis_url, redis_prefix=state.redis_prefix, key_encryption_key_file=stack.root / "kek"
    )

    async def data_key() -> bytes:
        client = aioredis.from_url(state.redis_url)
        try:
            view = await DeploymentRegistry(client, RedisKeys(state.redis_prefix), platform.key_wrap()).lookup(
                deployment_id
            )
        finally:
            await client.aclose()
        return view.data_key

    key = asyncio.run(data_key())
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    capture = cv2.VideoCapture(str(data_dir / "video" / demo_data.ENROLLED_CLIPS[0]))
    records, n = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if n % 5 == 0:  # 5 fps of the clip's 25
            jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            frame = frames_pb2.FrameCaptured(
                camera=camera, sequence=first_sequence + n, width=image.shape[1], height=image.shape[0],
                image=sealing.seal(key, jpeg, deployment_id),
            )  # fmt: skip
            frame.captured_at.FromNanoseconds(int((captured_from + n / 25) * 1e9))
            records.append((camera_key(camera), frame.SerializeToString()))
        n += 1
    capture.release()
    return records


def test_frames_captured_outside_the_window_are_skipped_counted_and_never_alert(stack, tmp_path, data_dir):
    state = stack.start()
    client = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=120)
    alerts = AlertClient(state.alert_grpc_address, state.tokens["officer"])
    deployment = _deployment(client, data_dir, tmp_path)
    start = deployment.planned_start.ToNanoseconds() / 1e9
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    # The person passes the camera, stamped an hour before the deployment's window opened.
    early = _frames(stack, data_dir, deployment.deployment_id, start - 3600, first_sequence=0)
    asyncio.run(produce(platform, FRAMES_CAPTURED, early))

    detects = [name for name in state.processes if service_of(name) == "detect"]

    def skipped():  # by the first stage, before any face is looked at
        n = sum(
            scraped(stack.http_port(name), "lfr_messages_skipped_total", reason="outside_authorisation") or 0
            for name in detects
        )
        assert n == len(early), f"{n} of {len(early)} skipped"

    eventually(skipped, timeout_s=120)
    eventually(lambda: drained(stack), timeout_s=120)
    assert alerts.list(deployment.deployment_id) == []  # skipped before any face was looked at
    # The same pass inside the window alerts: it was the window that refused them, nothing else.
    inside = _frames(stack, data_dir, deployment.deployment_id, time.time(), first_sequence=10_000)
    asyncio.run(produce(platform, FRAMES_CAPTURED, inside))

    def alerted():
        found = alerts.list(deployment.deployment_id)
        assert [a.subject_id for a in found] == [ENROLLED], found
        return found[0]

    alert = eventually(alerted, timeout_s=180)
    assert alert.captured_at.ToNanoseconds() / 1e9 >= start
    client.close_channel()
    alerts.close_channel()


def test_an_unratified_urgent_deployment_is_closed_and_deleted_on_time(tmp_path, data_dir, models_dir):
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_yaml(ratify_within_h=0.02))  # 72 s, for the test
    stack = Stack(tmp_path / "stack", models_dir=models_dir, extra_env={"LFR_DEPLOYMENTS_POLICY_FILE": str(policy)})
    try:
        state = stack.start(services=("deployments", "match"))
        client = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=120)
        # One photo each: enrolled in seconds, well inside the 72 s.
        unratified = _deployment(client, data_dir, tmp_path / "a", photos=1, urgent=True)
        ratified = _deployment(client, data_dir, tmp_path / "b", photos=1, urgent=True)
        # By another principal than the creator (issue 25, item 7): the stack's second manager token.
        with DeploymentClient(state.grpc_address, state.tokens["ratifier"], timeout_s=120) as ratifier:
            ratifier.ratify(ratified.deployment_id, "Ch Insp. Other")
        deadline = unratified.ratify_by.ToNanoseconds() / 1e9

        def closed():
            got = client.get(unratified.deployment_id)
            assert got.state == pb.DEPLOYMENT_STATE_CLOSED and got.HasField("deletion"), got.state
            return got

        got = eventually(closed, timeout_s=180)
        assert got.closed_at.ToNanoseconds() / 1e9 >= deadline and "not ratified" in got.close_reason
        assert got.deletion.watchlist_points_deleted == 1 and got.deletion.data_key_destroyed
        assert client.report(unratified.deployment_id).authorisation == "urgent, not ratified"
        kept = client.get(ratified.deployment_id)
        assert kept.state == pb.DEPLOYMENT_STATE_ACTIVE and kept.ratified_by == "Ch Insp. Other"
        client.close_channel()
    finally:
        stack.stop()


TWIN = "liveportrait-d0-twin"


def _governed_watchlist(data_dir, folder: Path) -> Path:
    """The demo's watchlist, and: the enrolled person again under another subject id (a frame from
    the start of their clip: a person enrolled twice, or a brother), one LFW person under two ids,
    and one LFW photo whose row gives no reason for its age."""
    watchlist = demo_data.build_watchlist(data_dir, folder)
    capture = cv2.VideoCapture(str(data_dir / "video" / demo_data.ENROLLED_CLIPS[0]))
    ok, first = capture.read()
    capture.release()
    assert ok
    (watchlist / TWIN).mkdir()
    cv2.imwrite(str(watchlist / TWIN / "first-second.jpg"), first, [cv2.IMWRITE_JPEG_QUALITY, 95])
    for subject, number in (("S-powell", 1), ("S-powell-alias", 2)):
        (watchlist / subject).mkdir()
        shutil.copy(lfw(data_dir, "Colin_Powell", number), watchlist / subject / "photo.jpg")
    with (watchlist / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    lfw_rows = [r for r in rows if r["age_override_reason"]]
    lfw_rows[0]["age_override_reason"] = ""  # refused: older than the policy allows, and no reason given
    recent = {
        "category": "wanted", "image_source": "custody", "legal_basis": "research_and_testing",
        "image_date": (dt.date.today() - dt.timedelta(days=10)).isoformat(), "age_override_reason": "",
    }  # fmt: skip
    rows += [
        {"file": f"{TWIN}/first-second.jpg", **recent, "source_reference": "test: the same person, another id"},
        {"file": "S-powell/photo.jpg", **recent, "source_reference": "LFW Colin_Powell_0001"},
        {"file": "S-powell-alias/photo.jpg", **recent, "source_reference": "LFW Colin_Powell_0002"},
    ]
    with (watchlist / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return watchlist


def test_an_unreviewed_watchlist_matches_nothing_and_an_alert_names_its_runner_up(tmp_path, data_dir, models_dir):
    """Provenance, review, prediction and lookalikes on a real stack: an old photo without a reason is
    refused; lookalike pairs are flagged at enrolment; the predicted false alerts are in the created
    deployment and in its report; until the review, the person passing is skipped and alerts nothing;
    after it, the alert names the lookalike as its runner-up, and (a policy min_margin of 0.2) is held
    for a supervisor."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_yaml(min_margin=0.2))
    stack = Stack(tmp_path / "stack", models_dir=models_dir, extra_env={"LFR_DEPLOYMENTS_POLICY_FILE": str(policy)})
    try:
        state = stack.start()
        client = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=120)
        alerts = AlertClient(state.alert_grpc_address, state.tokens["officer"])
        request = pb.CreateDeploymentRequest(
            name="Op Review", purpose="wanted persons", authorising_officer="Supt. Example", location="Station Road",
            where="intelligence_led", cameras=[pb.CameraCoverage(van_id="van-1", camera_id="cam-1")],
            expected_faces=20_000,
        )  # fmt: skip
        request.planned_end.FromSeconds(int(time.time() + 3 * 3600))
        deployment = client.create(request)
        predicted = deployment.predicted_false_alerts
        # Counted against the most entries the limit allows: its images and their subjects' templates.
        assert (predicted.expected_faces, predicted.watchlist_size) == (
            20_000,
            most_entries(deployment.watchlist_size_limit),
        )
        assert predicted.expected_upper_95 > predicted.expected >= 0 and predicted.fmr_pairs > 1_000_000
        deployment_id = deployment.deployment_id

        items = scan(_governed_watchlist(data_dir, tmp_path / "watchlist"), approved_by="Insp. B")
        results = {r.client_ref: r for r in client.enrol(deployment_id, iter_messages(items))}
        too_old = [r for r in results.values() if r.reason == pb.REJECTION_REASON_IMAGE_TOO_OLD]
        assert len(too_old) == 1 and "max_image_age_years" in too_old[0].detail
        pairs = {frozenset((r.subject_id, x.subject_id)) for r in results.values() for x in r.lookalikes}
        assert {frozenset((ENROLLED, TWIN)), frozenset(("S-powell", "S-powell-alias"))} <= pairs

        platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
        unreviewed = _frames(stack, data_dir, deployment_id, time.time(), first_sequence=0)
        asyncio.run(produce(platform, FRAMES_CAPTURED, unreviewed))
        detects = [name for name in state.processes if service_of(name) == "detect"]

        def skipped():
            n = sum(
                scraped(stack.http_port(name), "lfr_messages_skipped_total", reason="watchlist_not_reviewed") or 0
                for name in detects
            )
            assert n == len(unreviewed), f"{n} of {len(unreviewed)} skipped"

        eventually(skipped, timeout_s=120)
        eventually(lambda: drained(stack), timeout_s=120)
        assert alerts.list(deployment_id) == []

        reviewed = client.review(deployment_id, "Insp. Reviewer").deployment
        assert reviewed.reviewed_by == "Insp. Reviewer" and reviewed.reviewed_images == reviewed.enrolled_images
        passing = _frames(stack, data_dir, deployment_id, time.time(), first_sequence=10_000)
        asyncio.run(produce(platform, FRAMES_CAPTURED, passing))

        def alerted():
            found = [a for a in alerts.list(deployment_id) if a.subject_id in (ENROLLED, TWIN)]
            assert found, alerts.list(deployment_id)
            return found[0]

        alert = eventually(alerted, timeout_s=180)
        assert {alert.subject_id, alert.runner_up_subject_id} == {ENROLLED, TWIN}
        assert alert.margin == pytest.approx(alert.score - alert.runner_up_score, abs=1e-3) and alert.margin < 0.2
        assert alert.held_for_supervisor and alert.runner_up_subject_id in alert.hold_reason
        eventually(lambda: drained(stack), timeout_s=120)
        report = client.report(deployment_id)
        assert report.faces_scanned > 0
        assert report.predicted_false_alerts.expected_faces == report.faces_scanned
        client.close_channel()
        alerts.close_channel()
    finally:
        stack.stop()

"""Scale-out proved on the real broker: two replicas of every stage share the work, a match replica
SIGKILLed mid-stream costs no alert, a replica started later rebuilds its copy of the watchlists from
the watchlist log, and a close leaves no replica able to match the deployment (docs/decisions/0011)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest
from aiokafka.partitioner import DefaultPartitioner

from lfr.v1 import common_pb2, embeddings_pb2
from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts import ALERTS_RAISED, FACES_EMBEDDED, camera_key
from lfr_contracts.clients import DeploymentClient
from lfr_platform.settings import PlatformSettings
from lfr_stack.stack import total
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.stack import drained, eventually, grown, scraped

pytestmark = pytest.mark.e2e

ENROLLED = "liveportrait-d0"
STAGES = ("detect", "embed", "match", "alert")


def _status(stack) -> dict:
    env = {**os.environ, "LFR_CLI_STACK_DIR": str(stack.root)}
    result = subprocess.run(
        [sys.executable, "-m", "lfr_cli.main", "stack", "status"], capture_output=True, text=True, env=env, timeout=60
    )
    return json.loads(result.stdout)["services"]


def _faces_of(deployment_id: str, camera_id: str) -> tuple[bytes, bytes]:
    """A FacesEmbedded of the deployment's camera, as embed publishes it (its vector cannot be opened
    after close: it is refused before that, as every record of a closed deployment)."""
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id=camera_id)
    face = embeddings_pb2.EmbeddedFace(index=0, embedding=b"sealed", crop=b"sealed", track_id="t:1")
    message = embeddings_pb2.FacesEmbedded(camera=camera, model_id="sface-2021dec", dimension=128, faces=[face])
    return camera_key(camera), message.SerializeToString()


def _matches_total(port: int, deployment_id: str) -> float:
    return scraped(port, "lfr_matches_total", deployment_id=deployment_id) or 0.0


def test_two_replicas_of_every_stage_lose_no_alert_to_a_killed_match_replica_and_a_close_reaches_every_copy(
    stack, tmp_path, data_dir
):
    # A session timeout as real Kafka's defaults allow: a replica that stops answering keeps its
    # partitions for 10 s (the test freezes one, then kills it, inside that time).
    stack.extra_env.update({"LFR_KAFKA_SESSION_TIMEOUT_MS": "10000", "LFR_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"})
    state = stack.start(services=("deployments", *STAGES), replicas=2)
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)

    # Every replica by name, ready, with input partitions of its own (3 partitions, 2 replicas).
    def shared():
        services = _status(stack)
        for stage in STAGES:
            partitions = [services[f"{stage}-{i}"].get("partitions", []) for i in (1, 2)]
            assert all(services[f"{stage}-{i}"]["ready"] for i in (1, 2)), services
            assert all(partitions) and not set(partitions[0]) & set(partitions[1]), (stage, partitions)

    eventually(shared, timeout_s=60)

    # Enrolled once, through the deployments service: every match replica gets its copy from the log.
    client = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=60)
    request = pb.CreateDeploymentRequest(
        name="Op Scale", purpose="wanted persons", authorising_officer="Supt. Example", location="test bench",
        where="intelligence_led", cameras=[pb.CameraCoverage(van_id="van-1", camera_id="cam-1")],
    )  # fmt: skip
    request.planned_end.FromSeconds(int(time.time() + 3600))
    deployment_id = client.create(request).deployment_id
    items = scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="Insp. B")
    enrolled = sum(r.status == pb.ENROL_STATUS_ENROLLED for r in client.enrol(deployment_id, iter_messages(items)))
    assert enrolled >= 15
    client.review(deployment_id, "Insp. Reviewer")
    copies = [stack.root / "match-data" / f"match-{i}" / deployment_id for i in (1, 2)]

    def copied():
        assert all(c.is_dir() for c in copies), [c for c in copies if not c.is_dir()]

    eventually(copied, timeout_s=30)

    # The match replica that owns the camera's partition of faces.embedded.v1 (records are keyed by
    # camera) is SIGKILLed while the clip's faces wait for it on that partition: the other must take
    # the partition over and match the person. (Frozen first, so that it cannot match the first faces
    # before the kill: detect sends a pass's best shots only, and the alert must come from the other.)
    partition = DefaultPartitioner()(f"{deployment_id}/van-1/cam-1".encode(), [0, 1, 2], [0, 1, 2])
    owned = {n: _status(stack)[n]["partitions"] for n in ("match-1", "match-2")}
    [owner] = [n for n, parts in owned.items() if f"faces.embedded.v1[{partition}]" in parts]
    survivor = "match-2" if owner == "match-1" else "match-1"
    os.kill(stack.pid(owner), signal.SIGSTOP)
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    camera = {"camera_id": "cam-1", "deployment_id": deployment_id, "source": str(video), "fps": 5, "loop": True}
    stack.start_service("ingest", cameras=[camera])

    def faces_waiting():
        assert asyncio.run(read(platform, FACES_EMBEDDED, count=1, timeout_s=2)), "no face embedded yet"

    eventually(faces_waiting, timeout_s=60, interval_s=0.1)
    # SIGKILLed mid-stream, its faces in flight, and kept down (the supervisor would start it again at
    # once; here the survivor must take its partition over first).
    stack.halt(owner, abruptly=True)
    survivor_port = stack.http_port(survivor)
    assert _matches_total(survivor_port, deployment_id) == 0  # not its partition until now

    def alerted():
        raised = decoded(ALERTS_RAISED, asyncio.run(read(platform, ALERTS_RAISED, count=1, timeout_s=5)))
        assert any(a.subject_id == ENROLLED and a.camera.deployment_id == deployment_id for a in raised)

    eventually(alerted, timeout_s=240)

    def survivor_matched():
        assert _matches_total(survivor_port, deployment_id) > 0, f"{survivor} matched nothing of the camera"

    eventually(survivor_matched, timeout_s=60)

    # Restarted (as Kubernetes restarts a pod): it empties its folder and rebuilds its copy from the log.
    stack.wait_ready(("ingest",), 60)
    stack.resume(owner)
    stack.wait_ready((owner,), 120)
    assert all(c.is_dir() for c in copies)

    # Closed: every copy is deleted and reported; no replica matches the deployment any more, though
    # its camera still streams.
    client.close(deployment_id, reason="operation over")
    deletion = client.get(deployment_id).deletion
    assert deletion.watchlist_points_deleted == enrolled
    assert {(c.replica, c.entries) for c in deletion.replica_copies_deleted} == {
        ("match-1", enrolled),
        ("match-2", enrolled),
    }, deletion
    assert list(deletion.replica_copies_pending) == []
    assert not any(c.exists() for c in copies)
    # Once ingest has refused the camera (the deployment is closed) and what was in flight has gone
    # through every stage, the matches are counted. Faces of the deployment put on faces.embedded.v1
    # afterwards (a late or replayed record, on every partition) are refused by whichever replica
    # takes them: counted as skipped, and no match more.
    ports = [stack.http_port(f"match-{i}") for i in (1, 2)]
    dropped = ("lfr_frames_dropped_total", {"reason": "deployment_closed"})
    eventually(partial(grown, stack, "ingest", dropped[0], by=1, since=0, **dropped[1]), timeout_s=60)
    eventually(partial(drained, stack), timeout_s=120)
    before = [_matches_total(p, deployment_id) for p in ports]
    skipped = ("lfr_messages_skipped_total", {"reason": "deployment_closed"})
    now = total(stack.scrape("match"), skipped[0], **skipped[1])
    late = [_faces_of(deployment_id, f"cam-{i}") for i in range(1, 7)]
    asyncio.run(produce(platform, FACES_EMBEDDED, late))
    eventually(partial(grown, stack, "match", skipped[0], by=len(late), since=now, **skipped[1]), timeout_s=60)
    # No match more: each replica's count is as it was, or gone (its series is removed once the replica
    # sees the deployment closed; a match after that would start it again at 1 or more, never 0).
    after = [_matches_total(p, deployment_id) for p in ports]
    assert all(a in (b, 0.0) for a, b in zip(after, before, strict=True)), (after, before)
    client.close_channel()

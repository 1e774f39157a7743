"""Faults proved by killing things: every stage SIGKILLed mid-stream (the stack's supervisor starts it
again), and the stack's Redis killed and started again. Nothing of a deployment may be lost, and
nothing is published twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from functools import partial

import grpc
import pytest
import redis

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import demo_data
from lfr_cli.main import main as lfr
from lfr_cli.watchlist import iter_messages, scan
from lfr_contracts import (
    ALERTS_RAISED,
    AUDIT_RECORDED,
    FACES_DETECTED,
    FACES_EMBEDDED,
    FRAMES_CAPTURED,
    MATCHES_FOUND,
)
from lfr_contracts.clients import DeploymentClient
from lfr_platform.audit_roots import root_signing_key
from lfr_platform.audit_trail import entry_hash, public_key_of, seal_entry
from lfr_platform.registry import RedisKeys
from lfr_platform.sealing import KeyWrap
from lfr_platform.settings import PlatformSettings
from lfr_stack.stack import Stack, total
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.stack import drained, eventually, grown, scraped

pytestmark = pytest.mark.e2e

ENROLLED = "liveportrait-d0"


def _created(state, cameras=("cam-1",), timeout_s: float = 60) -> tuple[DeploymentClient, str]:
    """A client of the stack's DeploymentService and a new deployment, open for an hour."""
    client = DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=timeout_s)
    request = pb.CreateDeploymentRequest(
        name="Op Faults",
        purpose="wanted persons",
        authorising_officer="Supt. Example",
        location="test bench",
        where="intelligence_led",
        cameras=[pb.CameraCoverage(van_id="van-1", camera_id=c) for c in cameras],
    )
    request.planned_end.FromSeconds(int(time.time() + 3600))
    return client, client.create(request).deployment_id


def _deployment(state, data_dir, tmp_path, cameras=("cam-1",)) -> tuple[DeploymentClient, str]:
    """A new deployment with the demo's watchlist enrolled."""
    client, deployment_id = _created(state, cameras)
    items = scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="Insp. B")
    results = list(client.enrol(deployment_id, iter_messages(items)))
    assert sum(r.status == pb.ENROL_STATUS_ENROLLED for r in results) >= 15
    client.review(deployment_id, "Insp. Reviewer")
    return client, deployment_id


def _streaming(stack: Stack, data_dir, tmp_path, *, loop: bool = True, before_ingest=None):
    """Every stage running, a deployment with the demo's watchlist, and ingest streaming the enrolled
    person's clip into it on cam-1, looped (`loop=False`: once). `before_ingest(platform, deployment_id)`
    runs before the camera starts. Returns (state, platform, client, deployment_id)."""
    state = stack.start(services=("deployments", "detect", "embed", "match", "alert"))
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    client, deployment_id = _deployment(state, data_dir, tmp_path)
    if before_ingest is not None:
        before_ingest(platform, deployment_id)
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    camera = {"camera_id": "cam-1", "deployment_id": deployment_id, "source": str(video), "fps": 5, "loop": loop}
    stack.start_service("ingest", cameras=[camera])
    stack.wait_ready(("ingest",), 60)
    return state, platform, client, deployment_id


def _alerted(platform: PlatformSettings, deployment_id: str) -> None:
    """AssertionError until the enrolled person's alert of the deployment is on the alert topic."""
    raised = decoded(ALERTS_RAISED, asyncio.run(read(platform, ALERTS_RAISED, count=1, timeout_s=5)))
    assert any(a.subject_id == ENROLLED and a.camera.deployment_id == deployment_id for a in raised)


def _redis_back(stack: Stack, state) -> None:
    """Redis started again by the supervisor, on its port, from its folder, with its password, and
    waited for until it answers (LOADING is an error until its append-only file is read)."""
    stack.resume("redis")
    client = redis.Redis.from_url(state.redis_url)

    def answers():
        try:
            assert client.ping()
        except redis.exceptions.ConnectionError as exc:  # BusyLoadingError is one
            raise AssertionError(exc) from exc

    eventually(answers, timeout_s=30)
    client.close()


def _killed_and_back(stack: Stack, name: str) -> None:
    """SIGKILL, as a crash: the supervisor starts the process again, which must come back ready."""
    killed = stack.kill(name)

    def back():
        assert stack.pid(name) not in (None, killed) and stack.ready(name), f"{name} not back yet"

    eventually(back, timeout_s=120)


def _in_redis_file(stack: Stack, text: str) -> None:
    written = b"".join(f.read_bytes() for f in (stack.root / "redis").rglob("*.aof*") if f.is_file())
    assert text.encode() in written, "not in Redis's append-only file yet"


def test_every_stage_killed_mid_stream_the_alert_still_comes_once_per_revision(stack, tmp_path, data_dir):
    # The enrolled person's clip, looped: every stage is killed while frames of it are in flight.
    _, platform, client, deployment_id = _streaming(stack, data_dir, tmp_path)
    for name in ("detect", "embed", "match", "alert"):
        # Mid-stream: the stage is taking records of the clip when it is killed.
        seen = total(stack.scrape(name), "lfr_messages_consumed_total")
        eventually(partial(grown, stack, name, "lfr_messages_consumed_total", by=1, since=seen), timeout_s=120)
        _killed_and_back(stack, name)

    eventually(partial(_alerted, platform, deployment_id), timeout_s=240)
    stack.stop_service("ingest")
    eventually(lambda: drained(stack), timeout_s=120)  # what was in flight reaches the topic
    records = asyncio.run(read(platform, ALERTS_RAISED, count=1, settle_s=2))
    keys = [(a.alert_id, a.revision) for a in decoded(ALERTS_RAISED, records)]
    revisions = Counter(keys)
    copies: dict[tuple[str, int], set[bytes]] = {}
    for key, record in zip(keys, records, strict=True):
        copies.setdefault(key, set()).add(record.value)
    # The contract (docs/alerts.md): each revision once; only alert killed between the broker's
    # acknowledgement and its record in Redis sends one again, byte for byte the same.
    assert revisions and max(revisions.values()) <= 2, [k for k, n in revisions.items() if n > 2]
    assert all(len(values) == 1 for values in copies.values()), "a revision published twice, differently"
    client.close_channel()


def test_ingest_restarted_mid_pass_the_person_still_alerts_and_a_replay_is_still_refused(stack, tmp_path, data_dir):
    """Issue 25 (2): ingest's frame sequence starts again at 0 when it restarts, and a match id made of
    it passed for a replay of the last run's: a restarted camera's matches were dead-lettered
    `replayed_match` (110 in 40 s) and a person who came back raised nothing. The id carries the
    frame's capture time now: every match of the restarted camera folds into an alert, and a match
    produced again is still refused."""
    _, platform, client, deployment_id = _streaming(stack, data_dir, tmp_path)

    def matches() -> list:
        found = decoded(MATCHES_FOUND, asyncio.run(read(platform, MATCHES_FOUND, count=1, timeout_s=10)))
        return [m for m in found if m.subject_id == ENROLLED and m.camera.deployment_id == deployment_id]

    def matched_since(at: float):
        after = [m for m in matches() if m.captured_at.ToNanoseconds() / 1e9 >= at]
        assert after, "no match of the person captured since then yet"

    eventually(partial(matched_since, 0.0), timeout_s=240)
    restarted_at = time.time()
    _killed_and_back(stack, "ingest")  # its cameras start again, sequences from 0
    eventually(partial(matched_since, restarted_at), timeout_s=240)
    stack.stop_service("ingest")
    eventually(lambda: drained(stack), timeout_s=120)

    def replays() -> float:
        return total(stack.scrape("alert"), "lfr_messages_dead_lettered_total", reason="replayed_match")

    assert replays() == 0
    found = matches()
    raised = decoded(ALERTS_RAISED, asyncio.run(read(platform, ALERTS_RAISED, count=1, settle_s=1)))
    latest: dict[str, int] = {}
    for alert in raised:
        if alert.subject_id == ENROLLED and alert.camera.deployment_id == deployment_id:
            latest[alert.alert_id] = max(latest.get(alert.alert_id, 0), alert.match_count)
    # Every match of the person, before and after the restart, folded into an alert, none refused.
    assert sum(latest.values()) == len({m.match_id for m in found}) > 0
    # A genuine match produced onto the topic again is still a replay.
    again = found[-1]
    asyncio.run(produce(platform, MATCHES_FOUND, [(b"replay", again.SerializeToString())]))

    def refused():
        assert replays() == 1, replays()

    eventually(refused, timeout_s=60)
    client.close_channel()


def test_a_10_mb_record_on_every_input_stops_nothing_the_camera_still_alerts(stack, tmp_path, data_dir):
    """Issue 25 (1): one 10 MB record produced onto an input made a dead letter too big to send, and
    its stage retried it for ever while reporting ready: every replica stuck, the camera on that
    partition silent. Each stage dead-letters it as a reference and goes on."""

    def poison(platform, deployment_id):
        # On the camera's own partition (its key), ahead of its frames; tansu takes records up to 64 MB.
        key = f"{deployment_id}/van-1/cam-1".encode()
        big = platform.model_copy(update={"kafka_max_message_bytes": 16 * 1024 * 1024})
        for topic in (FRAMES_CAPTURED, FACES_DETECTED, FACES_EMBEDDED, MATCHES_FOUND):
            asyncio.run(produce(big, topic, [(key, b"\0" * (10 * 1024 * 1024))]))

    _, platform, client, deployment_id = _streaming(stack, data_dir, tmp_path, loop=False, before_ingest=poison)
    eventually(partial(_alerted, platform, deployment_id), timeout_s=240)
    for stage in ("detect", "embed", "match", "alert"):
        assert total(stack.scrape(stage), "lfr_messages_dead_lettered_total", reason="record_too_large") == 1, stage
        assert stack.ready(stage), stage
    client.close_channel()


def test_redis_killed_and_restarted_loses_no_deployment(stack, tmp_path, data_dir):
    state = stack.start(services=("deployments",))
    client, deployment_id = _deployment(state, data_dir, tmp_path)
    before = client.get(deployment_id)
    eventually(lambda: _in_redis_file(stack, deployment_id), timeout_s=10)  # appendfsync everysec

    stack.halt("redis", abruptly=True)  # SIGKILL, and kept down until resumed
    # While Redis is down the API says so, with a code a client retries on.
    with pytest.raises(grpc.RpcError) as down:
        client.get(deployment_id)
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE and "Redis" in down.value.details()
    _redis_back(stack, state)
    # The service's next calls work at once: its pooled connections to the old process are broken, and
    # its client retries a command on a new connection (lfr_platform.settings.redis_client).
    after = client.get(deployment_id)
    assert after.state == pb.DEPLOYMENT_STATE_ACTIVE
    assert (after.enrolled_images, after.enrolled_subjects) == (before.enrolled_images, before.enrolled_subjects)
    # Its data key still opens (it is wrapped in Redis by the stack's key-encryption key): enrolment
    # works, and the janitor saw the same Redis (its epoch marker survived), so nothing was lost.
    item = next(iter(scan(demo_data.build_watchlist(data_dir, tmp_path / "more"), category="wanted", approved_by="B")))
    again = list(client.enrol(deployment_id, iter_messages([item])))
    assert again[0].status in (pb.ENROL_STATUS_ENROLLED, pb.ENROL_STATUS_REJECTED)
    assert again[0].status == pb.ENROL_STATUS_ENROLLED or again[0].reason == pb.REJECTION_REASON_DUPLICATE
    sweeps = total(stack.scrape("deployments"), "lfr_janitor_sweeps_total")
    eventually(lambda: grown(stack, "deployments", "lfr_janitor_sweeps_total", by=3, since=sweeps), timeout_s=30)
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    events = {
        a.event for a in decoded(AUDIT_RECORDED, asyncio.run(read(platform, AUDIT_RECORDED, count=2, settle_s=1)))
    }
    assert "state.lost" not in events and "deployment.state_lost" not in events
    assert client.get(deployment_id).state == pb.DEPLOYMENT_STATE_ACTIVE

    # Closing deletes the (wrapped) data key from Redis, and from Redis's files too: the append-only
    # file is rewritten without it, so neither a copy of Redis nor of its disk keeps it.
    redis_client = redis.Redis.from_url(state.redis_url)
    wrapped = redis_client.get(RedisKeys(state.redis_prefix).data_key(deployment_id))
    assert wrapped and any(wrapped in f.read_bytes() for f in (stack.root / "redis").rglob("*") if f.is_file())
    closed = client.close(deployment_id)
    assert closed.deletion.data_key_destroyed

    def key_gone_from_disk():
        files = [f for f in (stack.root / "redis").rglob("*") if f.is_file()]
        assert files and not any(wrapped in f.read_bytes() for f in files)

    eventually(key_gone_from_disk, timeout_s=30)
    redis_client.close()
    client.close_channel()


def test_redis_restarted_mid_enrolment_leaves_the_watchlist_and_its_records_in_step(stack, tmp_path, data_dir):
    """Redis goes away while a stream of photos is enrolled. The stream ends UNAVAILABLE; every photo
    acknowledged as enrolled is recorded and searchable; none is searchable without its record (it
    would match, and alert would refuse the match); the interrupted enrolment is audited; sending
    the batch again enrols the rest and refuses the rest as duplicates."""
    state = stack.start(services=("deployments", "match"))
    client, deployment_id = _created(state, timeout_s=120)
    items = list(scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="B"))

    def photos_with_redis_going_away():
        for i, message in enumerate(iter_messages(items)):
            if i == 6:  # photos 0-5 sent; some are being enrolled now
                stack.halt("redis")  # a restart: Redis writes its append-only file and exits
            yield message

    first: list[pb.EnrolWatchlistResponse] = []
    with pytest.raises(grpc.RpcError) as ended:
        first.extend(client.enrol(deployment_id, photos_with_redis_going_away()))
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value.details()
    acknowledged = {r.client_ref for r in first if r.status == pb.ENROL_STATUS_ENROLLED}
    _redis_back(stack, state)
    assert client.get(deployment_id).enrolled_images == len(acknowledged)

    def index_agrees():  # what the janitor counts in the index, and match in its copy, every second
        for service in ("deployments", "match"):
            entries = scraped(stack.http_port(service), "lfr_watchlist_entries", deployment_id=deployment_id)
            assert entries == len(acknowledged), (service, entries, len(acknowledged))

    eventually(index_agrees, timeout_s=30)
    again = list(client.enrol(deployment_id, iter_messages(items)))
    for result in again:
        if result.client_ref in acknowledged:
            assert result.reason == pb.REJECTION_REASON_DUPLICATE, result
    enrolled = len(acknowledged) + sum(r.status == pb.ENROL_STATUS_ENROLLED for r in again)
    assert enrolled >= 15 and client.get(deployment_id).enrolled_images == enrolled
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    audits = decoded(AUDIT_RECORDED, asyncio.run(read(platform, AUDIT_RECORDED, count=3, settle_s=1)))
    enrolments = [a for a in audits if a.event == "watchlist.enrolled" and a.deployment_id == deployment_id]
    assert len(enrolments) == 2  # the interrupted stream is audited too
    client.close_channel()


def test_a_crash_mid_enrolment_loses_no_audit(stack, tmp_path, data_dir):
    """Bus failure 8: six images of a stream cut by a SIGKILL of deployments were in the watchlist and
    acknowledged, without their audit (the audit said 25, the watchlist 31). Each image's audit event
    is written in the Redis transaction that records it, before its acknowledgement. Issue 25 (3):
    whatever step the kill hit, the watchlist log (match's copy) and Redis agree afterwards, and no
    entry is left pending."""
    state = stack.start(services=("deployments", "match"))
    client, deployment_id = _created(state, timeout_s=120)
    items = list(scan(demo_data.build_watchlist(data_dir, tmp_path / "watchlist"), category="wanted", approved_by="B"))
    acknowledged: list[pb.EnrolWatchlistResponse] = []
    with pytest.raises(grpc.RpcError):
        for result in client.enrol(deployment_id, iter_messages(items)):
            if result.status == pb.ENROL_STATUS_ENROLLED:
                acknowledged.append(result)
            if len(acknowledged) == 3:
                _killed_and_back(stack, "deployments")  # mid-stream: more photos are sent, some analysed
    assert len(acknowledged) >= 3
    recorded = client.get(deployment_id).enrolled_images  # in Redis: acknowledged, or not yet when killed
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)

    def audited() -> set[str]:
        audits = decoded(AUDIT_RECORDED, asyncio.run(read(platform, AUDIT_RECORDED, count=1, settle_s=1)))
        entries = {
            a.details["entry_id"]
            for a in audits
            if a.event == "watchlist.image_enrolled" and a.deployment_id == deployment_id
        }
        assert len(entries) >= recorded, f"{len(entries)} images audited, {recorded} recorded"
        return entries

    entries = eventually(audited, timeout_s=60)  # the restarted service drains its outbox
    assert {r.entry_id for r in acknowledged} <= entries and len(entries) == recorded

    def log_and_redis_agree():  # match's copy is built from the log; an entry left pending is undone in 60 s
        recorded = client.get(deployment_id).enrolled_images
        entries = scraped(stack.http_port("match"), "lfr_watchlist_entries", deployment_id=deployment_id)
        assert entries == recorded, (entries, recorded)
        pending = redis.Redis.from_url(state.redis_url)
        assert not pending.hgetall(RedisKeys(state.redis_prefix).pending_entries(deployment_id))
        pending.close()

    eventually(log_and_redis_agree, timeout_s=120)
    client.close_channel()


def _kcat(bootstrap: str, topic: str) -> list[str]:
    """The keys of every record of a topic, read by Debian's kcat (librdkafka), as a control-room
    system on a non-Java client reads them."""
    result = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\\n"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_on_noida_db_kcat_reads_alerts_a_broker_restart_loses_none_and_frames_go_with_retention(
    tmp_path, data_dir, models_dir, monkeypatch
):
    monkeypatch.setenv("LFR_CLI_BROKER", "noida-db")
    # Frames, faces and vectors of passers-by are kept 10 s here (60 s by default); alerts 7 days.
    stack = Stack(tmp_path / "stack", models_dir=models_dir, extra_env={"LFR_BIOMETRIC_RETENTION_S": "10"})
    try:
        state = stack.start(services=("deployments", "detect", "embed", "match", "alert"))
        assert state.broker == "noida-db"
        bootstrap = state.kafka_bootstrap_servers
        client, deployment_id = _deployment(state, data_dir, tmp_path)
        video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
        camera = {"camera_id": "cam-1", "deployment_id": deployment_id, "source": str(video), "fps": 5}
        stack.start_service("ingest", cameras=[camera])
        stack.wait_ready(("ingest",), 60)

        def frames_streamed():
            assert _kcat(bootstrap, FRAMES_CAPTURED.name("")), "no frame on its topic yet"

        eventually(frames_streamed, timeout_s=60)  # (so that their absence later is retention's doing)

        def alerts_by_kcat():
            keys = [k for k in _kcat(bootstrap, ALERTS_RAISED.name("")) if k.startswith(f"{deployment_id}/")]
            assert keys, "no alert read by kcat yet"
            return keys

        before = eventually(alerts_by_kcat, timeout_s=240)
        assert before[0] == f"{deployment_id}/van-1/cam-1"

        # The broker restarted on its port and folder: what it acknowledged is there. (Stopped, not
        # SIGKILLed: noida-db writes its snapshot about every second, and a SIGKILL loses what it took
        # in the last second; docs/decisions/0009.)
        stack.halt("broker")
        stack.resume("broker")
        after = eventually(alerts_by_kcat, timeout_s=60)
        assert len(after) >= len(before)

        # ... and the pipeline goes on through it: the clip's frames end up scanned and counted.
        def camera_finished():
            finished = scraped(stack.http_port("ingest"), "lfr_camera_finished")
            assert finished == 1.0, finished
            report = client.report(deployment_id)
            assert report.faces_scanned > 0 and report.outcomes.alerts >= 1

        eventually(camera_finished, timeout_s=240)

        # Retention really deletes: once the clip has ended, the biometric topics empty themselves
        # (noida-db applies retention.ms as Kafka does), while the alerts stay for adjudication.
        def biometric_topics_empty():
            for topic in (FRAMES_CAPTURED, FACES_DETECTED, FACES_EMBEDDED):
                left = _kcat(bootstrap, topic.name(""))
                assert not left, f"{len(left)} record(s) left on {topic.name('')}"

        eventually(biometric_topics_empty, timeout_s=120, interval_s=2)
        assert len(alerts_by_kcat()) >= len(before)
        client.close_channel()
    finally:
        stack.stop()


def test_a_forged_epoch_and_a_forged_continuation_on_the_trail_are_named_by_lfr_audit_verify(stack, capsys):
    """Issue 25 (5), on the stack's broker: anyone who can produce to the audit topic appends a new
    epoch and a continuation of the chain, each hashed and linked; with the published audit key
    (derived from the stack's key-encryption key, as the deployments service logs it), `lfr audit
    verify` names both as forged and never blames the genuine entry after them."""
    state = stack.start(services=("deployments",))
    client, deployment_id = _created(state)
    platform = PlatformSettings(kafka_bootstrap_servers=state.kafka_bootstrap_servers)
    trail = asyncio.run(read(platform, AUDIT_RECORDED, count=2, settle_s=1))
    head = trail[-1]
    forged = []
    for event_id, epoch in (("e" * 32, "forged"), ("c" * 32, "")):
        message = AUDIT_RECORDED.decode(head.value)
        message.event, message.event_id = "deployment.closed", event_id
        if epoch:
            message.link.epoch, message.link.sequence, message.link.previous_hash = epoch, 0, bytes(32)
        else:
            message.link.sequence += 1
            message.link.previous_hash = entry_hash(head.value)
        forged.append((head.key, seal_entry(message, os.urandom(32))[0]))
    asyncio.run(produce(platform, AUDIT_RECORDED, forged))
    client.close(deployment_id)  # genuine writes after the forged ones
    public_key = public_key_of(root_signing_key(KeyWrap.from_file(stack.root / "kek")))
    capsys.readouterr()
    verify = ["audit", "verify", "--bootstrap-servers", state.kafka_bootstrap_servers, "--topic-prefix", ""]
    assert lfr(verify + ["--public-key", public_key.hex()]) == 1
    out = capsys.readouterr().out
    assert f"chain broken: forged: partition {head.partition}" in out and f"event_id {'e' * 32}" in out, out
    assert f"event_id {'c' * 32}: no published audit key signed it" in out, out
    assert "inserted" not in out and "dropped" not in out, out
    client.close_channel()

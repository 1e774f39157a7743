"""The DeploymentService over real gRPC, Redis and the broker: calls, roles, governance, audit."""

import json
import logging
import time

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import frames_pb2
from lfr_contracts import AUDIT_RECORDED, FRAMES_CAPTURED
from lfr_deployments.app import build
from lfr_deployments.policy import SHIPPED, DeploymentPolicy
from lfr_deployments.provenance import pseudonym
from lfr_faces import calibration
from lfr_platform import sealing
from lfr_platform.auth import Authenticator
from lfr_platform.logs import JsonFormatter
from lfr_platform.registry import DeploymentStats, RedisKeys, kept_in_tombstone
from lfr_testing.deployments import (
    VIEWER_TOKEN,
    Api,
    create_request,
    deployments_settings,
    provenance,
)
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.media import lfw
from lfr_testing.services import deployment_key, running
from lfr_watchlist.templates import most_entries

pytestmark = pytest.mark.integration


def _image(data_dir, identity, n=1, subject=None):
    return pb.WatchlistImage(
        **provenance(),
        client_ref=f"{identity}_{n}",
        subject_id=subject or identity,
        category="wanted",
        source_reference=f"PNC/{identity}",
        approved_by="Insp. Approver",
        image=lfw(data_dir, identity, n).read_bytes(),
    )


async def _audit(platform, count):
    return decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=count, settle_s=0.5))


BUDGET = DeploymentPolicy.load(SHIPPED).false_alert_budget


def _derived(entries: int) -> float:
    """The threshold the shipped calibration and policy give a list of `entries`."""
    point = calibration.load("sface-2021dec").operating_point(entries, BUDGET)
    return point.threshold if point.threshold is not None else point.model_max


async def test_create_get_list_close_with_the_derived_threshold(platform, deployments, data_dir):
    api = Api(deployments.control.port)
    created = await api("create", create_request())
    assert created.deployment_id.startswith("dep-") and created.state == pb.DEPLOYMENT_STATE_ACTIVE
    # Derived for the default size limit: 10,000 images and the templates they may add.
    assert (created.threshold, created.threshold_floor, created.model_id) == (
        pytest.approx(_derived(most_entries(10_000))),
        pytest.approx(_derived(most_entries(10_000))),
        "sface-2021dec",
    )
    point = created.operating_point
    assert (point.entries, point.threshold_source, point.budget) == (
        most_entries(10_000),
        "derived",
        pytest.approx(BUDGET),
    )
    assert point.curve_version == calibration.load("sface-2021dec").version and point.group
    assert [row.entries for row in point.tradeoff] == [most_entries(10_000) * m for m in (1, 3, 10)]
    results = await api.enrol(created.deployment_id, [_image(data_dir, "Colin_Powell")], expected=1)
    assert [r.status for r in results] == [pb.ENROL_STATUS_ENROLLED] and results[0].entry_id
    got = await api("get", created.deployment_id)
    assert (got.enrolled_images, got.enrolled_subjects, got.created_by) == (1, 1, "officer-1")
    assert [d.deployment_id for d in await api("list")] == [created.deployment_id]
    smaller = await api("create", create_request(watchlist_size_limit=100))
    assert smaller.threshold < created.threshold  # a targeted list finds more at the same budget
    await api("close", smaller.deployment_id, "not needed")
    closed = await api("close", created.deployment_id, "operation over")
    assert closed.state == pb.DEPLOYMENT_STATE_CLOSED and closed.closed_by == "officer-1"
    assert closed.deletion.watchlist_points_deleted == 1 and closed.deletion.data_key_destroyed
    again = await api("close", created.deployment_id)  # idempotent: same report
    assert again.deletion == closed.deletion
    audit = [
        a
        for a in await _audit(platform, 12)
        if a.event != "deployment.started" and a.deployment_id == created.deployment_id
    ]
    assert [a.event for a in audit] == [
        "deployment.created",
        "threshold.set",
        "watchlist.image_enrolled",  # each image, with its provenance, in the transaction that records it
        "watchlist.enrolled",  # the stream's summary
        "deployment.closed",
        "deployment.data_deleted",
        "deployment.reported",
    ]
    image = audit[2]
    # The trail is kept for good: it names the subject by a pseudonym whose key lives exactly as long
    # as the manifest (issue 25, item 5); neither the subject id nor the image's source is in it.
    store = deployments.control.service.store
    subject = pseudonym(await store.pseudonym_key(created.deployment_id), "Colin_Powell")
    assert {k: image.details[k] for k in ("entry_id", "subject", "approved_by")} == {
        "entry_id": results[0].entry_id,
        "subject": subject,
        "approved_by": "Insp. Approver",
    }
    assert "subject_id" not in image.details and "source_reference" not in image.details
    keys = RedisKeys(platform.redis_prefix)
    manifest_ttl = await store.client.pttl(keys.manifest(created.deployment_id))
    assert (
        manifest_ttl > 0
        and abs(await store.client.pttl(keys.pseudonym_key(created.deployment_id)) - manifest_ttl) < 5000
    )


async def test_thresholds_below_the_derived_one_need_a_recorded_reason(platform, deployments):
    api = Api(deployments.control.port)
    calib = calibration.load("sface-2021dec")
    below = round(_derived(most_entries(10_000)) - 0.03, 3)
    with pytest.raises(grpc.RpcError) as refused:
        await api("create", create_request(threshold=below))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the threshold derived for 15,000 watchlist entries" in refused.value.details()
    with pytest.raises(grpc.RpcError) as refused:
        await api("create", create_request(threshold=calib.model_min - 0.01, threshold_override_reason="any"))
    assert (
        "below the model minimum" in refused.value.details() and "no override goes below it" in refused.value.details()
    )
    created = await api(
        "create",
        create_request(
            threshold=below, threshold_override_reason="missing child, ACC", false_alert_override_reason="one child"
        ),
    )
    assert created.threshold == pytest.approx(below) and created.threshold_override_reason == "missing child, ACC"
    assert created.operating_point.threshold_source == "overridden"
    audit = {a.event: a for a in await _audit(platform, 3)}
    override = audit["threshold.overridden"]
    assert override.actor == "officer-1" and override.details["override_reason"] == "missing child, ACC"
    assert override.details["derived_threshold"] == pytest.approx(_derived(most_entries(10_000)))
    inputs = override.details["operating_point"]
    assert (inputs["entries"], inputs["curve_version"]) == (most_entries(10_000), calib.version)
    assert inputs["budget"] == pytest.approx(BUDGET) and inputs["group"]


async def test_roles_and_tokens_are_enforced_and_refusals_audited(platform, deployments):
    viewer = Api(deployments.control.port, VIEWER_TOKEN)
    stranger = Api(deployments.control.port, "not-a-token-of-this-installation")
    created = await Api(deployments.control.port)("create", create_request())
    assert (await viewer("get", created.deployment_id)).deployment_id == created.deployment_id
    assert len(await viewer("list")) == 1
    for call, args in (("create", (create_request(),)), ("close", (created.deployment_id,))):
        with pytest.raises(grpc.RpcError) as denied:
            await viewer(call, *args)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as unauthenticated:
        await stranger("list")
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    denials = [a for a in await _audit(platform, 5) if a.event == "access.denied"]
    assert [(a.actor, a.details["outcome"]) for a in denials] == [
        ("analyst-1", "PERMISSION_DENIED"),
        ("analyst-1", "PERMISSION_DENIED"),
        ("unauthenticated", "UNAUTHENTICATED"),
    ]


async def test_refusals_cost_the_caller_bounded_escaped_and_rate_limited(platform, deployments, caplog):
    """Bus failure 7: a call with no token and a 3,000,000-character deployment id wrote a 3 MB
    access.denied record to the audit topic (kept forever) and a 3 MB log line; a newline in the id
    forged a log line of its own."""
    stranger = Api(deployments.control.port, "not-a-token-of-this-installation")
    forged_line = '\n{"level": "info", "msg": "deployment closed by Supt. A"}'
    huge = "dep-" + "x" * 3_000_000 + forged_line
    dropped = REGISTRY.get_sample_value("lfr_audit_refusals_dropped_total") or 0.0
    calls = Authenticator.UNAUTHENTICATED_AUDITS_PER_MINUTE + 5
    caplog.set_level(logging.INFO)
    for _ in range(calls):
        with pytest.raises(grpc.RpcError) as refused:
            await stranger("get", huge)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    audited = [
        a for a in await _audit(platform, Authenticator.UNAUTHENTICATED_AUDITS_PER_MINUTE) if a.event == "access.denied"
    ]
    # At most so many a minute from one address are written; the rest answered the same, and counted.
    assert len(audited) == Authenticator.UNAUTHENTICATED_AUDITS_PER_MINUTE
    assert (REGISTRY.get_sample_value("lfr_audit_refusals_dropped_total") or 0.0) - dropped == 5
    for event in audited:
        assert len(event.SerializeToString()) < 4096 and event.deployment_id.endswith(f"…[{len(huge) - 256} more]")
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("lfr_")]
    assert lines and all("\n" not in line and len(line) < 8192 for line in lines)
    assert not any("deployment closed by Supt. A" in line and "\\n" not in line for line in lines)


async def test_unknown_ids_and_closed_deployments_are_refused(platform, deployments, data_dir):
    api = Api(deployments.control.port)
    for call in ("get", "close"):
        with pytest.raises(grpc.RpcError) as missing:
            await api(call, "dep-does-not-exist")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as missing:
        await api.enrol("dep-does-not-exist", [_image(data_dir, "Colin_Powell")])
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    created = await api("create", create_request())
    await api("close", created.deployment_id)
    with pytest.raises(grpc.RpcError) as closed:
        await api.enrol(created.deployment_id, [_image(data_dir, "Colin_Powell")])
    assert closed.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_after_close_nothing_biometric_remains(platform, deployments, data_dir):
    api = Api(deployments.control.port)
    keys = RedisKeys(platform.redis_prefix)
    created = await api("create", create_request())
    deployment_id = created.deployment_id
    await api.enrol(deployment_id, [_image(data_dir, "Colin_Powell"), _image(data_dir, "Ariel_Sharon")])
    client = aioredis.from_url(platform.redis_url)
    data_key = await deployment_key(platform, deployment_id)
    # What the pipeline leaves: alert state under the deployment, a sealed frame on a topic.
    await client.set(keys.alert_window(deployment_id, "van-1:cam-1", "Colin_Powell"), "alert-1")
    await client.set(keys.alert_crop(deployment_id, "alert-1"), sealing.seal(data_key, b"jpeg", deployment_id))
    frame = frames_pb2.FrameCaptured(image=sealing.seal(data_key, b"\xff\xd8 a face \xff\xd9", deployment_id))
    await produce(platform, FRAMES_CAPTURED, [(b"k", frame.SerializeToString())])
    assert deployment_id in deployments.control.service.index.collections()

    await api("close", deployment_id)

    assert deployment_id not in deployments.control.service.index.collections()
    assert not (deployments.control.service.index.data_dir / deployment_id).exists()
    left = {k.decode() async for k in client.scan_iter(match=f"{platform.redis_prefix}:*")}
    # The tombstone, the index of deployments and the (empty) outbox of records for the broker.
    # (and the janitor's marker of this Redis, whose loss would say that Redis lost data).
    # And its alert-signing key: it signs decisions made after the close and opens nothing; wrapped by
    # the key-encryption key, it expires by itself the operational retention after the planned end.
    # And the ids-only manifest of its watchlist (subject ids, sources; no image, no template), kept for
    # subject access requests the policy's manifest_retention_days, then deleted by Redis; and the key
    # of the audit trail's subject pseudonyms, wrapped, deleted with it.
    # And the audit chains' heads, day counts and markers of events chained (hashes, sequences and
    # event ids: docs/audit.md), beside the outbox.
    chain = {k for k in left if k.startswith(f"{keys.outbox()}:chain:")}
    assert chain and left - chain - {keys.all_deployments(), keys.outbox(), keys.epoch()} == {
        keys.deployment(deployment_id),
        keys.alert_key(deployment_id),
        keys.manifest(deployment_id),
        keys.pseudonym_key(deployment_id),
        keys.listed("Colin_Powell"),
        keys.listed("Ariel_Sharon"),
    }
    assert 0 < await client.ttl(keys.manifest(deployment_id)) <= 365 * 86400
    assert 0 < await client.ttl(keys.pseudonym_key(deployment_id)) <= 365 * 86400
    assert 0 < await client.ttl(keys.alert_key(deployment_id)) <= 2 * 3600 + 7 * 86400
    assert await client.xlen(keys.outbox()) == 0
    tombstone = {k.decode() for k in await client.hkeys(keys.deployment(deployment_id))}
    assert all(kept_in_tombstone(f) for f in tombstone)
    assert (
        json.loads((await client.hget(keys.deployment(deployment_id), "deletion")).decode())["redis_keys_deleted"] >= 4
    )
    # A consumer reading the topic after close: the payload is there, no key can open it.
    payload = decoded(FRAMES_CAPTURED, await read(platform, FRAMES_CAPTURED, count=1))[0].image
    assert await client.get(keys.data_key(deployment_id)) is None
    with pytest.raises(sealing.SealError):
        sealing.unseal(sealing.new_data_key(), payload, deployment_id)
    await client.aclose()


async def test_a_deployment_expires_at_its_end_even_across_restarts(platform, tmp_path, data_dir, eventually):
    settings = deployments_settings(tmp_path)
    first = build(platform, settings)
    async with running(first):
        request = create_request()
        request.planned_end.FromNanoseconds(int((time.time() + 3600) * 1e9))
        created = await Api(first.control.port)("create", request)
        results = await Api(first.control.port).enrol(created.deployment_id, [_image(data_dir, "Colin_Powell")])
        assert [r.status for r in results] == [pb.ENROL_STATUS_ENROLLED], results
    # It ends while the deployments service is down: the service comes back two hours later.
    second = build(platform, settings, clock=lambda: time.time() + 7200)
    async with running(second):
        api = Api(second.control.port)

        async def erased():  # expired (marked first), then erased: the deletion report is written last
            got = await api("get", created.deployment_id)
            assert got.HasField("deletion"), "not expired and erased by the janitor"
            return got

        got = await eventually(erased, timeout_s=20)
        assert got.state == pb.DEPLOYMENT_STATE_EXPIRED
        assert got.closed_by == "system" and got.deletion.watchlist_points_deleted == 1
        assert created.deployment_id not in second.control.service.index.collections()
    events = [a.event for a in await _audit(platform, 5)]
    assert "deployment.expired" in events and "deployment.data_deleted" in events


async def test_a_deployment_whose_state_redis_lost_is_recorded_audited_and_deleted_never_silently(
    platform, deployments, data_dir, eventually
):
    """Redis restarted without its data: the watchlist left in the deployments service cannot be used any more (its key
    went with the record). It is recorded as lost, audited and alerted on before it is deleted."""
    from prometheus_client import REGISTRY

    from lfr.v1 import common_pb2
    from lfr_platform.registry import DeploymentRegistry, admit

    api = Api(deployments.control.port)
    created = await api("create", create_request())
    deployment_id = created.deployment_id
    await api.enrol(deployment_id, [_image(data_dir, "Colin_Powell")])
    lost_before = REGISTRY.get_sample_value("lfr_deployments_lost_total") or 0.0
    client = aioredis.from_url(platform.redis_url)
    keys = RedisKeys(platform.redis_prefix)

    async def epoch_seen():  # the janitor has seen this Redis once
        assert await client.get(keys.epoch()) is not None, "no epoch marker yet"

    await eventually(epoch_seen, timeout_s=20)
    # Every key of this installation gone, as after a restart of a Redis that kept nothing on disk.
    async for key in client.scan_iter(match=f"{platform.redis_prefix}:*"):
        await client.delete(key)

    async def recorded_lost():  # NOT_FOUND until the janitor's next sweep records the loss
        listed = {d.deployment_id: d for d in await api("list")}
        assert deployment_id in listed and listed[deployment_id].state == pb.DEPLOYMENT_STATE_LOST, "not detected"

    await eventually(recorded_lost, timeout_s=20)

    async def deleted():  # recorded lost first, then deleted: its report follows within the same sweep
        got = await api("get", deployment_id)
        assert got.HasField("deletion"), "the lost deployment's watchlist was not deleted"
        return got

    got = await eventually(deleted, timeout_s=20)
    assert deployment_id not in deployments.control.service.index.collections()
    assert got.deletion.collection_dropped and got.deletion.watchlist_points_deleted == 1
    assert REGISTRY.get_sample_value("lfr_deployments_lost_total") == lost_before + 1
    events = {(a.event, a.deployment_id) for a in await _audit(platform, 6)}
    assert {("state.lost", ""), ("deployment.state_lost", deployment_id)} <= events
    assert ("deployment.data_deleted", deployment_id) in events
    # Frames still arriving for it are refused with the reason, not matched and not silently dropped.
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    refused = await admit(DeploymentRegistry(client, keys, platform.key_wrap()), camera)
    assert refused.reason == "deployment_state_lost"
    await client.aclose()


async def test_grpc_health_and_reflection_are_served(deployments):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{deployments.control.port}")
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="lfr.v1.DeploymentService")
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    await channel.close()


async def test_the_policys_perceived_lists_and_equity_block_go_into_the_record_and_the_report(platform, deployments):
    api = Api(deployments.control.port)
    created = await api("create", create_request())
    lists = created.perceived_groups  # what the console offers and alert checks against
    assert (list(lists.sex), list(lists.ethnicity)) == (
        ["female", "male"],
        ["IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9"],
    )
    client = aioredis.from_url(platform.redis_url)
    keys = RedisKeys(platform.redis_prefix)
    try:
        # As alert counts the officers' decisions: 10 false alerts perceived IC3, 2 IC1; 1 true IC1.
        counts = {"perceived_false:ethnicity:IC3": 10, "perceived_false:ethnicity:IC1": 2}
        await DeploymentStats(client, keys).add(
            created.deployment_id, "van-1", **counts, **{"perceived_true:ethnicity:IC1": 1}
        )
        record = {
            k.decode(): v.decode() for k, v in (await client.hgetall(keys.deployment(created.deployment_id))).items()
        }
    finally:
        await client.aclose()
    assert json.loads(record["equity"])["min_false_alerts"] == 10 and "IC9" in record["perceived_groups"]
    assert not [k for k in record if k.startswith("stats:perceived") and "@" in k]  # no per-van split

    report = await api("report", created.deployment_id)
    equity = report.equity
    assert dict(equity.false_alerts_tested) == {"ethnicity": 12, "sex": 0}
    ic3 = next(g for g in equity.groups if g.group == "IC3")
    assert (ic3.false_alerts, ic3.reference_share, ic3.disparity) == (10, pytest.approx(0.042), True)
    assert ic3.p_value < 1e-10
    ic9 = next(g for g in equity.groups if g.group == "IC9")
    assert not ic9.HasField("reference_share") and not ic9.HasField("p_value")
    await api("close", created.deployment_id, "operation over")
    after = await api("report", created.deployment_id)  # from the tombstone
    assert after.equity == equity and kept_in_tombstone("equity") and kept_in_tombstone("perceived_groups")


async def test_a_record_from_before_its_version_is_migrated_once_and_an_unreadable_one_refused_by_name(
    platform, deployments, eventually
):
    """After an upgrade: a record an older release wrote (no version, no creator, no operating point,
    no budget) is read with its defaults, logged and counted once, and the janitor writes its version;
    a field no release writes, or a value that does not parse, is refused with the field named."""
    api = Api(deployments.control.port)
    old = await api("create", create_request(urgent=True, hours=4))
    bad = await api("create", create_request())
    client = aioredis.from_url(platform.redis_url)
    keys = RedisKeys(platform.redis_prefix)
    before = REGISTRY.get_sample_value("lfr_deployment_records_migrated_total", {"from_version": "0"}) or 0.0
    try:
        older = ("version", "created_by", "operating_point", "false_alert_budget")
        await client.hdel(keys.deployment(old.deployment_id), *older)
        got = await api("get", old.deployment_id)
        assert (got.created_by, got.HasField("operating_point"), got.name) == ("", False, "Operation Test")

        async def versioned():
            assert await client.hget(keys.deployment(old.deployment_id), "version") == b"1", "not migrated yet"

        await eventually(versioned, timeout_s=20)
        migrated = REGISTRY.get_sample_value("lfr_deployment_records_migrated_total", {"from_version": "0"})
        assert migrated == before + 1  # read by the call and by every sweep since: counted once
        assert (await api("ratify", old.deployment_id, "Ch Insp. B")).ratified_by == "Ch Insp. B"

        # A field this release does not know (a newer release's) is left unread: the record still serves.
        await client.hset(keys.deployment(bad.deployment_id), "surname", "Example")
        assert (await api("get", bad.deployment_id)).deployment_id == bad.deployment_id
        # A value that does not parse is refused with the field named.
        await client.hset(keys.deployment(bad.deployment_id), "threshold", "high")
        with pytest.raises(grpc.RpcError) as refused:
            await api("get", bad.deployment_id)
        assert refused.value.code() == grpc.StatusCode.INTERNAL
        assert (
            f"the record of deployment {bad.deployment_id!r} cannot be read: field 'threshold' is malformed: Input "
            "should be a valid number" in refused.value.details()
        )
        listed = {d.deployment_id for d in await api("list")}
        assert old.deployment_id in listed and bad.deployment_id not in listed  # left out, logged
        await api("close", old.deployment_id, "operation over")  # the janitor carried on meanwhile
    finally:
        await client.aclose()

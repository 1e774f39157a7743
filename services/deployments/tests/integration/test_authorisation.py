"""Authorisation that bounds matching (issue 18): the window decided on capture time, `where` from the
policy file's closed list, and urgent deployments ratified in writing by another officer or closed."""

import time

import grpc
import pytest
import redis.asyncio as aioredis

from lfr.v1 import common_pb2
from lfr.v1 import deployments_pb2 as pb
from lfr_contracts import AUDIT_RECORDED
from lfr_deployments.app import build
from lfr_deployments.provenance import pseudonym
from lfr_platform.registry import DeploymentRegistry, RedisKeys, admit
from lfr_platform.runtime import StartRefused
from lfr_testing.deployments import (
    SCOPED_DEPLOYMENT,
    SCOPED_MANAGER_TOKEN,
    SECOND_MANAGER_TOKEN,
    VIEWER_TOKEN,
    Api,
    create_request,
    deployments_settings,
    policy_yaml,
    provenance,
)
from lfr_testing.kafka import decoded, read
from lfr_testing.media import lfw
from lfr_testing.services import running

pytestmark = pytest.mark.integration

POLICY = policy_yaml(ratify_within_h=1)


async def test_a_record_captured_outside_the_window_is_skipped_whenever_it_is_processed(platform, deployments):
    created = await Api(deployments.control.port)("create", create_request())
    start, end = created.planned_start.ToNanoseconds() / 1e9, created.planned_end.ToNanoseconds() / 1e9
    client = aioredis.from_url(platform.redis_url)
    registry = DeploymentRegistry(client, RedisKeys(platform.redis_prefix), platform.key_wrap())
    camera = common_pb2.CameraRef(deployment_id=created.deployment_id, van_id="van-1", camera_id="cam-1")
    try:
        for captured_at in (start - 60, end + 1):  # a van clock an hour behind, a frame after the end
            assert (await admit(registry, camera, captured_at)).reason == "outside_authorisation"
        # Inside the window: on to the next gate (its watchlist is not reviewed yet).
        assert (await admit(registry, camera, start + 1)).reason == "watchlist_not_reviewed"
    finally:
        await client.aclose()


async def test_where_is_one_of_the_policys_and_location_is_required(deployments):
    api = Api(deployments.control.port)
    for overrides, message in (
        ({"where": "car_park"}, "where 'car_park' is not one of the policy's: crime_hotspot, protective_security"),
        ({"location": ""}, "location is required"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            await api("create", create_request(**overrides))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in refused.value.details()
    created = await api("create", create_request(where="protective_security"))
    assert created.where == "protective_security" and not created.urgent


async def test_an_urgent_deployment_is_ratified_by_another_officer_or_closed_when_its_time_runs_out(
    platform, tmp_path, eventually
):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = deployments_settings(tmp_path, policy_file=policy)
    async with running(build(platform, settings)) as first:
        api = Api(first.control.port)  # officer-1, who creates
        other = Api(first.control.port, SECOND_MANAGER_TOKEN)  # officer-2, another principal
        urgent = await api("create", create_request(urgent=True, authorising_officer="Supt. A. Example", hours=4))
        ratified = await api("create", create_request(urgent=True, authorising_officer="Supt. A. Example", hours=4))
        written = await api("create", create_request())
        assert urgent.urgent and urgent.ratify_by.ToNanoseconds() / 1e9 == pytest.approx(time.time() + 3600, abs=60)
        assert ratified.created_by == "officer-1"
        for who, deployment_id, officer, code, message in (
            # The creator's own token, whatever name it gives: refused on the caller, not on the name.
            (api, urgent.deployment_id, "Ch Insp. B", grpc.StatusCode.PERMISSION_DENIED, "another principal"),
            # Another principal naming the authorising officer, written differently: still the same officer.
            (other, urgent.deployment_id, "supt a  example ", grpc.StatusCode.INVALID_ARGUMENT, "another officer must"),
            (other, written.deployment_id, "Ch Insp. B", grpc.StatusCode.FAILED_PRECONDITION, "nothing to ratify"),
            (other, urgent.deployment_id, " ", grpc.StatusCode.INVALID_ARGUMENT, "officer is required"),
            (
                Api(first.control.port, VIEWER_TOKEN),
                urgent.deployment_id,
                "Ch Insp. B",
                grpc.StatusCode.PERMISSION_DENIED,
                "",
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                await who("ratify", deployment_id, officer)
            assert refused.value.code() == code and message in refused.value.details()
        done = await other("ratify", ratified.deployment_id, "Ch Insp. B")
        assert done.ratified_by == "Ch Insp. B" and done.HasField("ratified_at")
        assert (await other("ratify", ratified.deployment_id, "Ch Insp. B")) == done  # a repeat changes nothing
    # The service again, two hours on: the urgent deployment's hour has run out.
    async with running(build(platform, settings, clock=lambda: time.time() + 7200)) as later:
        api = Api(later.control.port)

        async def closed():
            got = await api("get", urgent.deployment_id)
            assert got.state == pb.DEPLOYMENT_STATE_CLOSED and got.HasField("deletion"), got.state
            return got

        got = await eventually(closed, timeout_s=30)
        assert "not ratified" in got.close_reason and got.closed_by == "system"
        report = await api("report", urgent.deployment_id)
        assert (report.authorisation, report.where) == ("urgent, not ratified", "intelligence_led")
        assert "not ratified" in report.close_reason
        assert (await api("get", ratified.deployment_id)).state == pb.DEPLOYMENT_STATE_ACTIVE
        with pytest.raises(grpc.RpcError) as late:
            await api("ratify", urgent.deployment_id, "Ch Insp. B")
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "too late" in late.value.details()
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=12, settle_s=0.5))
    events = [(a.event, a.deployment_id) for a in audit]
    assert ("deployment.ratified", ratified.deployment_id) in events
    assert events.count(("deployment.ratification_refused", urgent.deployment_id)) >= 2
    assert ("deployment.closed", urgent.deployment_id) in events


async def test_a_manager_scoped_to_one_deployment_may_not_create_one_and_is_audited(platform, deployments):
    scoped = Api(deployments.control.port, SCOPED_MANAGER_TOKEN)
    with pytest.raises(grpc.RpcError) as refused:
        await scoped("create", create_request())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "manager-scoped's token is scoped" in refused.value.details() and "create a deployment" in (
        refused.value.details()
    )
    # Within its scope, it reads as before (and its deployment does not exist).
    with pytest.raises(grpc.RpcError) as missing:
        await scoped("get", SCOPED_DEPLOYMENT)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert not [d for d in await Api(deployments.control.port)("list") if d.created_by == "manager-scoped"]

    def denied(audit):
        return [a for a in audit if a.event == "access.denied" and a.actor == "manager-scoped"]

    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=1, settle_s=0.5))
    [entry] = denied(audit)
    assert (entry.role, entry.details["action"], entry.details["outcome"]) == (
        "manager",
        "create a deployment",
        "PERMISSION_DENIED",
    )


async def test_a_record_without_its_creator_falls_back_to_the_officers_names_and_says_so(platform, deployments):
    """A deployment recorded before its creating principal was kept: only the names can be compared."""
    api = Api(deployments.control.port)
    old = await api("create", create_request(urgent=True, authorising_officer="Supt A Example", hours=4))
    client = aioredis.from_url(platform.redis_url)
    await client.hdel(RedisKeys(platform.redis_prefix).deployment(old.deployment_id), "created_by")
    await client.aclose()
    with pytest.raises(grpc.RpcError) as refused:
        await api("ratify", old.deployment_id, "Supt. A. Example")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "another officer must ratify it" in refused.value.details()
    assert "names no creating principal: only the officers' names could be compared" in refused.value.details()
    assert (await api("ratify", old.deployment_id, "Ch Insp. B")).ratified_by == "Ch Insp. B"


async def test_a_bad_policy_file_stops_the_service_with_the_field_named(platform, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("ratify_within_h: 1", "ratify_within_h: -1"))
    with pytest.raises(StartRefused, match="ratify_within_h: Input should be greater than 0"):
        build(platform, deployments_settings(tmp_path, policy_file=policy))
    # A watchlist enrolled longer before its window than the watchlist log keeps would leave the log
    # while its deployment runs: refused with both numbers named.
    policy.write_text(policy_yaml(compile_before_start_h=400))
    with pytest.raises(StartRefused, match=r"compile_before_start_h \(400 h.*LFR_WATCHLIST_RETENTION_S=\d+ s"):
        build(platform, deployments_settings(tmp_path, policy_file=policy))


async def test_was_listed_is_answered_after_close_from_an_ids_only_manifest(platform, deployments, data_dir, tmp_path):
    """What a subject may ask: after the watchlist is destroyed, the ids-only manifest (subject id,
    category, source, approver; no image, no template) answers "was X on deployment D?" for the
    policy's manifest_retention_days, to a manager, audited; then nothing is answered."""
    api = Api(deployments.control.port)
    created = await api("create", create_request())
    photos = [("Colin_Powell", "S-1042"), ("Ariel_Sharon", "S-2217")]
    images = [
        pb.WatchlistImage(**provenance(),
            client_ref=person, subject_id=subject, category="wanted", source_reference=f"PNC/{subject}",
            approved_by="Insp. B", image=lfw(data_dir, person, 1).read_bytes(),
        )
        for person, subject in photos
    ]  # fmt: skip
    assert all(r.status == pb.ENROL_STATUS_ENROLLED for r in await api.enrol(created.deployment_id, images))
    closed = await api("close", created.deployment_id, "operation over")
    assert closed.deletion.watchlist_points_deleted == 2 and closed.deletion.data_key_destroyed
    manifest = await api("manifest", created.deployment_id)
    assert [(e.subject_id, e.category, e.source_reference, e.approved_by) for e in manifest.entries] == [
        ("S-1042", "wanted", "PNC/S-1042", "Insp. B"),
        ("S-2217", "wanted", "PNC/S-2217", "Insp. B"),
    ]
    assert manifest.kept_until.ToNanoseconds() / 1e9 == pytest.approx(time.time() + 365 * 86400, abs=120)
    assert max(len(e.SerializeToString()) for e in manifest.entries) < 200  # ids, never an image or template
    listed = await api("was_listed", "S-1042")
    assert [(x.deployment_id, x.state, len(x.entries)) for x in listed.listings] == [
        (created.deployment_id, pb.DEPLOYMENT_STATE_CLOSED, 1)
    ]
    assert (await api("was_listed", "S-0000")).listings == []
    with pytest.raises(grpc.RpcError) as viewer:
        await Api(deployments.control.port, VIEWER_TOKEN)("was_listed", "S-1042")
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=10, settle_s=0.5))
    assert {"watchlist.manifest_read", "subject.queried"} <= {a.event for a in audit}
    # A year and a day on, the manifest is gone, and the subject is no longer answered for.
    later = build(platform, deployments_settings(tmp_path), clock=lambda: time.time() + 366 * 86400)
    async with running(later):
        api = Api(later.control.port)
        with pytest.raises(grpc.RpcError) as gone:
            await api("manifest", created.deployment_id)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND and "kept 365 days after close" in gone.value.details()
        assert (await api("was_listed", "S-1042")).listings == []


async def test_a_watchlist_is_enrolled_no_earlier_than_the_policy_allows_before_its_window(platform, deployments):
    api = Api(deployments.control.port)
    request = create_request(hours=50)
    request.planned_start.FromSeconds(int(time.time() + 30 * 3600))  # opens in 30 h: 6 h too early to enrol
    created = await api("create", request)
    with pytest.raises(grpc.RpcError) as refused:
        await api.enrol(created.deployment_id, [])
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "the policy's compile_before_start_h" in refused.value.details()
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=3, settle_s=0.5))
    assert "watchlist.enrol_refused" in {a.event for a in audit}


async def test_one_person_enrolled_under_two_subject_ids_is_flagged_as_a_lookalike_pair(
    platform, deployments, data_dir
):
    """The same LFW identity under two subject ids (a person enrolled twice; or brothers): the second
    enrolment names the first, with their score, and the pair is audited."""
    api = Api(deployments.control.port)
    created = await api("create", create_request())
    images = [
        pb.WatchlistImage(
            **provenance(), client_ref=str(n), subject_id=subject, category="wanted", source_reference=f"PNC/{subject}",
            approved_by="Insp. B", image=lfw(data_dir, "Colin_Powell", n).read_bytes(),
        )
        for n, subject in ((1, "S-1042"), (2, "S-7310"))
    ] + [
        pb.WatchlistImage(
            **provenance(), client_ref="3", subject_id="S-2217", category="wanted", source_reference="PNC/S-2217",
            approved_by="Insp. B", image=lfw(data_dir, "Ariel_Sharon", 1).read_bytes(),
        )
    ]  # fmt: skip
    first, second, other = await api.enrol(created.deployment_id, images)
    assert all(r.status == pb.ENROL_STATUS_ENROLLED for r in (first, second, other))
    # Checked at the lowest threshold a review could derive, not the one of the size limit (higher).
    lowest = deployments.control.service.policy.lowest_derivable
    assert [(x.subject_id, x.score >= lowest) for x in second.lookalikes] == [("S-1042", True)]
    assert not first.lookalikes and not other.lookalikes
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=7, settle_s=0.5))
    [pair] = [a for a in audit if a.event == "watchlist.lookalike"]
    key = await deployments.control.service.store.pseudonym_key(created.deployment_id)
    assert (pair.details["subject"], pair.details["other_subject"]) == (
        pseudonym(key, "S-7310"),
        pseudonym(key, "S-1042"),
    )

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
from lfr_platform.registry import DeploymentRegistry, RedisKeys, admit
from lfr_platform.runtime import StartRefused
from lfr_testing.deployments import VIEWER_TOKEN, Api, create_request, deployments_settings
from lfr_testing.kafka import decoded, read
from lfr_testing.services import running

pytestmark = pytest.mark.integration

POLICY = """version: 1
where: [crime_hotspot, protective_security, intelligence_led]
max_duration_h: 24
ratify_within_h: 1
"""


async def test_a_record_captured_outside_the_window_is_skipped_whenever_it_is_processed(platform, deployments):
    created = await Api(deployments.control.port)("create", create_request())
    start, end = created.planned_start.ToNanoseconds() / 1e9, created.planned_end.ToNanoseconds() / 1e9
    client = aioredis.from_url(platform.redis_url)
    registry = DeploymentRegistry(client, RedisKeys(platform.redis_prefix), platform.key_wrap())
    camera = common_pb2.CameraRef(deployment_id=created.deployment_id, van_id="van-1", camera_id="cam-1")
    try:
        for captured_at in (start - 60, end + 1):  # a van clock an hour behind, a frame after the end
            assert (await admit(registry, camera, captured_at)).reason == "outside_authorisation"
        assert (await admit(registry, camera, start + 1)).deployment_id == created.deployment_id
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
        api = Api(first.control.port)
        urgent = await api("create", create_request(urgent=True, authorising_officer="Supt. Example", hours=4))
        ratified = await api("create", create_request(urgent=True, authorising_officer="Supt. Example", hours=4))
        written = await api("create", create_request())
        assert urgent.urgent and urgent.ratify_by.ToNanoseconds() / 1e9 == pytest.approx(time.time() + 3600, abs=60)
        for who, deployment_id, officer, code, message in (
            (api, urgent.deployment_id, "supt. example ", grpc.StatusCode.INVALID_ARGUMENT, "another officer must"),
            (api, written.deployment_id, "Ch Insp. B", grpc.StatusCode.FAILED_PRECONDITION, "nothing to ratify"),
            (api, urgent.deployment_id, " ", grpc.StatusCode.INVALID_ARGUMENT, "officer is required"),
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
        done = await api("ratify", ratified.deployment_id, "Ch Insp. B")
        assert done.ratified_by == "Ch Insp. B" and done.HasField("ratified_at")
        assert (await api("ratify", ratified.deployment_id, "Ch Insp. B")) == done  # a repeat changes nothing
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


async def test_a_bad_policy_file_stops_the_service_with_the_field_named(platform, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("ratify_within_h: 1", "ratify_within_h: -1"))
    with pytest.raises(StartRefused, match="ratify_within_h: Input should be greater than 0"):
        build(platform, deployments_settings(tmp_path, policy_file=policy))

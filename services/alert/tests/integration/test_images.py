"""An alert's images over the AlertService (real gRPC, Redis and the broker): the scene of the best
match served beside the probe face and the reference, or why there is none; only the kinds asked for;
and hostile requests refused alike whether the alert exists or not (issue 26)."""

import asyncio

import grpc
import pytest
import redis.asyncio as aioredis

from lfr.v1 import alerts_pb2 as pb
from lfr.v1 import common_pb2, matches_pb2
from lfr_alert.app import build
from lfr_alert.settings import AlertSettings
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND
from lfr_contracts.clients import AlertClient
from lfr_platform import sealing
from lfr_platform.registry import RedisKeys
from lfr_testing.deployments import OFFICER_TOKEN, Api
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.messages import match_record
from lfr_testing.services import running, seed_deployment

pytestmark = pytest.mark.integration


@pytest.fixture
async def alert(platform):
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))) as shell:
        yield shell


def _api(shell):
    return Api(shell.control.port, OFFICER_TOKEN, client=AlertClient)


async def _raise(platform, deployment_id, key):
    await produce(platform, MATCHES_FOUND, [match_record(deployment_id, "cam-1", "S1", 1, 0.8, key=key)])
    return decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1))[-1]


def _with_scene(record: tuple[bytes, bytes], key: bytes, deployment_id: str, scene: bytes | None) -> tuple:
    """The match record with a scene, as detect makes it: composed (`scene`, sealed) or, for None, not
    found clear in its frame; signed again, as match signs it whole."""
    name, value = record
    match = matches_pb2.MatchFound.FromString(value)
    if scene is None:
        match.scene.status = common_pb2.SCENE_STATUS_FACE_NOT_FOUND
    else:
        match.scene.CopyFrom(
            common_pb2.SceneImage(
                status=common_pb2.SCENE_STATUS_COMPOSED,
                image=sealing.seal(key, scene, deployment_id),
                region=common_pb2.BoundingBox(x=100, y=50, width=240, height=400),
                face=common_pb2.BoundingBox(x=80, y=50, width=80, height=100),
                faces_blurred=2,
            )
        )
    sealing.sign_message(key, match, "match")
    return name, match.SerializeToString()


async def test_the_scene_of_the_best_match_is_served_with_the_images_and_says_why_when_there_is_none(platform, alert):
    deployment_id, key = await seed_deployment(platform)
    first = _with_scene(match_record(deployment_id, "cam-1", "S1", 1, 0.8, key=key), key, deployment_id, b"scene-1")
    await produce(platform, MATCHES_FOUND, [first])
    [raised] = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1))
    sealed = matches_pb2.MatchFound.FromString(first[1]).scene.image
    assert sealed not in raised.SerializeToString()  # not on the alert topic, even sealed: the service only
    api = _api(alert)
    images = await api("images", raised.alert_id)
    assert (images.probe_jpeg, images.scene_jpeg) == (b"crop-1", b"scene-1")
    assert images.scene_status == common_pb2.SCENE_STATUS_COMPOSED
    assert (images.scene_face.x, images.scene_face.width, images.scene_region.height) == (80, 80, 400)
    # Only what is asked for: the console asks for the scene alone, and gets nothing else opened.
    scene_only = await asyncio.to_thread(
        lambda: api.client.stub.GetAlertImages(
            pb.GetAlertImagesRequest(alert_id=raised.alert_id, kinds=[pb.ALERT_IMAGE_KIND_SCENE]),
            metadata=api.client.metadata,
        )
    )
    assert (scene_only.scene_jpeg, scene_only.probe_jpeg, scene_only.reference_jpeg) == (b"scene-1", b"", b"")
    # A better match of the pass whose face was not found clear in its frame: its crop, and no scene.
    better = _with_scene(match_record(deployment_id, "cam-1", "S1", 2, 0.9, key=key), key, deployment_id, None)
    await produce(platform, MATCHES_FOUND, [better])
    await read(platform, ALERTS_RAISED, count=2)
    images = await api("images", raised.alert_id)
    assert (images.probe_jpeg, images.scene_jpeg) == (b"crop-2", b"")
    assert images.scene_status == common_pb2.SCENE_STATUS_FACE_NOT_FOUND
    # The scene is kept under the deployment, sealed: the close deletes it with the crop.
    client = aioredis.from_url(platform.redis_url)
    try:
        keys = RedisKeys(platform.redis_prefix)
        kept = [name async for name in client.scan_iter(match=f"{keys.deployment(deployment_id)}:scene:*")]
        assert kept == [f"{keys.deployment(deployment_id)}:scene:{raised.alert_id}".encode()]
    finally:
        await client.aclose()


async def test_hostile_image_requests_are_refused_alike_whether_the_alert_exists_or_not(platform, alert):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    api = _api(alert)

    def call(request: pb.GetAlertImagesRequest):
        return api.client.stub.GetAlertImages(request, metadata=api.client.metadata, timeout=10)

    for alert_id in (raised.alert_id, "no-such-alert"):
        for kinds in ([pb.ALERT_IMAGE_KIND_SCENE, pb.ALERT_IMAGE_KIND_SCENE], [7]):  # named twice, unknown
            with pytest.raises(grpc.RpcError) as bad:
                await asyncio.to_thread(call, pb.GetAlertImagesRequest(alert_id=alert_id, kinds=kinds))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad.value.details() == "kinds: probe, reference or scene, each once"
    # An id longer than any alert's, and one that exists but longer: not found, as an unknown id.
    for alert_id in ("x" * 300, raised.alert_id + "x" * 300):
        with pytest.raises(grpc.RpcError) as unknown:
            await asyncio.to_thread(call, pb.GetAlertImagesRequest(alert_id=alert_id))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    # A huge request is refused before it is read (the 413 of gRPC), whatever it names.
    for alert_id in (raised.alert_id, "no-such-alert"):
        with pytest.raises(grpc.RpcError) as huge:
            await asyncio.to_thread(
                call, pb.GetAlertImagesRequest(alert_id=alert_id, kinds=[pb.ALERT_IMAGE_KIND_SCENE] * 100_000)
            )
        assert huge.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

"""EnrolWatchlist with real photos: one result per image, every rejection reason, limits, cut streams."""

import asyncio
import io

import cv2
import grpc
import pytest
from PIL import Image

from lfr.v1 import deployments_pb2 as pb
from lfr_testing import bombs
from lfr_testing.deployments import Api, create_request, provenance
from lfr_testing.media import jpeg, lfw, video_frame

pytestmark = pytest.mark.integration


def _item(name: str, data: bytes, subject: str = "subject-1") -> pb.WatchlistImage:
    return pb.WatchlistImage(
        **provenance(),
        client_ref=name,
        subject_id=subject,
        category="wanted",
        source_reference=f"ref/{name}",
        approved_by="Insp. Approver",
        image=data,
    )


def _reason(result: pb.EnrolWatchlistResponse) -> str:
    if result.status == pb.ENROL_STATUS_ENROLLED:
        return "enrolled"
    return pb.RejectionReason.Name(result.reason).removeprefix("REJECTION_REASON_").lower()


async def _enrolled(api: Api, deployment_id: str, n: int):
    got = await api("get", deployment_id)
    assert got.enrolled_images == n, got.enrolled_images
    return got


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(buffer, "PNG")  # declares 1.6 Gpixel in a small file
    return buffer.getvalue()


async def test_every_image_gets_its_own_result_and_a_bad_one_never_ends_the_stream(deployments, data_dir):
    api = Api(deployments.control.port)
    deployment = await api("create", create_request())
    powell = lfw(data_dir, "Colin_Powell", 1).read_bytes()
    photo = cv2.imread(str(lfw(data_dir, "Colin_Powell", 3)))
    crowd = video_frame(data_dir, "facenet_pytorch_video.mp4", 0)
    items = [
        _item("good.jpg", powell),
        _item("truncated.jpg", powell[: len(powell) // 2]),
        _item("notes.txt", b"suspect seen near the station, no photo"),
        _item("bomb.png", _bomb()),
        _item("arcade.jpg", jpeg(crowd[0:300, 0:500])),  # the arcade's ceiling: no face
        _item("crowd.jpg", jpeg(crowd)),  # several people
        _item("thumbnail.jpg", jpeg(cv2.resize(photo, (110, 110), interpolation=cv2.INTER_AREA))),
        _item("blurred.jpg", jpeg(cv2.GaussianBlur(photo, (0, 0), 3))),
        _item("profile.jpg", lfw(data_dir, "Aiysha_Smith", 1).read_bytes()),
        _item("good-again.jpg", powell),  # the same file twice
        _item("re-encoded.jpg", jpeg(cv2.imread(str(lfw(data_dir, "Colin_Powell", 1))), 97)),
        _item("second-photo.jpg", lfw(data_dir, "Colin_Powell", 2).read_bytes()),
        _item("wrong-folder.jpg", lfw(data_dir, "Ariel_Sharon", 1).read_bytes()),  # another man, same subject
        _item("no-provenance.jpg", powell, subject=""),
    ]
    results = await api.enrol(deployment.deployment_id, items, expected=len(items))
    assert [(r.client_ref, _reason(r)) for r in results] == [
        ("good.jpg", "enrolled"),
        ("truncated.jpg", "undecodable"),
        ("notes.txt", "not_an_image"),
        ("bomb.png", "too_large"),
        ("arcade.jpg", "no_face"),
        ("crowd.jpg", "multiple_faces"),
        ("thumbnail.jpg", "face_too_small"),
        ("blurred.jpg", "too_blurred"),
        ("profile.jpg", "pose_not_frontal"),
        ("good-again.jpg", "duplicate"),
        ("re-encoded.jpg", "duplicate"),
        ("second-photo.jpg", "enrolled"),
        ("wrong-folder.jpg", "subject_mismatch"),
        ("no-provenance.jpg", "invalid_item"),
    ]
    assert all(r.detail for r in results if r.status == pb.ENROL_STATUS_REJECTED)
    # A subject of two people is refused with both photos named.
    mismatch = results[-2].detail
    assert "wrong-folder.jpg" in mismatch and ("ref/good.jpg" in mismatch or "ref/second-photo.jpg" in mismatch)
    got = await api("get", deployment.deployment_id)
    assert (got.enrolled_images, got.enrolled_subjects, got.rejected_images) == (2, 1, 12)


async def test_a_batch_over_the_size_limit_is_refused_whole_before_anything_is_written(deployments, data_dir):
    api = Api(deployments.control.port)
    deployment = await api("create", create_request(watchlist_size_limit=2))
    images = [
        _item(f"{n}.jpg", lfw(data_dir, n).read_bytes(), n) for n in ("Colin_Powell", "Ariel_Sharon", "George_W_Bush")
    ]
    with pytest.raises(grpc.RpcError) as full:
        await api.enrol(deployment.deployment_id, images, expected=3)
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "nothing was enrolled" in full.value.details()
    assert (await api("get", deployment.deployment_id)).enrolled_images == 0
    # A client that does not announce its count is stopped at the limit, item by item.
    with pytest.raises(grpc.RpcError) as full:
        await api.enrol(deployment.deployment_id, images)
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await api("get", deployment.deployment_id)).enrolled_images == 2


async def test_a_stream_cut_midway_keeps_what_was_acknowledged(deployments, data_dir, eventually):
    api = Api(deployments.control.port)
    deployment = await api("create", create_request())
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def images():
        yield _item("first.jpg", lfw(data_dir, "Colin_Powell").read_bytes(), "Colin_Powell")
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()  # the client stalls here...

    def enrol_then_cut():
        call = api.client.enrol(deployment.deployment_id, images())
        first = next(call)
        call.cancel()  # ...and gives up: the connection is cut
        return first

    first = await asyncio.to_thread(enrol_then_cut)
    release.set()
    assert first.status == pb.ENROL_STATUS_ENROLLED
    got = await eventually(lambda: _enrolled(api, deployment.deployment_id, 1))
    assert got.enrolled_images == 1
    # and the deployment still takes new images: nothing was left half-written or locked
    more = await api.enrol(
        deployment.deployment_id, [_item("b.jpg", lfw(data_dir, "Ariel_Sharon").read_bytes(), "Ariel_Sharon")]
    )
    assert _reason(more[0]) == "enrolled"


async def test_concurrent_enrolments_of_very_large_photos_are_reduced_while_decoded_and_enrolled(deployments, data_dir):
    """Three 7000x7000 custody-style photos (under the 50 Mpixel limit) enrolled at once: each is
    decoded at a reduced size (docs/deployments.md), at most LFR_DEPLOYMENTS_ENROL_MAX_CONCURRENT at a time,
    and each is enrolled. (`make bench` measures the deployments service's peak memory doing this.)"""
    api = Api(deployments.control.port)
    created = await api("create", create_request())

    def huge(identity: str) -> bytes:
        face = cv2.imread(str(lfw(data_dir, identity, 1)))
        ok, data = cv2.imencode(".jpg", cv2.resize(face, (7000, 7000), interpolation=cv2.INTER_CUBIC))
        assert ok
        return data.tobytes()

    people = ("Colin_Powell", "Ariel_Sharon", "George_W_Bush")
    photos = await asyncio.gather(*(asyncio.to_thread(huge, p) for p in people))
    items = [_item(p, photo, subject=p) for p, photo in zip(people, photos, strict=True)]
    streams = [api.enrol(created.deployment_id, [item]) for item in items]
    results = await asyncio.gather(*streams)
    assert [_reason(r) for [r] in results] == ["enrolled"] * 3
    assert (await api("get", created.deployment_id)).enrolled_subjects == 3


async def test_enrolment_decodes_in_bounded_workers_whatever_the_format(deployments, data_dir):
    """Bus failures 6 and issue 25: a progressive 7000x7000 JPEG took +409 MB, and a baseline JPEG with
    one scan per component, planned at 70 MB from its header, +316 MB. Each photo is now decoded in a
    worker process whose address space the OS bounds (LFR_DEPLOYMENTS_ENROL_DECODE_MEMORY_MB, 256);
    one that needs more is refused image_too_complex, and real photos of every format still enrol.
    (`make bench`, section enrolment, measures this process's peak.)"""
    api = Api(deployments.control.port)
    created = await api("create", create_request())

    def encoded(person: str, side: int, kind: str) -> bytes:
        if kind == "multi-scan":
            return bombs.multi_scan_jpeg(side, side)
        big = cv2.resize(cv2.imread(str(lfw(data_dir, person, 1))), (side, side), interpolation=cv2.INTER_LINEAR)
        if kind == "progressive 4:4:4":
            buffer = io.BytesIO()
            Image.fromarray(big[:, :, ::-1]).save(buffer, "JPEG", quality=90, progressive=True, subsampling=0)
            return buffer.getvalue()
        ext, params = {
            "baseline": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
            "progressive": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
            "png": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]),
        }[kind]
        return cv2.imencode(ext, big, params)[1].tobytes()

    photos = [
        ("baseline", 7000, "Colin_Powell"),
        ("multi-scan", 7000, "Colin_Powell"),  # the probe's bomb: read as a baseline JPEG from its header
        ("progressive 4:4:4", 7000, "Colin_Powell"),
        ("png", 5500, "Colin_Powell"),
        ("progressive", 2500, "Ariel_Sharon"),  # a progressive photo of a usual size is enrolled
    ]
    data = await asyncio.gather(*(asyncio.to_thread(encoded, p, side, kind) for kind, side, p in photos))
    items = [_item(f"{kind} {side}", d, subject=p) for (kind, side, p), d in zip(photos, data, strict=True)]
    streams = [api.enrol(created.deployment_id, items[i::3]) for i in range(3)]
    results = {r.client_ref: r for rs in await asyncio.gather(*streams) for r in rs}
    assert {ref: _reason(r) for ref, r in results.items()} == {
        "baseline 7000": "enrolled",
        "multi-scan 7000": "image_too_complex",
        "progressive 4:4:4 7000": "image_too_complex",
        "png 5500": "duplicate",  # fits: decoded, reduced, and found to be the baseline's face again
        "progressive 2500": "enrolled",
    }
    assert "save it as a baseline JPEG" in results["multi-scan 7000"].detail
    decoder = deployments.control.service.decoder
    assert decoder.replaced == 2 and len(decoder.pids()) <= decoder.size == 2


async def test_provenance_over_its_limits_is_refused_before_the_photo_is_looked_at(deployments, data_dir):
    """Bus gap: enrolment's category, source_reference and approved_by accepted 1 MB each (kept with
    the entry and in the audit trail forever)."""
    api = Api(deployments.control.port)
    created = await api("create", create_request())
    powell = lfw(data_dir, "Colin_Powell", 1).read_bytes()
    items = []
    for field, value in (
        ("category", "w" * 1_000_000),
        ("source_reference", "PNC/" + "1" * 1_000_000),
        ("approved_by", "Insp. B\nforged line"),
    ):
        item = _item(field, powell, subject="Colin_Powell")
        setattr(item, field, value)
        items.append(item)
    results = await api.enrol(created.deployment_id, [*items, _item("fine", powell, subject="Colin_Powell")])
    assert [(r.client_ref, _reason(r)) for r in results] == [
        ("category", "invalid_item"),
        ("source_reference", "invalid_item"),
        ("approved_by", "invalid_item"),
        ("fine", "enrolled"),
    ]
    assert "category must be at most 64 printable characters" in results[0].detail
